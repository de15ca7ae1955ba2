"""The image explorer: both `docker save` layouts, steps paired with layers, files per layer, the panel.

Images are built on the real engine with BuildKit (`docker buildx build --load`, what `docker build`
runs today) and with the legacy builder; the two saved layouts the engine does not write itself
(Engine 24's `<id>/layer.tar`, the containerd store's gzip'd blobs) are written here with tarfile.
"""
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from helpers.course import layers as layer_model
from helpers.course.engine import image_store
from helpers.labs.explorer import ImageExplorer
from helpers.course.layers import (Layer, SaveFormatError, files_per_layer, layer_files, layers, read_saved, shared_layers, step_line, which_layer)
from helpers.exercises.nb01 import CONF, MYSTERY, SECRET_FILE, prepare_mystery
from helpers.course.labels import labels


def build(client, tag: str, dockerfile: str, files: dict | None = None, legacy: bool = False):
    """`docker buildx build --load -t TAG` (or the legacy builder's `docker build`); the image."""
    from python_on_whales import DockerClient
    with tempfile.TemporaryDirectory() as context:
        (Path(context) / "Dockerfile").write_text(dockerfile)
        for name, text in (files or {}).items():
            (Path(context) / name).write_text(text)
        if legacy:
            client.images.build(path=context, tag=tag, labels=labels(1), rm=True)
        else:
            DockerClient().buildx.build(context, tags=[tag], labels=labels(1), load=True,
                                        progress=False)
    return client.images.get(tag)


def forget_reads():
    """Drop what the explorer has read, so the next call reads the engine again."""
    for cache in (layer_model._CONFIGS, layer_model._SAVED, layer_model._FILES_CACHE):
        cache.clear()


def remove(client, *tags):
    for tag in tags:
        try:
            client.images.remove(tag, force=True)
        except Exception:
            pass


@pytest.fixture(scope="module")
def images(client, kit):
    """Two small images FROM busybox, each adding one file in one layer, and the mystery image."""
    built = {}
    for name, line in (("one", "echo one > /srv/one.txt"), ("two", "echo two > /srv/two.txt")):
        built[name] = f"course01.invalid/test-{name}"
        build(client, built[name], f"FROM {kit['busybox']}\nRUN mkdir -p /srv && {line}\n")
    prepare_mystery(client)
    yield built
    remove(client, *built.values(), MYSTERY)


# ------------------------------------------------------------------ steps as Dockerfile lines

@pytest.mark.parametrize("created_by, line", [
    ("RUN /bin/sh -c echo hi # buildkit", "RUN echo hi"),
    ("RUN |2 A=1 B=two words /bin/sh -c echo $A # buildkit", "RUN echo $A"),
    ("RUN |1 TOOL=x /usr/bin/tool --flag # buildkit", "RUN /usr/bin/tool --flag"),
    ("RUN /bin/sh -c echo heredoc > h.txt\n # buildkit", "RUN echo heredoc > h.txt"),
    ("COPY app.py /app/ # buildkit", "COPY app.py /app/"),
    ("WORKDIR /app", "WORKDIR /app"),
    ('CMD ["python3", "app.py"]', 'CMD ["python3", "app.py"]'),
    ("/bin/sh -c echo hi", "RUN echo hi"),
    ("|1 A=1 /bin/sh -c echo $A", "RUN echo $A"),
    ('/bin/sh -c #(nop)  CMD ["sh"]', 'CMD ["sh"]'),
    ("/bin/sh -c #(nop) COPY file:73e2b2 in /bin/busybox ", "COPY file:73e2b2 in /bin/busybox"),
    ("/bin/busybox --install -s /bin", "RUN /bin/busybox --install -s /bin"),
    ("", ""),
])
def test_step_line_reads_both_builders(created_by, line):
    assert step_line(created_by) == line


# ------------------------------------------------------------------ the two saved layouts

def _tar(members: list) -> bytes:
    """A tar of (name, bytes) files, ('name', '->target') symlinks, in the order given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LAYER_A = _tar([("etc/hostname", b"box\n"), ("etc/os", b"one\n")])
LAYER_B = _tar([("etc/.wh.os", b""), ("etc/hostname", b"two\n"), ("srv/new.txt", b"x\n")])
STEPS = ["ADD rootfs.tar /", "RUN change it"]


def _config(*layer_tars) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(t)}" for t in layer_tars]},
        "history": [{"created_by": STEPS[0]}, {"created_by": "ENV A=1", "empty_layer": True},
                    {"created_by": STEPS[1]}]}).encode()


def _stack(config: bytes) -> list:
    return [Layer(i, d, s, 0) for i, (d, s) in
            enumerate(zip(json.loads(config)["rootfs"]["diff_ids"], STEPS))]


def _assert_read(saved, config: bytes):
    assert saved.config == json.loads(config)
    files = files_per_layer(_stack(config), saved)
    assert files[0].added == ["/etc/hostname", "/etc/os"]
    assert files[1].deleted == ["/etc/os"] and files[1].changed == ["/etc/hostname"]
    assert files[1].added == ["/srv/new.txt"]


@pytest.mark.parametrize("manifest_first", [True, False])
def test_legacy_layout_of_engine_24(manifest_first):
    """`<id>/layer.tar` + `<config id>.json`, as Engine 20.10 to 24 save; a layer saved twice is
    a symlink."""
    config = _config(LAYER_A, LAYER_B, LAYER_A)
    cfg_name = _sha(config) + ".json"
    ids = ["a" * 64, "b" * 64, "c" * 64]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["legacy:1"],
                            "Layers": [f"{i}/layer.tar" for i in ids]}]).encode()
    layer_members = [(f"{ids[0]}/VERSION", b"1.0"), (f"{ids[0]}/json", b'{"id": "a"}'),
                     (f"{ids[0]}/layer.tar", LAYER_A),
                     (f"{ids[1]}/layer.tar", LAYER_B),
                     (f"{ids[2]}/layer.tar", f"->../{ids[0]}/layer.tar"),
                     (cfg_name, config), ("repositories", b'{"legacy": {"1": "c"}}')]
    heads = [("manifest.json", manifest)]
    members = heads + layer_members if manifest_first else layer_members + heads
    saved = read_saved(io.BytesIO(_tar(members)))
    assert saved.layout == "legacy"
    assert saved.blobs == [f"{i}/layer.tar" for i in ids]
    assert saved.entries[2] == saved.entries[0]
    _assert_read(saved, config)


def _oci(layer_tars: list, gzip_layers: bool, manifest_json: bool, blobs_last: bool,
         zstd: bool = False) -> tuple:
    """An OCI-layout save as the containerd store writes it: compressed blobs, an image index
    with an attestation beside the image's manifest."""
    blobs = {}

    def put(data: bytes) -> dict:
        blobs[_sha(data)] = data
        return {"digest": f"sha256:{_sha(data)}", "size": len(data)}

    config = _config(*layer_tars)
    packed = [(b"\x28\xb5\x2f\xfd" + t) if zstd else gzip.compress(t) if gzip_layers else t
              for t in layer_tars]
    layer_descs = [put(p) for p in packed]
    manifest = {"schemaVersion": 2, "config": put(config), "layers": layer_descs}
    attestation = {"schemaVersion": 2, "config": put(b'{"_type": "in-toto"}'),
                   "layers": [put(b'{"predicate": {}}')]}
    image_index = {"schemaVersion": 2, "manifests": [
        put(json.dumps(attestation).encode()), put(json.dumps(manifest).encode())]}
    index = {"schemaVersion": 2, "manifests": [put(json.dumps(image_index).encode())]}
    members = [(f"blobs/sha256/{h}", d) for h, d in sorted(blobs.items())]
    heads = [("index.json", json.dumps(index).encode()),
             ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')]
    if manifest_json:
        heads.append(("manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{_sha(config)}", "RepoTags": ["oci:1"],
            "Layers": [f"blobs/sha256/{_sha(p)}" for p in packed]}]).encode()))
    return _tar(heads + members if blobs_last else members + heads), config, packed


@pytest.mark.parametrize("manifest_json, blobs_last", [(True, False), (True, True),
                                                       (False, False)])
def test_oci_layout_with_gzip_layers(manifest_json, blobs_last):
    """The containerd store's save: gzip'd layer blobs (named by the compressed bytes), blobs
    before or after manifest.json, or no manifest.json at all (index.json leads the way)."""
    data, config, packed = _oci([LAYER_A, LAYER_B], True, manifest_json, blobs_last)
    saved = read_saved(io.BytesIO(data))
    assert saved.layout == "oci"
    assert saved.blobs == [f"blobs/sha256/{_sha(p)}" for p in packed]
    _assert_read(saved, config)
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert read_saved(io.BytesIO(data), diff_ids, config_only=True).config == json.loads(config)


def test_a_layout_this_reader_cannot_take_says_so():
    data, _, _ = _oci([LAYER_A], False, True, False, zstd=True)
    with pytest.raises(SaveFormatError, match="zstd"):
        read_saved(io.BytesIO(data))
    with pytest.raises(SaveFormatError, match="no image config"):
        read_saved(io.BytesIO(_tar([("blobs/sha256/" + _sha(LAYER_A), LAYER_A)])))


def test_this_engine_saves_a_layout_we_read(client, images):
    """What the running engine's `docker save` writes (the OCI layout from Engine 25 on)."""
    image = client.images.get(MYSTERY)
    with layer_model._save_stream(client, image.id) as stream:
        saved = read_saved(stream, image.attrs["RootFS"]["Layers"])
    major = int(client.version()["Version"].split(".")[0])
    assert saved.layout == ("oci" if major >= 25 else "legacy")
    assert saved.config["rootfs"]["diff_ids"] == image.attrs["RootFS"]["Layers"]
    assert len(saved.entries) == len(image.attrs["RootFS"]["Layers"])
    assert ("opt/app/conf/settings.ini", False) in [e for layer in saved.entries for e in layer]


# ------------------------------------------------------------------ steps paired with layers

def test_layers_pair_each_layer_with_its_step(client, images, kit):
    stack = layers(client, images["one"])
    base = layers(client, kit["busybox"])
    assert len(stack) == len(base) + 1
    assert stack[-1].step.startswith("RUN mkdir -p /srv")
    assert stack[-1].size_bytes > 0
    assert [l.diff_id for l in stack[:-1]] == [l.diff_id for l in base]


INTERLEAVED = """\
FROM {busybox}
ENV GREETING=hello
RUN echo a > /a.txt
LABEL course.example=interleaved
WORKDIR /work
COPY f.txt ./
ENV PLACE=world
WORKDIR /work
RUN echo $GREETING > b.txt
CMD ["cat", "b.txt"]
"""


@pytest.mark.parametrize("legacy", [False, True], ids=["buildkit", "legacy-builder"])
def test_metadata_steps_between_layers_keep_the_pairing(client, kit, legacy):
    tag = "course01.invalid/test-interleaved"
    try:
        build(client, tag, INTERLEAVED.format(busybox=kit["busybox"]), {"f.txt": "f\n"}, legacy)
        files = layer_files(client, tag)[len(layers(client, kit["busybox"])):]
        made_by = {path: f.layer.step for f in files for path in f.added}
        assert made_by == {"/a.txt": "RUN echo a > /a.txt", "/work/f.txt": made_by["/work/f.txt"],
                           "/work/b.txt": "RUN echo $GREETING > b.txt"}
        assert made_by["/work/f.txt"].startswith("COPY")
        assert not [f for f in files if f.layer.step.split(" ")[0] in ("ENV", "LABEL", "CMD")]
        assert all(not f.added for f in files if f.layer.step.startswith("WORKDIR"))
        if legacy:
            # The legacy builder's WORKDIR makes a layer only when the folder is new, and
            # docker history shows 0 B for both: only the config's empty_layer tells them apart.
            assert [f.layer.step.split(" ")[0] for f in files] == ["RUN", "WORKDIR", "COPY",
                                                                    "RUN"]
        assert which_layer(client, tag, "/work/b.txt").step == "RUN echo $GREETING > b.txt"
    finally:
        remove(client, tag)


def test_a_cached_rebuild_pairs_identically(client, kit):
    tag = "course01.invalid/test-cached"
    dockerfile = INTERLEAVED.format(busybox=kit["busybox"])
    try:
        first = build(client, tag, dockerfile, {"f.txt": "f\n"})
        forget_reads()
        before = [(l.diff_id, l.step, l.size_bytes) for l in layers(client, tag)]
        again = build(client, tag, dockerfile, {"f.txt": "f\n"})  # every step CACHED
        forget_reads()
        after = [(l.diff_id, l.step, l.size_bytes) for l in layers(client, tag)]
        assert after == before
        # The classic store keeps the same image; the containerd store may write a new manifest
        # (its ID is the manifest's digest) around the very same layers.
        if image_store(client.info()) == "classic":
            assert again.id == first.id
        assert [s for _, s, _ in after][-1] == "RUN echo $GREETING > b.txt"
    finally:
        remove(client, tag)


def test_shared_layers_are_the_common_base(client, images, kit):
    shared = shared_layers(client, images["one"], images["two"])
    assert [l.diff_id for l in shared] == [l.diff_id for l in layers(client, kit["busybox"])]
    assert shared_layers(client, images["one"], images["one"]) == layers(client, images["one"])


def test_layer_files_sees_added_changed_and_deleted(client, images):
    files = layer_files(client, MYSTERY)
    assert files[-1].changed == [f"{CONF}/app.ini"] and not files[-1].added
    brought = next(f for f in files if SECRET_FILE in f.added)
    assert brought.deleted == ["/opt/app/staging/m8-settings.ini"]  # moved out of staging/
    assert any("/srv/one.txt" in f.added for f in layer_files(client, images["one"]))


def test_which_layer_finds_the_step(client, images):
    stack = layers(client, MYSTERY)
    layer = which_layer(client, MYSTERY, SECRET_FILE)
    movers = [l for l in stack if "mv " in l.step]
    assert len(movers) == 4 and len({l.step for l in movers}) == 1  # history cannot tell them apart
    assert layer == movers[2]
    assert which_layer(client, MYSTERY, "/opt/app/staging/m8-settings.ini") is None  # moved away
    assert which_layer(client, MYSTERY, f"{CONF}/app.ini") == stack[-1]
    assert which_layer(client, MYSTERY, "/no/such/file") is None


# ------------------------------------------------------------------ the panel

def test_explorer_panel_shows_inspect_history_layers(client, images):
    ex = ImageExplorer(client, image=images["one"])
    assert ex.image.value == images["one"] + ":latest"
    assert "docker image inspect" in ex.inspect_html.value and "course01.invalid/test-one" in \
        ex.inspect_html.value
    assert "docker history" in ex.history_html.value and "RUN mkdir -p /srv" in \
        ex.history_html.value and "# buildkit" not in ex.history_html.value
    assert "&lt;missing&gt;" in ex.history_html.value  # BuildKit keeps no step images
    assert ex.chart.value[:4] == b"\x89PNG"
    ex.compare.value = images["two"] + ":latest"
    assert "share their bottom" in ex.shared_html.value


def test_explorer_find_button(client, images):
    ex = ImageExplorer(client, image=MYSTERY)
    ex.path.value = SECRET_FILE
    ex.find_button.click()
    layer = which_layer(client, MYSTERY, SECRET_FILE)
    assert f"was put there by layer {layer.index}: diff ID {layer.short_id}" in ex.find_html.value
    ex.path.value = "/nope"
    ex.find_button.click()
    assert "No layer" in ex.find_html.value
    ex.path.value = ""
    ex.find_button.click()
    assert "Type a path" in ex.find_html.value


def test_explorer_reports_a_vanished_image(client, kit):
    build(client, "course01.invalid/test-gone", f"FROM {kit['busybox']}\nRUN echo gone > /gone.txt\n")
    ex = ImageExplorer(client, image="course01.invalid/test-gone:latest")
    client.images.remove("course01.invalid/test-gone:latest", force=True)
    ex.show()
    assert "gone" in ex.status.value and "Refresh" in ex.status.value
    ex.refresh_button.click()
    assert "course01.invalid/test-gone:latest" not in ex.image.options


def test_engine_not_answering_is_an_error_line():
    import docker
    dead = docker.DockerClient(base_url="unix:///tmp/dockercourse-no-engine.sock", version="1.41")
    ex = ImageExplorer(dead)
    assert "Could not list images" in ex.status.value


@pytest.mark.parametrize("path,words", [("../../etc/shadow", "cannot climb above"),
                                        ("/" + "a" * 10_000, "4096 at most")])
def test_hostile_paths_are_answered_without_reading_anything(client, kit, path, words):
    """A path that climbs, and a 10 KB path: a plain answer at once, no save is read."""
    import time
    ex = ImageExplorer(client, image=kit["busybox"])
    ex.path.value = path
    started = time.monotonic()
    ex.find_button.click()
    assert words in ex.find_html.value and time.monotonic() - started < 1
    assert "shadow" not in ex.find_html.value or "/etc/shadow" in ex.find_html.value
