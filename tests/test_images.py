"""The image kit, offline: every course image present, made without a single pull."""
import time

import pytest

from helpers.course import images
from helpers.course.settings import DATA
from helpers.course.images import KIT_LABEL, catalogue, ensure_images
from throwaway import remove_name, throwaway_kit


def pulls_between(client, since, until):
    events = client.events(since=since, until=until, decode=True, filters={"type": "image"})
    return [e for e in events if e.get("Action") == "pull"]


def test_all_course_images_present_without_pulling(client, monkeypatch):
    def no_pull(*args, **kwargs):
        raise AssertionError("the kit pulled while offline")
    monkeypatch.setattr(images, "pull", no_pull)
    since = int(time.time()) - 1
    report = ensure_images(client)
    assert set(report) == {img.ref for img in catalogue().values()}
    for img in catalogue().values():
        assert client.images.get(img.ref)
    assert pulls_between(client, since, int(time.time()) + 1) == []


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_offline_image_carries_the_same_software(client, kit, name):
    img = catalogue()[name]
    out = client.containers.run(img.ref, img.version_command, remove=True,
                                stderr=True).decode()
    assert img.version_expect in out, out
    attrs = client.images.get(img.ref).labels or {}
    if attrs.get(f"{KIT_LABEL}.local-build") == "true":
        assert attrs[f"{KIT_LABEL}.stands-for"] == f"docker.io/library/{img.ref}"
        assert attrs[f"{KIT_LABEL}.software"] == img.software


def test_missing_image_is_rebuilt_offline(client, kit, monkeypatch):
    monkeypatch.setattr(images, "bundle_path", lambda: DATA / "no-such-bundle.tar")
    missing = throwaway_kit(monkeypatch, "busybox")
    try:
        assert ensure_images(client, names=["busybox"]) == {missing: "built"}
        out = client.containers.run(missing, ["sh", "-c", "ls -d /tmp && whoami"],
                                    remove=True).decode()
        assert out.split() == ["/tmp", "root"]
    finally:
        remove_name(client, missing)


def test_bundle_round_trip(client, kit, tmp_path, monkeypatch):
    """save_bundle writes the kit's images; a missing one comes back from the bundle. The kit
    here is busybox's image under a throwaway name alone (busybox:1.35 keeps its name)."""
    ref = throwaway_kit(monkeypatch, "busybox")
    monkeypatch.setattr(images, "catalogue", lambda optional=False, real=images.catalogue:
                        {"busybox": real(optional)["busybox"]})
    client.images.get(kit["busybox"]).tag(ref)
    try:
        bundle = images.save_bundle(tmp_path / "kit.tar", client)
        assert bundle.stat().st_size > 1_000_000
        monkeypatch.setattr(images, "bundle_path", lambda: bundle)
        remove_name(client, ref)
        assert ensure_images(client, names=["busybox"]) == {ref: "bundle"}
        assert client.images.get(ref).id == client.images.get(kit["busybox"]).id
    finally:
        remove_name(client, ref)


def test_bundle_refuses_when_images_missing(client, kit, tmp_path, monkeypatch):
    monkeypatch.setattr(images, "catalogue", lambda: {
        "ghost": images.KitImage("ghost", "dockercourse-ghost:0", "none", "busybox", [], "")})
    with pytest.raises(RuntimeError, match="Not present, so not saved: dockercourse-ghost:0"):
        images.save_bundle(tmp_path / "x.tar", client)
    assert not (tmp_path / "x.tar").exists()


def test_failed_pull_falls_back_to_the_offline_kit(client, kit, monkeypatch, capsys):
    """Online mode on a machine without network: the pull fails fast, the kit takes over."""
    if client.info().get("HttpsProxy") != "http://127.0.0.1:9":
        pytest.skip("only on the sealed engine, where a pull fails on loopback at once")
    monkeypatch.setattr(images, "bundle_path", lambda: DATA / "no-such-bundle.tar")
    missing = throwaway_kit(monkeypatch, "busybox")
    try:
        assert ensure_images(client, names=["busybox"], allow_pull=True) == {missing: "built"}
        out = capsys.readouterr().out
        assert f"Could not pull {missing}" in out and "offline kit" in out
        assert "Traceback" not in out
    finally:
        remove_name(client, missing)


def differences(client, ref, facts) -> list:
    """Where the image `ref` differs from the public image's facts (images.json "matches")."""
    image = client.images.get(ref)
    config = image.attrs["Config"]
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    found = []
    if "cmd" in facts and config.get("Cmd") != facts["cmd"]:
        found.append(f"CMD is {config.get('Cmd')}, not {facts['cmd']}")
    for key, value in facts.get("env", {}).items():
        if env.get(key) != value:
            found.append(f"{key}={env.get(key)!r}, not {value!r}")
    if "path_first" in facts and env.get("PATH", "").split(":")[0] != facts["path_first"]:
        found.append(f"PATH={env.get('PATH')!r} does not start with {facts['path_first']}")
    script = [f"test -e {f} || echo missing {f}" for f in facts.get("files", [])]
    if "python_prefix" in facts:
        script.append("python -c 'import sys; print(\"prefix\", sys.prefix)'")
    out = client.containers.run(image.id, ["sh", "-c", "; ".join(script)], remove=True,
                                stderr=True).decode()
    found += [line for line in out.splitlines() if line.startswith("missing ")]
    prefix = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("prefix ")]
    if "python_prefix" in facts and prefix != [facts["python_prefix"]]:
        found.append(f"python's sys.prefix is {prefix}, not {facts['python_prefix']}")
    return found


WITH_FILES = sorted(n for n, img in catalogue().items() if "files" in img.matches)


@pytest.mark.parametrize("name", WITH_FILES)
def test_course_image_matches_the_public_image(client, kit, name):
    """The image in use (pulled, or the local stand-in) keeps what the lessons rely on, as the
    official image's own Dockerfile has it."""
    img = catalogue()[name]
    assert img.matches["source"].startswith("the official image's")
    found = differences(client, img.ref, img.matches)
    assert not found, (f"{img.ref} differs from the public image: {found}. An older local "
                       f"stand-in: remove it and run `python -m helpers.images ensure` to "
                       f"build it from the current recipe")


def test_python_recipe_matches_the_public_image(client, kit):
    """The python stand-in's recipe, built beside the image in use (never replacing it)."""
    from helpers.course.buildkit import builder_info
    img = catalogue()["python"]
    tag = "dockercourse-recipe/python:test"
    try:
        image_id = images.build_offline(client, img, tag=tag)
        assert not differences(client, tag, img.matches)
        labels = client.images.get(tag).labels
        assert labels[f"{KIT_LABEL}.local-build"] == "true"
        assert labels[f"{KIT_LABEL}.stands-for"] == f"docker.io/library/{img.ref}"
        made_by = " ".join(h["CreatedBy"] for h in client.api.history(image_id))
        assert ("# buildkit" in made_by) == (builder_info() is not None)  # BuildKit built it
        out = client.containers.run(image_id, ["python", "-c", "import os, sqlite3, ssl; "
                                               "print(os.__file__)"], remove=True).decode()
        assert out.strip() == "/usr/local/lib/python3.11/os.py"
    finally:
        try:
            client.images.remove(tag, force=True)
        except Exception:
            pass
