"""The Dockerfile editor of 03-dockerfile: edit, build, watch each step come from the cache or run.

`DockerfileEditor(client, folder, presets)` is an ipywidgets panel. Build writes the text to
`folder/Dockerfile` and runs `docker build folder` (helpers.course.builder.build: BuildKit wherever the
docker CLI has buildx) with a streaming log, the course's progress bar, a table of steps marked
cached or rebuilt, each with the layer it made (or none: metadata steps only write the image
config), and a chart of the layers. The panel says which builder ran and under which limits.
"Edit app.py" changes the app's code, as a developer would, so that the next build shows which
steps the change invalidates. Headless use: `editor.build()`, `editor.buttons['build'].click()`.
"""
from __future__ import annotations

import html
import shutil
import time
from pathlib import Path

import docker
import ipywidgets as w

from helpers.course.builder import BuildResult, KIND_COLOURS, Step, build, layer_chart
from helpers.measure.charts import png
from helpers.course.settings import DATA, ROOT
from helpers.course.ui import GREY, BadInput, Panel, Progress, error_html, status_html

LAB_SOURCE = DATA / "dockerfile-lab" / "cache"
LAB_FOLDER = ROOT / "notebooks" / "work" / "03-lab"
MARKS = {"base": "● base", "cached": "✔ cached", "rebuilt": "↻ rebuilt",
         "config": "≡ config only", "failed": "✘ failed"}


def presets(source: Path = LAB_SOURCE) -> dict[str, str]:
    """The sample Dockerfiles, by name: {'deps-first': 'FROM ...', ...}."""
    return {p.stem: p.read_text() for p in sorted(source.glob("*.Dockerfile"))}


def prepare_lab(folder: Path = LAB_FOLDER) -> Path:
    """A build context to play in: the sample app, requirements.txt and .dockerignore."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("requirements.txt", ".dockerignore"):
        shutil.copy2(LAB_SOURCE / name, folder / name)
    shutil.copy2(DATA / "webapp" / "app.py", folder / "app.py")
    return folder


def steps_html(steps: list) -> str:
    """The steps as a table: BuildKit's [n/m] (or '—' for a step that only writes the image
    config), cached or rebuilt, seconds, the instruction, and the layer it made."""
    rows = []
    for s in steps:
        colour = KIND_COLOURS[s.kind] if s.kind != "config" else GREY
        note = " <span style='color:%s'>(added by the course's labels=)</span>" % GREY \
            if s.added_by_course else ""
        number = "—" if s.config_only else f"{s.stage + ' ' if s.stage else ''}{s.number}/{s.total}"
        seconds = "" if s.config_only else f"{s.seconds:.2f} s"
        rows.append(f"<tr><td>{html.escape(number)}</td>"
                    f"<td style='color:{colour};font-weight:bold'>{MARKS[s.kind]}</td>"
                    f"<td style='text-align:right'>{seconds}</td>"
                    f"<td><code>{html.escape(s.instruction[:90])}</code>{note}</td>"
                    f"<td style='color:{GREY}'>{html.escape(s.layer_text)}</td></tr>")
    head = ("<tr><th>step</th><th>cache</th><th>time</th><th>instruction</th>"
            "<th>layer</th></tr>")
    return f"<table style='font-family:monospace;font-size:90%'>{head}{''.join(rows)}</table>"


MAX_DOCKERFILE = 64 * 1024   # bytes: a real Dockerfile is a few KiB


class DockerfileEditor(Panel):
    """Edit a Dockerfile, build it, and see every step cached or rebuilt."""

    def __init__(self, folder: Path = LAB_FOLDER, samples: dict | None = None,
                 tag: str | None = None, *, lesson):
        super().__init__()
        self.lesson, self.folder = lesson, Path(folder)
        self.tag = tag or f"{lesson.prefix}.invalid/lab"
        self.samples = samples if samples is not None else presets()
        first = next(iter(self.samples), "")
        self.preset = w.Dropdown(options=list(self.samples), value=first or None,
                                 description="Start from")
        self.text = w.Textarea(value=self.samples.get(first, ""),
                               layout=w.Layout(width="98%", height="230px"))
        self.button("build", self.build, "Build", button_style="primary", icon="cogs")
        self.button("edit_app", self.edit_app, "Edit app.py", icon="pencil",
                    tooltip="Change the app's code, as a developer would")
        self.progress = Progress.make_widget("docker build")
        self.steps_view = w.HTML()
        self.log_view = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.results: list[BuildResult] = []
        self._log_lines: list[str] = []
        self.preset.observe(lambda change: self.guarded(self._on_preset, change), names="value")
        self.layout(
            w.HTML(f"<b>Dockerfile</b> (saved as <code>{self._where()}/Dockerfile</code>, "
                   "built with that folder as the build context)"),
            self.preset, self.text, w.HBox(list(self.buttons.values())), self.progress)
        self.widget.children = [
            *self.widget.children, self.steps_view, self.chart,
            w.HTML("<b>Build log</b> (what <code>docker build --progress=plain</code> prints)"),
            self.log_view]

    @property
    def client(self):
        return self.lesson.client

    def _where(self) -> str:
        try:
            return str(self.folder.relative_to(ROOT))
        except ValueError:
            return str(self.folder)

    def _on_preset(self, change) -> None:
        if change["new"] in self.samples:
            self.text.value = self.samples[change["new"]]

    def load(self, name: str) -> None:
        """Put a sample Dockerfile in the editor (as choosing it in the menu does)."""
        self.preset.value = name
        self.text.value = self.samples[name]

    def _show_log(self, line: str) -> None:
        self._log_lines.append(line)
        body = html.escape("\n".join(self._log_lines[-400:]))
        # column-reverse keeps the newest line in view while the log grows
        self.log_view.value = (f"<div style='max-height:220px;overflow:auto;display:flex;"
                               f"flex-direction:column-reverse;background:#f6f8fa'>"
                               f"<pre style='margin:0;padding:4px;font-size:85%'>{body}</pre>"
                               f"</div>")

    def _show_step(self, step: Step) -> None:
        self._live_steps = [s for s in self._live_steps
                            if (s.stage, s.number) != (step.stage, step.number)] + [step]
        self.steps_view.value = steps_html(self._live_steps)

    def edit_app(self) -> str:
        """Change app.py (one more comment line): the next build's COPY sees new content."""
        app = self.folder / "app.py"
        if not app.exists():
            prepare_lab(self.folder)
        line = f"# edited {time.strftime('%H:%M:%S')}"
        app.write_text(app.read_text() + line + "\n")
        self.status.value = status_html(None, f"app.py changed: added the line '{line}'.",
                                        "build again and watch which steps rebuild")
        return line

    def build(self, nocache: bool = False) -> BuildResult:
        """Save the Dockerfile, build the folder, show log, steps and layers."""
        if len(self.text.value.encode()) > MAX_DOCKERFILE:
            raise BadInput(f"That Dockerfile is {len(self.text.value.encode()) // 1024:,} KiB; "
                           f"the lab builds Dockerfiles up to {MAX_DOCKERFILE // 1024} KiB (a "
                           "real one is a few KiB). Shorten it, then build again.")
        self._log_lines, self._live_steps = [], []
        self.log_view.value = self.steps_view.value = ""
        self.chart.value = b""
        self.buttons["build"].disabled = True
        try:
            if not (self.folder / "app.py").exists():
                prepare_lab(self.folder)
            (self.folder / "Dockerfile").write_text(self.text.value)
            bar = Progress("docker build", 1.0, widget=self.progress)
            self.status.value = status_html(None, f"docker build -t {self.tag} {self._where()}")
            result = build(self.client, self.folder, tag=self.tag, labels=self.lesson.labels,
                           nocache=nocache, on_line=self._show_log, on_step=self._show_step,
                           progress=bar, layers=True)
        except OSError as exc:  # the folder is read-only, the disk full...
            self.status.value = error_html(f"The build could not start: {exc}")
            return BuildResult(ok=False, error=str(exc))
        finally:
            self.buttons["build"].disabled = False
        self.results.append(result)
        self.steps_view.value = steps_html(result.steps)
        limits = result.fence.describe() if result.fence else ""
        if result.ok:
            self.status.value = status_html(
                True, f"Built image {result.short_id} (tagged {self.tag}) in "
                      f"{result.seconds:.1f} s with {result.builder}: {result.cached} steps "
                      f"from the cache, {result.rebuilt} rebuilt.") + status_html(None, limits)
            try:
                self.chart.value = png(layer_chart(self.client, result))
            except docker.errors.DockerException as exc:  # removed meanwhile (clean-up)
                self.status.value += error_html(f"No layer chart: {exc}")
        else:
            self.status.value = error_html(
                f"{result.error}\n→ {result.explanation}\n{result.leftovers}") + \
                status_html(None, f"{result.builder or 'No builder ran'}. {limits}")
        return result
