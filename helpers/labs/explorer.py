"""The image explorer panel of 01-images: pick an image, see its layers, history and files."""
from __future__ import annotations

import html
import posixpath
import tarfile

import docker
from docker.errors import APIError, ImageNotFound

from helpers.course.layers import (MAX_PATH, Layer, layers, shared_layers,
                                   step_line, which_layer)
from helpers.course.ui import (GREEN, GREY, Panel, Progress, error_html, html_table, human_bytes,
                               plain_words, status_html)


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
    from helpers.measure.charts import png
    return png(fig)


def _with_tag(name: str | None) -> str | None:
    """'course01.invalid/hello' → 'course01.invalid/hello:latest', as the engine lists it."""
    if name and ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        return name + ":latest"
    return name


class ImageExplorer(Panel):
    """Pick an image: its inspect summary and tags, its history, a layer chart, where a file came from.

    Headless use: set `explorer.image.value` (and `explorer.compare.value`), call
    `explorer.find_button.click()` after setting `explorer.path.value`.
    """

    NONE = "(none)"

    def __init__(self, client: docker.DockerClient, image: str | None = None,
                 compare: str | None = None):
        import ipywidgets as w
        super().__init__()
        self.client = client
        self.image = w.Dropdown(description="image", layout=w.Layout(width="45%"))
        self.compare = w.Dropdown(description="compare with", layout=w.Layout(width="45%"),
                                  style={"description_width": "initial"})
        self.refresh_button = self.button("refresh", self.refresh_list, "Refresh list",
                                          icon="refresh")
        self.inspect_html, self.history_html = w.HTML(), w.HTML()
        self.chart = w.Image(format="png")
        self.shared_html = w.HTML()
        self.path = w.Text(description="file", placeholder="/etc/passwd")
        self.find_button = self.button("find", self.find, "Which layer?", icon="search")
        self.find_html = w.HTML()
        self.tabs = w.Tab(children=[
            self.inspect_html, self.history_html, w.VBox([self.shared_html, self.chart]),
            w.VBox([w.HBox([self.path, self.find_button]), self.progress_box(), self.find_html])])
        for i, title in enumerate(("Inspect & tags", "History", "Layers", "Find a file")):
            self.tabs.set_title(i, title)
        self._quiet = False
        self.image.observe(lambda _: self._quiet or self.guarded(self.show), names="value")
        self.compare.observe(lambda _: self._quiet or self.guarded(self.show_layers),
                             names="value")
        self.layout(w.HBox([self.image, self.compare, self.refresh_button]), self.tabs)
        self.guarded(self.refresh_list, image, compare)

    def progress_box(self):
        self._progress_widget = Progress.make_widget("reading layers")
        self._progress_widget.layout.visibility = "hidden"
        return self._progress_widget

    def refresh_list(self, image: str | None = None, compare: str | None = None) -> None:
        """`docker images`: every tagged image, the course's own first."""
        try:
            # The low-level call answers in one request: no image can vanish half-way through.
            tags = sorted({t for img in self.client.api.images() for t in img.get("RepoTags") or []
                           if t != "<none>:<none>"},
                          key=lambda t: (not t.startswith("course"), t))
        except (APIError, OSError) as exc:
            self.error(f"Could not list images. {plain_words(exc)}")
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
        self.status.value = self.find_html.value = ""
        if not ref:
            self.error("No images on this engine yet: build or pull one, "
                                          "then press Refresh list.")
            return
        try:
            image = self.client.images.get(ref)
            history = image.history()
        except ImageNotFound:
            self.error(f"{ref} is gone (removed since the list was made): "
                                          "press Refresh list.")
            return
        except (APIError, OSError) as exc:
            self.error(f"The engine did not answer about {ref}: {plain_words(exc)}")
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
            html_table(["", ""], rows))
        self.history_html.value = (
            f"<div style='color:{GREY}'>client.images.get({ref!r}).history() "
            f"&nbsp;≈&nbsp; docker history {html.escape(ref)} (newest step first)</div>" +
            html_table(["image", "step", "size"],
                       [((h["Id"].split(":")[-1][:12] if h["Id"].startswith("sha256:")
                          else "<missing>"), step_line(h.get("CreatedBy", ""))[:70],
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
            self.error(f"{exc.explanation or exc}: press Refresh list.")
            return
        except (APIError, OSError) as exc:
            self.error(f"The engine did not answer: {plain_words(exc)}")
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
        if len(path) > MAX_PATH:
            self.find_html.value = error_html(
                f"That path is {len(path):,} characters long; Linux allows {MAX_PATH} at most. "
                "Type a path inside the image, like /etc/passwd.")
            return None
        if ".." in path.split("/"):
            shown = posixpath.normpath("/" + path)
            self.find_html.value = error_html(
                f"Paths here are inside the image, from its own root: {path!r} means {shown} "
                "there (`..` cannot climb above the image's /, and nothing of this machine's "
                f"files is read). Type {shown} if that is the file you mean.")
            return None
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
            self.find_html.value = error_html(f"Could not read the layers of {ref}: "
                                              f"{plain_words(exc)}")
            return None
        if layer is None:
            self.find_html.value = status_html(
                False, f"No layer of {ref} holds {path}.",
                "check the spelling; paths are absolute, like /etc/hostname")
            return None
        kept = (f"the build kept this step as image {layer.step_image_id.split(':')[-1][:12]}"
                if layer.step_image_id else "")
        self.find_html.value = status_html(
            True, f"{path} was put there by layer {layer.index}: diff ID {layer.short_id}, "
                  f"{human_bytes(layer.size_bytes)}, made by {layer.step[:80]}", kept)
        return layer
