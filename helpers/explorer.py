"""Looking inside images: layers, the files each layer added, shared layers (taught in 01-images).

An image is a stack of read-only layers (`RootFS.Layers`, bottom first) plus a config.
`layers(client, ref)` pairs each layer with the Dockerfile step that made it and the bytes it
adds (`docker history`); `layer_files(client, ref)` opens the image as `docker save` writes it
and lists what every layer added, changed or deleted; `shared_layers(a, b)` is the stack two
images have in common, stored once on disk. `ImageExplorer` puts all of it in one panel.
"""
from __future__ import annotations

import html
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass, field

import docker
from docker.errors import APIError, ImageNotFound

from .ui import GREEN, GREY, Progress, error_html, human_bytes, status_html

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass
class Layer:
    """One layer of an image, bottom (index 0) to top."""
    index: int
    diff_id: str            # sha256 of the layer's uncompressed tar: its identity
    created_by: str         # the Dockerfile step that made it
    size_bytes: int         # what the layer adds on disk
    step_image_id: str = ""  # the image a local build kept for this step ('' if not kept)

    @property
    def short_id(self) -> str:
        return self.diff_id.split(":")[-1][:12]

    @property
    def step(self) -> str:
        """The step as a Dockerfile line: `RUN ...`, `COPY ...`."""
        text = self.created_by.replace("/bin/sh -c #(nop) ", "").strip()
        if text.startswith("/bin/sh -c "):
            text = "RUN " + text[len("/bin/sh -c "):]
        elif not text.split(" ")[0].isupper():
            text = "RUN " + text  # exec form: RUN ["/bin/busybox", ...] is recorded bare
        return " ".join(text.split())


def _makes_layer(created_by: str) -> bool:
    """Metadata steps (LABEL, ENV, CMD...) are recorded as `#(nop)` and add no layer; COPY/ADD do."""
    if "#(nop)" not in created_by:
        return True
    after = created_by.split("#(nop)", 1)[1].split()
    return bool(after) and after[0] in ("COPY", "ADD")


def _layer_steps(history: list, count: int) -> list[dict]:
    """The `docker history` entries that made the image's `count` layers, bottom first."""
    entries = list(reversed(history))
    sure = [i for i, h in enumerate(entries) if _makes_layer(h.get("CreatedBy", ""))]
    # WORKDIR adds a layer only when it had to create the folder, which history does not say.
    maybe = [i for i, h in enumerate(entries)
             if i not in sure and "#(nop) WORKDIR " in h.get("CreatedBy", "")]
    for chosen in (sure, sorted(sure + maybe)):
        if len(chosen) == count:
            return [entries[i] for i in chosen]
    return [{}] * count  # an image from elsewhere with an unusual history


def layers(client: docker.DockerClient, ref: str) -> list[Layer]:
    """The layers of `ref`, bottom first: `docker inspect` (RootFS) + `docker history` (steps)."""
    image = client.images.get(ref)
    diff_ids = image.attrs["RootFS"].get("Layers") or []
    steps = _layer_steps(image.history(), len(diff_ids))
    return [Layer(i, d, s.get("CreatedBy", "?"), int(s.get("Size", 0)),
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


_FILES_CACHE: dict[str, list] = {}


def _read_saved_image(client: docker.DockerClient, ref: str, progress=None):
    """Stream `docker save ref`: the manifest, the config and each layer tar's member list."""
    image = client.images.get(ref)
    listing, manifest, configs, links = {}, None, {}, {}
    stream = io.BufferedReader(_ChunkReader(image.save(chunk_size=1 << 20)), 1 << 20)
    total = max(image.attrs.get("Size", 1), 1)
    seen = 0
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            if member.name.endswith("/layer.tar"):
                if member.issym() or member.islnk():  # a layer saved twice is a link
                    links[member.name] = posixpath.normpath(
                        posixpath.join(posixpath.dirname(member.name), member.linkname))
                    continue
                entries = []
                with tarfile.open(fileobj=outer.extractfile(member), mode="r|") as inner:
                    for m in inner:
                        entries.append((m.name, m.isdir()))
                listing[member.name] = entries
                seen += member.size
                if progress:
                    progress.update(min(seen / total, 0.99), caption=f"{len(listing)} layers read")
            elif member.name == "manifest.json":
                manifest = json.load(outer.extractfile(member))
            elif member.name.endswith(".json") and "/" not in member.name:
                configs[member.name] = json.load(outer.extractfile(member))
    for name, target in links.items():
        listing[name] = listing.get(target, [])
    entry = manifest[0]
    return image, [listing.get(p, []) for p in entry["Layers"]], configs.get(entry["Config"], {})


class _ChunkReader(io.RawIOBase):
    """A file-like view of the chunks `Image.save()` yields, so tarfile can stream it."""

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


def layer_files(client: docker.DockerClient, ref: str, progress=None) -> list[LayerFiles]:
    """Per layer, bottom first: the files it added, changed and deleted (`docker save` + tar)."""
    image = client.images.get(ref)
    if image.id in _FILES_CACHE:
        return _FILES_CACHE[image.id]
    image, per_layer, config = _read_saved_image(client, ref, progress)
    base = layers(client, ref)
    # The saved config records exactly which history steps made a layer.
    steps = [h for h in config.get("history", []) if not h.get("empty_layer")]
    if len(steps) == len(base):
        for layer, h in zip(base, steps):
            layer.created_by = h.get("created_by", layer.created_by)
    present: set = set()
    result = []
    for layer, entries in zip(base, per_layer):
        files = LayerFiles(layer)
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
    _FILES_CACHE[image.id] = result
    return result


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


def layers_chart_png(stack: list[Layer], title: str, shared: int = 0) -> bytes:
    """A horizontal bar per layer (bottom layer at the bottom), in KiB; shared layers in grey."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.5, 0.45 * len(stack) + 1.3), dpi=90)
    ax = fig.add_subplot()
    kib = [l.size_bytes / 1024 for l in stack]
    colours = [GREY if l.index < shared else GREEN for l in stack]
    ax.barh(range(len(stack)), kib, color=colours)
    ax.set_yticks(range(len(stack)))
    ax.set_yticklabels([f"{l.index}: {l.step[:38]}" for l in stack], fontsize=8)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("size the layer adds (KiB, log scale)")
    for y, layer in enumerate(stack):
        ax.text(kib[y], y, f" {human_bytes(layer.size_bytes)}", va="center", fontsize=8)
    ax.set_title(title + (f"  (grey: {shared} shared layers)" if shared else ""), fontsize=9)
    ax.margins(x=0.25)
    fig.tight_layout()
    from .charts import png
    return png(fig)


def _with_tag(name: str | None) -> str | None:
    """'course01/hello' → 'course01/hello:latest', as the engine lists it."""
    if name and ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        return name + ":latest"
    return name


def _table(headers: list, rows: list) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px;font-family:monospace'>"
                                    f"{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class ImageExplorer:
    """Pick an image: its inspect summary and tags, its history, a layer chart, where a file came from.

    Headless use: set `explorer.image.value` (and `explorer.compare.value`), call
    `explorer.find_button.click()` after setting `explorer.path.value`.
    """

    NONE = "(none)"

    def __init__(self, client: docker.DockerClient, image: str | None = None,
                 compare: str | None = None):
        import ipywidgets as w
        self.client = client
        self.image = w.Dropdown(description="image", layout=w.Layout(width="45%"))
        self.compare = w.Dropdown(description="compare with", layout=w.Layout(width="45%"),
                                  style={"description_width": "initial"})
        self.refresh_button = w.Button(description="Refresh list", icon="refresh")
        self.inspect_html, self.history_html = w.HTML(), w.HTML()
        self.chart = w.Image(format="png")
        self.shared_html = w.HTML()
        self.path = w.Text(description="file", placeholder="/etc/passwd")
        self.find_button = w.Button(description="Which layer?", icon="search")
        self.find_html = w.HTML()
        self.error = w.HTML()
        self.tabs = w.Tab(children=[
            self.inspect_html, self.history_html, w.VBox([self.shared_html, self.chart]),
            w.VBox([w.HBox([self.path, self.find_button]), self.progress_box(), self.find_html])])
        for i, title in enumerate(("Inspect & tags", "History", "Layers", "Find a file")):
            self.tabs.set_title(i, title)
        self.refresh_button.on_click(lambda _: self.refresh_list())
        self.find_button.on_click(lambda _: self.find())
        self._quiet = False
        self.image.observe(lambda _: self._quiet or self.show(), names="value")
        self.compare.observe(lambda _: self._quiet or self.show_layers(), names="value")
        self.widget = w.VBox([w.HBox([self.image, self.compare, self.refresh_button]),
                              self.error, self.tabs])
        self.refresh_list(image, compare)

    def progress_box(self):
        self._progress_widget = Progress.make_widget("reading layers")
        self._progress_widget.layout.visibility = "hidden"
        return self._progress_widget

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def refresh_list(self, image: str | None = None, compare: str | None = None) -> None:
        """`docker images`: every tagged image, the course's own first."""
        try:
            # The low-level call answers in one request: no image can vanish half-way through.
            tags = sorted({t for img in self.client.api.images() for t in img.get("RepoTags") or []
                           if t != "<none>:<none>"},
                          key=lambda t: (not t.startswith("course"), t))
        except (APIError, OSError) as exc:
            self.error.value = error_html(f"Could not list images: {exc}. Is the engine running?")
            return
        keep, keep_cmp = _with_tag(image) or self.image.value, _with_tag(compare) or self.compare.value
        self._quiet = True  # one redraw at the end, not one per changed dropdown
        try:
            self.image.options = tags
            self.compare.options = [self.NONE] + tags
            self.compare.value = keep_cmp if keep_cmp in tags else self.NONE
            self.image.value = keep if keep in tags else (tags[0] if tags else None)
        finally:
            self._quiet = False
        self.show()

    def show(self) -> None:
        """Fill the Inspect, History and Layers tabs for the chosen image."""
        ref = self.image.value
        self.error.value = self.find_html.value = ""
        if not ref:
            self.error.value = error_html("No images on this engine yet: build or pull one, "
                                          "then press Refresh list.")
            return
        try:
            image = self.client.images.get(ref)
            history = image.history()
        except ImageNotFound:
            self.error.value = error_html(f"{ref} is gone (removed since the list was made): "
                                          "press Refresh list.")
            return
        except (APIError, OSError) as exc:
            self.error.value = error_html(f"The engine did not answer about {ref}: {exc}")
            return
        a = image.attrs
        cfg = a.get("Config") or {}
        rows = [("ID", image.id), ("tags", ", ".join(a.get("RepoTags") or []) or "(none)"),
                ("created", a.get("Created", "")[:19].replace("T", " ")),
                ("size", human_bytes(a.get("Size", 0))),
                ("platform", f"{a.get('Os')}/{a.get('Architecture')}"),
                ("layers", len(a["RootFS"].get("Layers") or [])),
                ("working dir", cfg.get("WorkingDir") or "/"),
                ("command", " ".join(cfg.get("Entrypoint") or []) + " " +
                 " ".join(cfg.get("Cmd") or [])),
                ("labels", ", ".join(f"{k}={v}" for k, v in (cfg.get("Labels") or {}).items()))]
        self.inspect_html.value = (
            f"<div style='color:{GREY}'>client.images.get({ref!r}).attrs "
            f"&nbsp;≈&nbsp; docker image inspect {html.escape(ref)}</div>" +
            _table(["", ""], rows))
        self.history_html.value = (
            f"<div style='color:{GREY}'>client.images.get({ref!r}).history() "
            f"&nbsp;≈&nbsp; docker history {html.escape(ref)} (newest step first)</div>" +
            _table(["image", "step", "size"],
                   [((h["Id"].split(":")[-1][:12] if h["Id"].startswith("sha256:")
                      else "<missing>"), Layer(0, "", h.get("CreatedBy", ""), 0).step[:70],
                     human_bytes(h.get("Size", 0))) for h in history]))
        self.show_layers()

    def show_layers(self) -> None:
        ref, other = self.image.value, self.compare.value
        if not ref:
            return
        try:
            stack = layers(self.client, ref)
            shared = shared_layers(self.client, ref, other) if other and other != self.NONE else []
        except ImageNotFound as exc:
            self.error.value = error_html(f"{exc.explanation or exc}: press Refresh list.")
            return
        except (APIError, OSError) as exc:
            self.error.value = error_html(f"The engine did not answer: {exc}")
            return
        self.chart.value = layers_chart_png(stack, ref, len(shared))
        total = sum(l.size_bytes for l in stack)
        text = f"{len(stack)} layers, {human_bytes(total)} in all."
        if other and other != self.NONE:
            saved = sum(l.size_bytes for l in shared)
            text += (f" {ref} and {other} share their bottom {len(shared)} layers "
                     f"({human_bytes(saved)}), stored once on disk." if shared else
                     f" {ref} and {other} share no layer: they are built on different bases.")
        self.shared_html.value = status_html(None, text)

    def find(self) -> Layer | None:
        """Which layer put the file at `self.path.value` into the image (reads `docker save`)."""
        ref, path = self.image.value, self.path.value.strip()
        if not ref:
            self.find_html.value = error_html("Pick an image first (Refresh list if it is new).")
            return None
        if not path:
            self.find_html.value = error_html("Type a path inside the image, like /etc/passwd.")
            return None
        self._progress_widget.layout.visibility = "visible"
        try:
            with Progress(f"docker save {ref}", 1.0, widget=self._progress_widget) as bar:
                layer = which_layer(self.client, ref, path, progress=bar)
        except ImageNotFound:
            self.find_html.value = error_html(f"{ref} is gone: press Refresh list.")
            return None
        except (APIError, OSError, tarfile.TarError) as exc:
            self.find_html.value = error_html(f"Could not read the layers of {ref}: {exc}")
            return None
        if layer is None:
            self.find_html.value = status_html(
                False, f"No layer of {ref} holds {path}.",
                "check the spelling; paths are absolute, like /etc/hostname")
            return None
        step = f"the build kept this step as image {layer.step_image_id.split(':')[-1][:12]}" \
            if layer.step_image_id else "no step image is kept for it (the image was pulled)"
        self.find_html.value = status_html(
            True, f"{path} was put there by layer {layer.index} ({layer.short_id}, "
                  f"{human_bytes(layer.size_bytes)}), made by: {layer.step[:80]}", step)
        return layer
