"""The image kit, offline: every course image present, made without a single pull."""
import time

import pytest

from helpers import images
from helpers.images import KIT_LABEL, catalogue, ensure_images


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
    monkeypatch.setattr(images, "bundle_path", lambda: images.DATA / "no-such-bundle.tar")
    client.images.remove(kit["busybox"], force=True)
    assert ensure_images(client, names=["busybox"]) == {kit["busybox"]: "built"}
    out = client.containers.run(kit["busybox"], ["sh", "-c", "ls -d /tmp && whoami"],
                                remove=True).decode()
    assert out.split() == ["/tmp", "root"]


def test_bundle_round_trip(client, kit, tmp_path, monkeypatch):
    bundle = images.save_bundle(tmp_path / "kit.tar", client)
    assert bundle.stat().st_size > 1_000_000
    monkeypatch.setattr(images, "bundle_path", lambda: bundle)
    client.images.remove(kit["busybox"], force=True)
    assert ensure_images(client, names=["busybox"]) == {kit["busybox"]: "bundle"}


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
    monkeypatch.setattr(images, "bundle_path", lambda: images.DATA / "no-such-bundle.tar")
    client.images.remove(kit["busybox"], force=True)
    assert ensure_images(client, names=["busybox"], allow_pull=True) == {kit["busybox"]: "built"}
    out = capsys.readouterr().out
    assert f"Could not pull {kit['busybox']}" in out and "offline kit" in out
    assert "Traceback" not in out
