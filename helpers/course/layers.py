"""Looking inside images: layers, the files each layer added, shared layers (taught in 01-images).

An image is a stack of read-only layers (`RootFS.Layers`, bottom first, each named by its diff
ID: the sha256 of the layer's uncompressed tar) plus a config. `layers(client, ref)` pairs each
layer with the Dockerfile step that made it and the bytes it adds; `layer_files(client, ref)`
reads the image as `docker save` writes it and lists what every layer added, changed or deleted;
`shared_layers(a, b)` is the stack two images have in common, stored once on disk.
`helpers.labs.explorer.ImageExplorer` puts all of it in one panel.

`docker save` writes one of two layouts, and both are read here, streamed, never unpacked:
- up to Engine 24: `<id>/layer.tar` per layer and `<config id>.json`, named by `manifest.json`;
- from Engine 25: the OCI layout (`index.json`, `blobs/sha256/<hex>`), again with a
  `manifest.json` whose paths point into `blobs/`. On the containerd image store (Docker 29's
  default, Docker Desktop) the layer blobs are compressed (gzip), so a blob's name is not the
  layer's diff ID, and the image ID is the digest of the manifest, not of the config.
"""
from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import docker
from docker.errors import APIError


MAX_PATH = 4096   # Linux's PATH_MAX
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
JSON_LIMIT = 8 << 20      # configs, manifests and indexes are small; a layer is never JSON
_RUN_ARGS = re.compile(r"^\|(\d+) ")   # `|2 A=1 B=2 `: the build args a RUN saw


def step_line(created_by: str) -> str:
    """A history entry's `created_by` as the Dockerfile line it came from: `RUN echo hi`.

    The legacy builder records `/bin/sh -c #(nop)  CMD ["sh"]` and `/bin/sh -c echo hi`;
    BuildKit records `CMD ["sh"]` and `RUN /bin/sh -c echo hi # buildkit`. A RUN that saw build
    args starts with `|N A=1 ...`; an exec-form RUN is recorded as its bare command.
    """
    text = created_by.strip()
    if text.endswith("# buildkit"):
        text = text[:-len("# buildkit")].rstrip()
    if not text or text.startswith("#"):
        return text  # no step, or a note a tool left (`# debian.sh ...`): show it as it is
    run = text.startswith("RUN ")
    if run:
        text = text[len("RUN "):].lstrip()
    args = _RUN_ARGS.match(text)
    if args:
        rest = text[args.end():]
        shell = rest.find("/bin/sh -c ")
        text = rest[shell:] if shell >= 0 else " ".join(rest.split(" ")[int(args.group(1)):])
    if text.startswith("/bin/sh -c #(nop) "):
        text = text[len("/bin/sh -c #(nop) "):]
    elif text.startswith("/bin/sh -c "):
        text, run = text[len("/bin/sh -c "):], True
    elif not text.split(" ")[0].isupper():
        run = True
    return " ".join((f"RUN {text}" if run else text).split())


@dataclass
class Layer:
    """One layer of an image, bottom (index 0) to top."""
    index: int
    diff_id: str            # sha256 of the layer's uncompressed tar: its identity
    created_by: str         # the history entry of the step that made it
    size_bytes: int         # what the layer adds on disk
    step_image_id: str = ""  # the image a legacy build kept for this step ('' if none: BuildKit)

    @property
    def short_id(self) -> str:
        """The diff ID's first 12 hex digits, as `docker` shortens IDs."""
        return self.diff_id.split(":")[-1][:12]

    @property
    def step(self) -> str:
        """The step as a Dockerfile line: `RUN ...`, `COPY ...`."""
        return step_line(self.created_by)


# ------------------------------------------------------------------ reading `docker save`

class SaveFormatError(tarfile.TarError):
    """`docker save` wrote something this reader cannot take apart; the message says what."""


@dataclass
class SavedImage:
    """An image as `docker save` wrote it: its config and, per layer, what its tar lists."""
    config: dict
    blobs: list = field(default_factory=list)   # per layer, bottom first: its path in the tar
    entries: list = field(default_factory=list)  # per layer: [(path, is_dir), ...] in tar order
    layout: str = ""                             # "oci" (Engine 25+) or "legacy" (<id>/layer.tar)


def _kind(head: bytes) -> str:
    """What a member of the saved tar is, from its first bytes: its name does not say."""
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar" or (len(head) == 512 and
                                                              not any(head)):
        return "tar"    # a layer: plain, gzip'd, or empty (a tar of zeros)
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "other"


def _is_config(doc, diff_ids) -> bool:
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    return isinstance(rootfs, dict) and rootfs.get("diff_ids") == list(diff_ids)


def _tar_entries(fileobj) -> list:
    """[(path, is_dir)] of a layer tar, gzip'd or not, read as a stream."""
    with tarfile.open(fileobj=fileobj, mode="r|*") as inner:
        return [(m.name, m.isdir()) for m in inner]


def _blob(descriptor: dict) -> str:
    return "blobs/" + descriptor["digest"].replace(":", "/", 1)


def _from_index(docs: dict, diff_ids) -> tuple:
    """OCI layout without manifest.json: index.json → (nested indexes) → manifest → config."""
    todo = list((docs.get("index.json") or {}).get("manifests", []))
    found = []
    while todo:
        doc = docs.get(_blob(todo.pop(0)))
        if not isinstance(doc, dict):
            continue
        todo.extend(doc.get("manifests", []))
        config = docs.get(_blob(doc["config"])) if isinstance(doc.get("config"), dict) else None
        if isinstance(config, dict) and "rootfs" in config:  # not an attestation
            found.append((config, [_blob(d) for d in doc.get("layers", [])]))
    for config, blobs in found:
        if diff_ids is None or _is_config(config, diff_ids):
            return config, blobs
    return None, []


def read_saved(stream, diff_ids: list | None = None, config_only: bool = False,
               progress=None, total: int = 0) -> SavedImage:
    """Read a `docker save` tar from `stream` (any layout, any member order), never unpacking it.

    Members are sorted by their first bytes, because an OCI blob's name does not say what it is
    and layer blobs may come before manifest.json: a tar (plain or gzip) is a layer, JSON is a
    config, manifest or index. Each layer tar's listing is kept by its path, and manifest.json
    (or index.json) puts them in order at the end. With `config_only`, reading stops as soon as
    the config whose `rootfs.diff_ids` are `diff_ids` has gone by.
    """
    listings, docs, links, compressed = {}, {}, {}, set()
    seen = 0
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            name = posixpath.normpath(member.name)
            if member.issym() or member.islnk():  # a layer saved twice (legacy layout)
                base = posixpath.dirname(name) if member.issym() else ""
                links[name] = posixpath.normpath(posixpath.join(base, member.linkname))
                continue
            if not member.isfile() or member.size == 0:
                continue
            data = outer.extractfile(member)
            kind = _kind(data.peek(512)[:512])
            if kind == "tar" and not config_only:
                listings[name] = _tar_entries(data)
                seen += member.size
                if progress:
                    progress.update(min(seen / max(total, 1), 0.99),
                                    caption=f"{len(listings)} layers read")
            elif kind == "json" and member.size <= JSON_LIMIT:
                try:
                    docs[name] = json.load(data)
                except ValueError:
                    continue
                if config_only and diff_ids is not None and _is_config(docs[name], diff_ids):
                    return SavedImage(docs[name])
            elif kind == "zstd":
                compressed.add(name)

    def resolve(path: str) -> str:
        path = posixpath.normpath(path)
        for _ in range(8):
            if path not in links:
                break
            path = links[path]
        return path

    manifest = docs.get("manifest.json")
    entries = [e for e in manifest if isinstance(e, dict)] if isinstance(manifest, list) else []
    chosen = next((e for e in entries if diff_ids is None or
                   _is_config(docs.get(resolve(e.get("Config", ""))), diff_ids)),
                  entries[0] if entries else None)
    if chosen:
        config, blobs = docs.get(resolve(chosen.get("Config", ""))), chosen.get("Layers", [])
    else:
        config, blobs = _from_index(docs, diff_ids)
    if config is None and diff_ids is not None:
        config = next((d for d in docs.values() if _is_config(d, diff_ids)), None)
    if not isinstance(config, dict):
        raise SaveFormatError("the saved image holds no image config: neither manifest.json "
                              "nor index.json leads to one")
    layout = "oci" if "index.json" in docs or any(b.startswith("blobs/") for b in blobs) \
        else "legacy"
    if config_only:
        return SavedImage(config, layout=layout)
    entries_per_layer = []
    for i, path in enumerate(blobs):
        path = resolve(path)
        if path in compressed:
            raise SaveFormatError(f"layer {i} is compressed with zstd, which this Python cannot "
                                  "read; `docker save` it from an image stored with gzip")
        if path not in listings:
            raise SaveFormatError(f"layer {i} ({path}) is missing from what docker save wrote")
        entries_per_layer.append(listings[path])
    return SavedImage(config, blobs, entries_per_layer, layout)


class _ChunkReader(io.RawIOBase):
    """A file-like view of the chunks `docker save` yields, so tarfile can stream it."""

    def __init__(self, chunks):
        self._chunks, self._buf = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, b):
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n], self._buf = self._buf[:n], self._buf[n:]
        return n


@contextmanager
def _save_stream(client: docker.DockerClient, image_id: str):
    """`docker save IMAGE` as a file to read from; leaving the block early ends the transfer."""
    chunks = client.api.get_image(image_id, chunk_size=1 << 20)
    try:
        yield io.BufferedReader(_ChunkReader(chunks), 1 << 20)
    finally:
        chunks.close()


# Keyed by image ID: an ID names the image's content, which never changes.
_CONFIGS: dict[str, dict] = {}
_SAVED: dict[str, SavedImage] = {}
_FILES_CACHE: dict[str, list] = {}


def saved_image(client: docker.DockerClient, ref: str, progress=None) -> SavedImage:
    """`docker save ref`, read as a stream: the config and every layer's file list."""
    image = client.images.get(ref)
    if image.id not in _SAVED:
        with _save_stream(client, image.id) as stream:
            saved = read_saved(stream, image.attrs["RootFS"].get("Layers") or [],
                               progress=progress, total=image.attrs.get("Size") or 1)
        _SAVED[image.id] = saved
        _CONFIGS[image.id] = saved.config
    return _SAVED[image.id]


def image_config(client: docker.DockerClient, ref: str) -> dict:
    """The image's config as `docker save` holds it (history with `empty_layer`, rootfs...).

    The engine's API shows no raw config, so `docker save` is read only until the config has
    gone by."""
    image = client.images.get(ref)
    if image.id not in _CONFIGS:
        with _save_stream(client, image.id) as stream:
            _CONFIGS[image.id] = read_saved(stream, image.attrs["RootFS"].get("Layers") or [],
                                            config_only=True).config
    return _CONFIGS[image.id]


# ------------------------------------------------------------------ layers and their steps

def _guess_makes_layer(entry: dict):
    """From `docker history` alone: True, False, or None (a WORKDIR: only the config knows)."""
    if int(entry.get("Size") or 0) > 0:
        return True
    keyword = step_line(entry.get("CreatedBy", "")).split(" ")[0]
    if keyword in ("RUN", "COPY", "ADD"):
        return True
    # BuildKit's WORKDIR always makes a layer; the legacy builder's only when it made the folder.
    return None if keyword == "WORKDIR" else False


def _guess_layer_steps(entries: list, count: int) -> list:
    guesses = [_guess_makes_layer(e) for e in entries]
    sure = [e for e, g in zip(entries, guesses) if g]
    either = [e for e, g in zip(entries, guesses) if g is not False]
    for chosen in (sure, either):
        if len(chosen) == count:
            return chosen
    return [{}] * count  # an image from elsewhere with an unusual history


def layers(client: docker.DockerClient, ref: str) -> list[Layer]:
    """The layers of `ref`, bottom first: `docker inspect` (RootFS) + `docker history` (steps).

    Which steps made a layer is exact only in the image config's history (`empty_layer`), on
    both image stores and for both builders: `docker history` shows 0 B both for a step that made
    no layer (ENV, LABEL) and for a layer without file bytes (BuildKit's WORKDIR, `RUN mkdir` of
    a folder that exists), and BuildKit keeps no step images to tell them apart. So the config
    is read from `docker save` (once per image ID); only if that fails are steps guessed from
    their text. The sizes and step images come from `docker history`.
    """
    image = client.images.get(ref)
    diff_ids = image.attrs["RootFS"].get("Layers") or []
    entries = list(reversed(image.history()))  # bottom first, one per config history entry
    try:
        history = image_config(client, image.id).get("history") or []
    except (APIError, OSError, tarfile.TarError):
        history = []
    if len(history) == len(entries) and \
            sum(not h.get("empty_layer") for h in history) == len(diff_ids):
        steps = [e for e, h in zip(entries, history) if not h.get("empty_layer")]
    else:
        steps = _guess_layer_steps(entries, len(diff_ids))
    return [Layer(i, d, s.get("CreatedBy", "?"), int(s.get("Size") or 0),
                  s.get("Id", "") if s.get("Id", "").startswith("sha256:") else "")
            for i, (d, s) in enumerate(zip(diff_ids, steps))]


def shared_layers(client: docker.DockerClient, a: str, b: str) -> list[Layer]:
    """The layers `a` and `b` share: the common bottom of both stacks, stored once on disk.

    A layer counts as shared only with everything below it: the same files on a different base
    make a different layer stack.
    """
    la, lb = layers(client, a), layers(client, b)
    shared = []
    for x, y in zip(la, lb):
        if x.diff_id != y.diff_id:
            break
        shared.append(x)
    return shared


@dataclass
class LayerFiles:
    """What one layer did to the file system, as paths inside the image."""
    layer: Layer
    added: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    blob: str = ""   # the layer's tar inside `docker save` (blobs/sha256/... or <id>/layer.tar)


def files_per_layer(stack: list[Layer], saved: SavedImage) -> list[LayerFiles]:
    """Sort each layer's tar listing into added, changed and deleted paths (whiteouts)."""
    present: set = set()
    result = []
    for layer, entries, blob in zip(stack, saved.entries, saved.blobs):
        files = LayerFiles(layer, blob=blob)
        # An opaque folder hides everything the layers below had in it, wherever the marker
        # comes in the tar.
        for name, _ in entries:
            head, leaf = posixpath.split("/" + name.strip("/"))
            if leaf == OPAQUE:
                hidden = sorted(p for p in present if p.startswith(head.rstrip("/") + "/"))
                files.deleted.extend(hidden)
                present.difference_update(hidden)
        for name, is_dir in entries:
            path = "/" + name.strip("/")
            head, leaf = posixpath.split(path)
            if leaf == OPAQUE:
                continue
            if leaf.startswith(WHITEOUT):
                gone = posixpath.join(head, leaf[len(WHITEOUT):])
                files.deleted.append(gone)
                present.discard(gone)
                continue
            if is_dir:
                continue  # a directory shows up whenever something inside it changes
            (files.changed if path in present else files.added).append(path)
            present.add(path)
        result.append(files)
    return result


def layer_files(client: docker.DockerClient, ref: str, progress=None) -> list[LayerFiles]:
    """Per layer, bottom first: the files it added, changed and deleted (`docker save` + tar)."""
    image = client.images.get(ref)
    if image.id not in _FILES_CACHE:
        saved = saved_image(client, image.id, progress)
        _FILES_CACHE[image.id] = files_per_layer(layers(client, image.id), saved)
    return _FILES_CACHE[image.id]


def which_layer(client: docker.DockerClient, ref: str, path: str, progress=None) -> Layer | None:
    """The layer that last put `path` into the image (None if no layer holds it)."""
    path = "/" + path.strip("/")
    found = None
    for files in layer_files(client, ref, progress):
        if path in files.added or path in files.changed:
            found = files.layer
        elif path in files.deleted:
            found = None
    return found


