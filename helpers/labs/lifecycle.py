"""A container's life, one button per transition, drawn as the engine reports it (02-containers).

`LifecyclePanel` manages one container made from an image. Each button sends the real request
(`container.start()` = `docker start`, ...), then asks the engine for the state
(`container.reload(); container.status`) and highlights it on the state diagram. A transition
the current state does not allow is explained; the engine's own answer is shown beside it.
"""
from __future__ import annotations

import html
import time

from docker.errors import APIError, ImageNotFound, NotFound

from helpers.course.ui import AMBER, GREEN, GREY, Panel, error_html, html_table, status_html
from helpers.course.lesson import CourseImageMissing

STATES = ("created", "running", "paused", "exited", "removed")

# Which states each transition starts from (as Docker Engine 20.10+ accepts them).
ALLOWED = {
    "create": ("none", "removed"),
    "start": ("created", "exited"),
    "pause": ("running",),
    "unpause": ("paused",),
    "stop": ("running", "paused"),
    "kill": ("running", "paused"),
    "restart": ("created", "running", "paused", "exited"),
    "remove": ("created", "exited"),
}

CLI = {"create": "docker create", "start": "docker start", "pause": "docker pause",
       "unpause": "docker unpause", "stop": "docker stop", "kill": "docker kill",
       "restart": "docker restart", "remove": "docker rm"}

SDK = {"create": "client.containers.create(image, command, labels=...)",
       "start": "container.start()", "pause": "container.pause()",
       "unpause": "container.unpause()", "stop": "container.stop(timeout=2)",
       "kill": "container.kill()", "restart": "container.restart(timeout=2)",
       "remove": "container.remove()"}

WHY_NOT = {
    ("create", None): "this panel already has a container: remove it first (an image can make "
                      "many containers; the panel follows one)",
    ("start", "running"): "it is already running",
    ("start", "paused"): "a paused container is still running, only frozen: unpause it",
    ("pause", None): "only a running container can be frozen",
    ("unpause", None): "only a paused container can be thawed",
    ("stop", None): "only a running (or paused) container has processes to stop",
    ("kill", None): "only a running (or paused) container has processes to kill",
    ("remove", "running"): "its processes still run: stop it first (or force with docker rm -f)",
    ("remove", "paused"): "its processes are frozen, not gone: stop it first",
}

# A shell that ends at once on `docker stop` (SIGTERM), so stop takes milliseconds, not the
# 10 s grace period a process that ignores SIGTERM would get.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; echo started; "
           "while :; do sleep 1 & wait $!; done"]


def why_not(action: str, state: str) -> str:
    if state in ("none", "removed") and action != "create":
        return "there is no container: press create first"
    return WHY_NOT.get((action, state)) or WHY_NOT.get((action, None)) or \
        f"a {state} container cannot {action}"


# Node centres and the edges between them, for the SVG state diagram.
_POS = {"created": (90, 70), "running": (320, 70), "paused": (550, 70),
        "exited": (320, 200), "removed": (90, 200)}
_EDGES = [  # (from, to, label, path, label position)
    ("created", "running", "start", "M145,70 L262,70", (203, 62)),
    ("running", "paused", "pause", "M378,62 L492,62", (435, 54)),
    ("paused", "running", "unpause", "M492,80 L378,80", (435, 96)),
    ("running", "exited", "stop / kill", "M305,92 L305,178", (262, 140)),
    ("exited", "running", "start / restart", "M335,178 L335,92", (385, 140)),
    ("paused", "exited", "stop / kill", "M540,92 L378,190", (500, 150)),
    ("exited", "removed", "rm", "M262,200 L148,200", (205, 192)),
    ("created", "removed", "rm", "M90,92 L90,178", (104, 140)),
]


def diagram_svg(current: str, last: tuple | None = None) -> str:
    """The lifecycle as SVG: the current state filled green, the last transition in green."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="640" height="240" '
             'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
             'orient="auto" markerUnits="userSpaceOnUse"><path d="M0,0 L8,4 L0,8 z" fill="#57606a"/></marker>'
             '<marker id="arrow-hot" markerWidth="10" markerHeight="10" refX="7" refY="4" '
             f'orient="auto" markerUnits="userSpaceOnUse"><path d="M0,0 L8,4 L0,8 z" fill="{GREEN}"/></marker></defs>',
             f'<text x="8" y="16" fill="{GREY}">image ── docker create ──▶ created</text>']
    for src, dst, label, path, (lx, ly) in _EDGES:
        hot = last is not None and (src, dst) == last
        colour, marker = (GREEN, "arrow-hot") if hot else (GREY, "arrow")
        parts.append(f'<path d="{path}" stroke="{colour}" stroke-width="{3 if hot else 1.5}" '
                     f'fill="none" marker-end="url(#{marker})" data-edge="{src}-{dst}"/>')
        parts.append(f'<text x="{lx}" y="{ly}" text-anchor="middle" fill="{colour}">'
                     f'{label}</text>')
    for state, (x, y) in _POS.items():
        on = state == current
        fill, stroke, text = (GREEN, GREEN, "white") if on else ("white", GREY, "black")
        parts.append(f'<g data-state="{state}" data-current="{str(on).lower()}">'
                     f'<rect x="{x - 55}" y="{y - 20}" width="110" height="40" rx="10" '
                     f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
                     f'<text x="{x}" y="{y + 5}" text-anchor="middle" fill="{text}" '
                     f'font-weight="{"bold" if on else "normal"}">{state}</text></g>')
    if current not in _POS:
        note = "no container yet: press create" if current == "none" else \
            f"the engine reports: {current}"
        parts.append(f'<text x="400" y="16" fill="{AMBER}">{html.escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


class LifecyclePanel(Panel):
    """Buttons for every transition of one container, and the state diagram the engine drives.

    Headless: `panel.buttons["start"].click()`, then read `panel.state` and `panel.log`.
    """

    def __init__(self, image: str, command=None, *, lesson, name: str | None = None):
        import ipywidgets as w
        super().__init__()
        self.lesson, self.image = lesson, image
        self.command = SLEEPER if command is None else command
        self.name = name or f"{lesson.prefix}-lifecycle"
        self.container = None
        self.state, self.last = "none", None
        self.log: list[tuple] = []  # (action, ok, from-state, to-state, seconds)
        for action in ALLOWED:
            self.button(action, lambda a=action: self.do(a), layout=w.Layout(width="88px"))
        self.diagram = w.HTML()
        self.history = w.HTML()
        self.layout(w.HBox(list(self.buttons.values())), self.diagram)
        self.widget.children = [*self.widget.children, self.history]
        self.guarded(self._adopt_existing)
        self._draw()

    @property
    def client(self):
        return self.lesson.client

    @property
    def message(self):
        return self.status

    def _adopt_existing(self) -> None:
        """Follow a container this panel made earlier (a re-run cell), instead of a second one."""
        try:
            self.container = self.client.containers.get(self.name)
            self.state = self.container.status
        except NotFound:
            pass

    def refresh_state(self) -> str:
        """Ask the engine: `container.reload(); container.status` ≈ docker inspect -f {{.State.Status}}."""
        if self.container is None:
            return self.state
        try:
            self.container.reload()
            self.state = self.container.status
        except NotFound:
            self.state = "removed"
        return self.state

    def _send(self, action: str):
        if action == "create":
            self.container = self.client.containers.create(
                self.image, self.command, name=self.name, labels=self.lesson.labels)
        elif action == "stop":
            self.container.stop(timeout=2)
        elif action == "restart":
            self.container.restart(timeout=2)
        else:
            getattr(self.container, action)()

    def do(self, action: str) -> bool:
        """Send one transition to the engine; True if the engine carried it out."""
        return bool(self.guarded(self._do, action))

    def _do(self, action: str) -> bool:
        before = self.refresh_state() if self.container is not None else self.state
        allowed = before in ALLOWED[action]
        cmd = f"{SDK[action]}  ≈  {CLI[action]} {self.name if action != 'create' else self.image}"
        if not allowed and (self.container is None or before == "removed" or action == "create"):
            # Nothing to send it to (or it would make a second container): explain only.
            self.message.value = status_html(False, f"Cannot {action}: {why_not(action, before)}.")
            self._record(action, False, before, before, 0.0)
            return False
        began = time.perf_counter()
        engine_said = ""
        try:
            self._send(action)
        except CourseImageMissing as exc:   # one of the course's own: the cell that builds it
            self.message.value = error_html(str(exc))
            self._record(action, False, before, before, 0.0)
            return False
        except ImageNotFound:
            self.message.value = error_html(
                f"The image {self.image} is not on this engine: a container is always made from "
                "an image, so build or pull it first.")
            self._record(action, False, before, before, 0.0)
            return False
        except APIError as exc:
            engine_said = f"{exc.status_code} {exc.explanation or exc}"
        seconds = time.perf_counter() - began
        after = self.refresh_state()
        if allowed and not engine_said:
            self.last = (before if before in _POS else None, after)
            self.message.value = status_html(True, f"{action}: {before} → {after} in "
                                                   f"{seconds * 1000:.0f} ms", cmd)
            self._record(action, True, before, after, seconds)
            return True
        answer = f"the engine answered {engine_said}" if engine_said else \
            f"the engine accepted it and changed nothing (still {after})"
        text = f"Cannot {action} a {before} container: {why_not(action, before)}."
        if allowed:  # the engine refused something the diagram allows: its state moved meanwhile
            text = f"{action} failed."
        self.message.value = status_html(False, text, answer)
        self._record(action, False, before, after, seconds)
        return False

    def _record(self, action, ok, before, after, seconds) -> None:
        self.log.append((action, ok, before, after, seconds))
        self._draw()

    def _draw(self) -> None:
        self.diagram.value = diagram_svg(self.state, self.last)
        for action, button in self.buttons.items():
            button.button_style = "success" if self.state in ALLOWED[action] else ""
        rows = [(a, "✔" if ok else "✘", f"{b} → {s}", f"{t * 1000:.0f} ms")
                for a, ok, b, s, t in self.log[-8:]]
        self.history.value = html_table(["action", "", "state", "took"], rows) if rows else ""

    def remove(self) -> None:
        """Remove the panel's container whatever its state (docker rm -f)."""
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except NotFound:
                pass
            self.refresh_state()
            self._draw()
