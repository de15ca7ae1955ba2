"""Lesson 01's registry: `registry:2` from the image kit (built offline from Debian's
docker-registry), a push and pull round trip on 127.0.0.1 by tag and by digest, and a clean-up
that removes the registry's container, its data and every tag, but keeps the kit image.

Pushing to and pulling from a registry on loopback is the tests' one exception to "never pull":
nothing leaves this machine (every pull below is checked to name 127.0.0.1)."""
import re
import tarfile
import time
import uuid
from io import BytesIO

import pytest
from docker.errors import ImageNotFound, NotFound

from helpers.course import images, record
from helpers.course.cli import run
from helpers.course.images import KIT_LABEL, catalogue
from helpers.course.labels import LABEL
from helpers.course.ports import fetch, free_port

REGISTRY = catalogue()["registry"]
FACTS = REGISTRY.matches
DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def pulls_between(client, since, until) -> list:
    events = client.events(since=since, until=until, decode=True, filters={"type": "image"})
    return [e["Actor"]["Attributes"].get("name", e.get("id", "")) for e in events
            if e.get("Action") == "pull"]


# ------------------------------------------------------------ the catalogue and the kit

def test_catalogue_cites_the_official_image():
    assert REGISTRY.ref == "registry:2"
    assert FACTS["source"].startswith("the official image's")
    assert "distribution/distribution-library-image" in FACTS["source"]
    assert (FACTS["port"], FACTS["volume"]) == (5000, "/var/lib/registry")
    assert FACTS["config"] == "/etc/docker/registry/config.yml" == FACTS["cmd"][0]
    assert "docker-registry" in REGISTRY.debian_packages and REGISTRY.recipe == "debian-debs"
    assert not REGISTRY.optional and not REGISTRY.own   # `./course` set-up makes it for everyone
    # the bundle (`python -m helpers.images bundle`) and `images ensure` take the catalogue
    assert REGISTRY.ref in [img.ref for img in catalogue().values()]
    recipe = (images._recipe_dir(REGISTRY) / "config.yml").read_text()
    assert f"rootdirectory: {FACTS['volume']}" in recipe and f"addr: :{FACTS['port']}" in recipe


def test_registry_image_config_matches_the_official_one(client, kit):
    image = client.images.get(REGISTRY.ref)
    config = image.attrs["Config"]
    assert list(config["Volumes"]) == [FACTS["volume"]]
    assert f"{FACTS['port']}/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == FACTS["entrypoint"] and config["Cmd"] == FACTS["cmd"]
    labels = image.labels or {}
    if labels.get(f"{KIT_LABEL}.local-build") == "true":
        assert labels[KIT_LABEL] == "registry"
        assert labels[f"{KIT_LABEL}.stands-for"] == "docker.io/library/registry:2"
    assert LABEL not in labels, "a kit image must not carry a lesson's label"


def test_registry_is_there_at_the_same_major_version(client, kit):
    out = client.containers.run(REGISTRY.ref, ["registry", "--version"], remove=True).decode()
    found = re.search(r"github\.com/docker/distribution v?(\d+)\.(\d+)", out)
    assert found and int(found.group(1)) == FACTS["major_version"], out


def test_the_kit_builds_the_registry_offline(client, kit, monkeypatch):
    """The recipe, built beside the image in use: Debian's files, no pull, a working server."""
    def no_pull(*args, **kwargs):
        raise AssertionError("the kit pulled while offline")
    monkeypatch.setattr(images, "pull", no_pull)
    tag = "dockercourse-recipe/registry:test"
    since = int(time.time()) - 1
    try:
        image_id = images.build_offline(client, REGISTRY, tag=tag)
        assert pulls_between(client, since, int(time.time()) + 1) == []
        labels = client.images.get(tag).labels
        assert labels[f"{KIT_LABEL}.local-build"] == "true"
        assert labels[f"{KIT_LABEL}.software"] == REGISTRY.software
        out = client.containers.run(image_id, ["sh", "-c", "registry --version; "
                                    "ls /usr/share/doc 2>&1; cat /etc/docker/registry/config.yml"],
                                    remove=True, stderr=True).decode()
        assert "github.com/docker/distribution 2." in out, out
        assert "No such file" in out                       # no documentation in the image
        assert "htpasswd" not in out and "/var/lib/registry" in out   # the official config
        # the files came from Debian's packages, unpacked on the host and cached
        with tarfile.open(images.debs_tar(REGISTRY.debian_packages, REGISTRY.name)) as tar:
            names = tar.getnames()
        assert "usr/bin/docker-registry" in names
        assert not [n for n in names if n.startswith("usr/share/doc/")]
        assert client.images.get(tag).attrs["Size"] < 60 * 2**20
    finally:
        try:
            client.images.remove(tag, force=True)
        except NotFound:
            pass


# ------------------------------------------------------------ push, pull and clean-up

@pytest.fixture
def lesson98(kit):
    """A lesson of its own, so that its clean-up touches nothing another test or lesson made."""
    from helpers.course.lesson import Lesson
    lesson = Lesson(98)
    yield lesson
    lesson.clean_up()


def test_push_and_pull_by_digest_round_trip_then_clean_up(lesson98, kit):
    lesson, client = lesson98, lesson98.client
    host = f"127.0.0.1:{free_port(45100, quiet=True)}"
    assert "127.0.0.0/8" in client.info()["RegistryConfig"]["InsecureRegistryCIDRs"]
    run(f"docker volume create --label {LABEL}=98 course98-registry-data\n"
        f"docker run -d --name course98-registry --label {LABEL}=98 -p {host}:5000 "
        f"-v course98-registry-data:/var/lib/registry {REGISTRY.ref}", lesson=lesson, echo=False)
    assert fetch(f"http://{host}/v2/", wait_seconds=10).strip() == "{}"

    # An image no registry has seen: its own layer, so the pull must really download it.
    token = uuid.uuid4().hex
    built, _ = client.images.build(fileobj=BytesIO(
        f"FROM {kit['busybox']}\nRUN echo {token} > /token\n".encode()),
        tag="course98.invalid/roundtrip", labels=lesson.labels, rm=True)
    name = f"{host}/course98/roundtrip"
    since = int(time.time()) - 1
    pushed = run(f"docker tag course98.invalid/roundtrip {name}:1\ndocker push {name}:1",
                 lesson=lesson, echo=False)
    lesson.record(client.images.get(f"{name}:1"), tags=[f"{name}:1"])
    digest = DIGEST.search(pushed).group(1)
    assert client.images.get_registry_data(f"{name}:1").id == digest
    assert f"{name}@{digest}" in client.images.get(built.id).attrs["RepoDigests"]

    # Gone from the engine altogether, then back by digest: the same image, its layer fetched.
    run(f"docker image rm course98.invalid/roundtrip {name}:1", lesson=lesson, echo=False)
    with pytest.raises(ImageNotFound):
        client.images.get(built.id)
    out = run(f"docker pull {name}@{digest}", lesson=lesson, echo=False)
    assert "Pull complete" in out, out
    back = client.images.get(f"{name}@{digest}")
    assert back.id == built.id
    assert client.containers.run(back.id, ["cat", "/token"], remove=True,
                                 labels=lesson.labels).decode().strip() == token
    run(f"docker pull {name}:1", lesson=lesson, echo=False)   # by tag: the same manifest
    lesson.record(client.images.get(f"{name}:1"), tags=[f"{name}:1"])
    assert client.images.get(f"{name}:1").id == built.id
    pulled = pulls_between(client, since, int(time.time()) + 1)
    assert pulled and all(p.startswith(host + "/") for p in pulled), pulled

    report = lesson.clean_up()
    assert not report.problems, report.problems
    with pytest.raises(NotFound):
        client.containers.get("course98-registry")
    with pytest.raises(NotFound):
        client.volumes.get("course98-registry-data")
    for gone in (f"{name}:1", f"{name}@{digest}", built.id):
        with pytest.raises(ImageNotFound):
            client.images.get(gone)
    assert client.images.get(REGISTRY.ref)                    # the kit image stays
    for kind in ("containers", "images", "volumes"):
        assert record.entries(client, kind, "98") == {}, kind
