"""CMD and ENTRYPOINT, exec and shell form: a table the learner fills by running (03-dockerfile).

Each cell of the table is a real image built from a three-line Dockerfile on `busybox:1.35`
and a real container run from it; the cell shows the command the engine started (the
container's Path and Args) and what it printed. `EntrypointTable(lesson=lesson)` is the panel;
`try_combination("exec", "shell", lesson=lesson)` is one experiment. What a learner types as
run arguments runs inside the course's fence (helpers.course.fence).
"""
from __future__ import annotations

import html
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w
from docker.errors import APIError

from helpers.course import fence
from helpers.course import settings
from helpers.course.builder import build
from helpers.course.images import ref
from helpers.course.ui import GREY, RED, BadInput, Panel, error_html, status_html

FORMS = ("none", "exec", "shell")
ENTRYPOINTS = {"none": None,
               "exec": 'ENTRYPOINT ["echo", "from-ENTRYPOINT"]',
               "shell": "ENTRYPOINT echo from-ENTRYPOINT"}
CMDS = {"none": None,
        "exec": 'CMD ["echo", "from-CMD"]',
        "shell": "CMD echo from-CMD"}


def dockerfile(entrypoint: str, cmd: str) -> str:
    lines = [f"FROM {ref('busybox')}", ENTRYPOINTS[entrypoint], CMDS[cmd]]
    return "\n".join(line for line in lines if line) + "\n"


@dataclass
class Trial:
    entrypoint: str              # "none", "exec" or "shell"
    cmd: str
    run_args: list
    dockerfile: str
    image_entrypoint: list | None = None   # what the image's config says
    image_cmd: list | None = None
    started: list | None = None           # the process the engine started: Path + Args
    output: str = ""
    error: str = ""

    @property
    def run_line(self) -> str:
        args = " ".join(shlex.quote(a) for a in self.run_args)
        return f"docker run --rm IMAGE {args}".rstrip()


def try_combination(entrypoint: str, cmd: str, run_args: list | str = (), *,
                    lesson) -> Trial:
    """Build the Dockerfile for this pair of forms, run it (with run_args) inside the fence,
    report what ran."""
    if isinstance(run_args, str):
        try:
            run_args = shlex.split(run_args)
        except ValueError as exc:   # an unbalanced quote, as a shell would refuse it
            raise BadInput(f"The run arguments cannot be split into words ({exc}): close "
                           "every quote you open, as in a shell.") from None
    client = lesson.client
    trial = Trial(entrypoint, cmd, list(run_args), dockerfile(entrypoint, cmd))
    with tempfile.TemporaryDirectory(prefix="entrycmd-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(trial.dockerfile)
        result = build(client, tmp, tag=f"{lesson.prefix}.invalid/entrycmd:{entrypoint}-{cmd}",
                       labels=lesson.labels, progress=False)
    if not result.ok:
        trial.error = result.error
        return trial
    config = client.api.inspect_image(result.image_id)["Config"]
    trial.image_entrypoint, trial.image_cmd = config.get("Entrypoint"), config.get("Cmd")
    container = None
    try:
        # docker run IMAGE ARGS: ARGS replace the image's CMD. What a learner types runs fenced.
        container = client.containers.create(result.image_id, command=trial.run_args or None,
                                             labels=lesson.labels, **fence.container_limits())
        container.reload()
        trial.started = [container.attrs["Path"], *container.attrs["Args"]]
        container.start()
        try:
            container.wait(timeout=settings.fence_seconds())
        except Exception:  # the SDK's read timeout: the fence's time is up
            container.kill()
            trial.error = (f"stopped after {settings.fence_seconds():.0f} s (the lab's time "
                           "limit): the program did not end by itself")
        output, cut = fence.read_bounded(container)
        trial.output = output.strip() + ("\n... (more output, not kept)" if cut else "")
    except APIError as exc:
        message = (exc.explanation or str(exc)).split("\n")[0]
        # runc's message is long; the part from "exec:" says what could not be started
        trial.error = message[message.find("exec:"):] if "exec:" in message else message
    finally:
        if container is not None:
            container.remove(force=True, v=True)
    return trial


def _cell(trial: Trial | None) -> str:
    if trial is None:
        return f"<span style='color:{GREY}'>? run it</span>"
    ran = html.escape(" ".join(shlex.quote(a) for a in trial.started or []))
    said = html.escape(trial.output) if trial.output else f"<i style='color:{GREY}'>(nothing)</i>"
    if trial.error:
        said = f"<span style='color:{RED}'>{html.escape(trial.error[:120])}</span>"
    inherited = (f" <i style='color:{GREY}'>(busybox's own CMD, inherited through FROM)</i>"
                 if trial.entrypoint == trial.cmd == "none" and not trial.run_args else "")
    return f"ran: <code>{ran}</code>{inherited}<br>printed: <code>{said}</code>"


class EntrypointTable(Panel):
    """Pick an ENTRYPOINT form and a CMD form, Run, and the table fills in."""

    def __init__(self, *, lesson):
        super().__init__()
        self.lesson = lesson
        self.entrypoint = w.Dropdown(options=FORMS, value="exec", description="ENTRYPOINT")
        self.cmd = w.Dropdown(options=FORMS, value="exec", description="CMD")
        self.args = w.Text(value="", placeholder="e.g. echo from-run",
                           description="run args")
        self.button("run", self.run, "Build and run", button_style="primary", icon="play")
        self.button("fill", self.fill, "Fill the rest", icon="table")
        self.preview = w.HTML()
        self.grid = w.HTML()
        self.with_args = w.HTML()
        self.trials: dict = {}           # (entrypoint, cmd) -> Trial, runs without arguments
        self.arg_trials: list = []       # runs with arguments
        self.entrypoint.observe(self._show_preview, names="value")
        self.cmd.observe(self._show_preview, names="value")
        self._show_preview()
        self._draw()
        self.layout(w.HBox([self.entrypoint, self.cmd, self.args]), self.preview,
                    w.HBox(list(self.buttons.values())))
        self.widget.children = [*self.widget.children, self.grid, self.with_args]

    def _show_preview(self, _=None) -> None:
        text = html.escape(dockerfile(self.entrypoint.value, self.cmd.value))
        self.preview.value = f"<pre style='background:#f6f8fa;padding:4px'>{text}</pre>"

    def _draw(self) -> None:
        head = "".join(f"<th>ENTRYPOINT: {e}<br><code>{html.escape(ENTRYPOINTS[e] or '—')}"
                       "</code></th>" for e in FORMS)
        rows = []
        for c in FORMS:
            cells = "".join(f"<td style='vertical-align:top'>{_cell(self.trials.get((e, c)))}</td>"
                            for e in FORMS)
            rows.append(f"<tr><th>CMD: {c}<br><code>{html.escape(CMDS[c] or '—')}</code></th>"
                        f"{cells}</tr>")
        self.grid.value = (f"<table style='font-size:90%;border-collapse:collapse' border=1 "
                           f"cellpadding=4><tr><th></th>{head}</tr>{''.join(rows)}</table>")
        if self.arg_trials:
            items = "".join(f"<li><code>{html.escape(t.run_line)}</code> with ENTRYPOINT "
                            f"{t.entrypoint}, CMD {t.cmd}: {_cell(t)}</li>"
                            for t in self.arg_trials)
            self.with_args.value = f"<b>Runs with arguments</b> (they replace CMD):<ul>{items}</ul>"

    def run(self, entrypoint: str | None = None, cmd: str | None = None,
            args: str | None = None) -> Trial:
        """Build and run one combination (the menus' values unless given) and fill its cell."""
        entrypoint = entrypoint or self.entrypoint.value
        cmd = cmd or self.cmd.value
        args = self.args.value if args is None else args
        self.status.value = status_html(None, f"building and running ENTRYPOINT {entrypoint}, "
                                              f"CMD {cmd}...")
        trial = try_combination(entrypoint, cmd, args, lesson=self.lesson)
        if trial.started is None and trial.error:
            self.status.value = error_html(f"Could not build or run it: {trial.error}")
            return trial
        if trial.run_args:
            self.arg_trials.append(trial)
        else:
            self.trials[(entrypoint, cmd)] = trial
        self.status.value = status_html(True, f"{trial.run_line}: the engine started "
                                              f"{' '.join(trial.started or [])!r}")
        self._draw()
        return trial

    def fill(self) -> None:
        """Run every combination not yet in the table."""
        for c in FORMS:
            for e in FORMS:
                if (e, c) not in self.trials:
                    self.run(e, c, "")
