"""The stack panel of 05-compose: up and down with progress, the service graph drawn from the
compose file, and each service's state and last log lines, live.

    panel = StackPanel(Stack("../data/compose/05/compose.yaml", "course05", lesson=lesson))
    panel                      # shows it; the buttons call Stack.up/down (docker compose)
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from helpers.measure import charts
from helpers.course.compose import ComposeError, Stack, edges
from helpers.course.ui import AMBER, GREEN, GREY, RED, Panel, Progress, html_table

LIVE_SECONDS = 20.0   # after up, the panel refreshes itself this long (then the Refresh button)
EVERY_SECONDS = 1.0


def service_colour(rows: list) -> str:
    """A service's colour from its containers: green all up, red any failed, amber on its way,
    grey not created."""
    if not rows or all(r.state == "not created" for r in rows):
        return GREY
    if any(r.health == "unhealthy" or r.state in ("exited", "dead") for r in rows):
        return RED
    if all(r.state == "running" and r.health in ("", "healthy") for r in rows):
        return GREEN
    return AMBER


def levels(cfg: dict) -> dict:
    """A service's depth: 0 if it depends on nothing, else one more than its deepest dependency."""
    deps: dict = {name: [] for name in cfg.get("services") or {}}
    for service, dep, _ in edges(cfg):
        deps.setdefault(service, []).append(dep)
    found: dict = {}

    def depth(name: str, seen: tuple = ()) -> int:
        if name in found:
            return found[name]
        if name in seen:   # a cycle: Compose refuses those, but never loop here
            return 0
        found[name] = 1 + max((depth(d, seen + (name,)) for d in deps.get(name, [])), default=-1)
        return found[name]

    for name in deps:
        depth(name)
    return found


def draw_graph(cfg: dict, rows: list, title: str = ""):
    """The services as boxes coloured by state, `depends_on` as arrows (A → B: A waits for B).

    Returns (figure, the edges drawn) so that a test can hold them against the file."""
    from matplotlib.patches import FancyArrowPatch
    depth = levels(cfg)
    services = sorted(depth)
    top = max(depth.values(), default=0)
    columns: dict = {}
    for name in services:
        columns.setdefault(top - depth[name], []).append(name)
    fig, ax = charts.figure(title or f"Services of {cfg.get('name', 'the project')}", {},
                            width=max(3.2, 2.6 * (top + 1)),
                            height=max(2.0, 1.1 * max((len(v) for v in columns.values()),
                                                      default=1) + 0.8))
    ax.axis("off")
    place, boxes = {}, {}
    for x, names in columns.items():
        for i, name in enumerate(names):
            place[name] = (x, -(i - (len(names) - 1) / 2))
    by_service: dict = {}
    for r in rows:
        by_service.setdefault(r.service, []).append(r)
    for name, (x, y) in place.items():
        service = (cfg.get("services") or {}).get(name) or {}
        mine = by_service.get(name, [])
        running = sum(r.state == "running" for r in mine)
        detail = [service.get("image") or "(built)"]
        ports = [f"{p.get('host_ip', '')}:{p.get('published')}→{p.get('target')}"
                 for p in service.get("ports") or [] if p.get("published")]
        detail += ports
        if mine and mine[0].state != "not created":
            detail.append(f"{running}/{len(mine)} running" +
                          (f", {mine[0].health}" if mine[0].health else ""))
        else:
            detail.append("not created")
        boxes[name] = ax.text(x, y, f"{name}\n" + "\n".join(detail), ha="center", va="center",
                              fontsize=8, color="white", fontweight="bold",
                              bbox=dict(boxstyle="round,pad=0.5", fc=service_colour(mine),
                                        ec="none"))
    drawn = []
    for service, dep, condition in edges(cfg):
        if service not in boxes or dep not in boxes:
            continue
        (x0, y0), (x1, y1) = place[service], place[dep]
        # an arrow that skips a column bends, so that it does not run under the boxes between
        bend = 0.3 if abs(x1 - x0) > 1 else 0.0
        healthy = condition == "service_healthy"
        arrow = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14,
                                color=GREEN if healthy else GREY, lw=1.4, zorder=5,
                                linestyle="--" if healthy else "-",
                                connectionstyle=f"arc3,rad={bend}",
                                patchA=boxes[service].get_bbox_patch(),
                                patchB=boxes[dep].get_bbox_patch())
        ax.add_patch(arrow)
        drawn.append((service, dep))
    xs = [p[0] for p in place.values()] or [0]
    ys = [p[1] for p in place.values()] or [0]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    fig.text(0.01, 0.01, "A → B: A depends on B (Compose starts B first); dashed green: "
             "A waits until B is healthy", fontsize=7, color=GREY)
    return fig, drawn


class ProjectPanel(Panel):
    """What the Compose panels share: a stack, one progress bar for `up` and `down`, and the
    last thing the panel said, as plain text (`.message`)."""

    def __init__(self, stack: Stack, live_seconds: float = LIVE_SECONDS):
        super().__init__()
        self.stack, self.live_seconds = stack, live_seconds
        self.bar = Progress.make_widget("")
        self.message = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()   # one redraw at a time (buttons and the follower)

    def say(self, ok, text: str, fix: str = "") -> None:
        self.message = text + (f" → {fix}" if fix else "")
        super().say(ok, text, fix)

    def error(self, message: str) -> None:
        self.message = message
        super().error(message)

    def compose(self, verb: str) -> bool:
        """`docker compose up` or `down` with the panel's bar; a failure becomes the red line."""
        bar = Progress(verb, 1, widget=self.bar)
        try:
            getattr(self.stack, verb)(progress=bar)
        except ComposeError as exc:
            bar.close("failed", ok=False)
            self.guarded(self.refresh)
            self.error(str(exc))
            return False
        return True

    def refresh(self):
        raise NotImplementedError

    def live(self, seconds: float | None = None) -> None:
        """Refresh every second in the background for `seconds` (default: the panel's
        live_seconds), in place of any earlier follower."""
        self._stop.set()
        self._stop = stop = threading.Event()
        deadline = time.monotonic() + (self.live_seconds if seconds is None else seconds)

        def follow():
            while not stop.wait(EVERY_SECONDS) and time.monotonic() < deadline:
                self.refresh()

        if deadline > time.monotonic():
            self.thread(follow)

    def close(self) -> None:
        """Stop following the stack (the stack itself stays as it is)."""
        self._stop.set()


class StackPanel(ProjectPanel):
    """Up, Down and Refresh for one Compose project, its graph and its services' state and logs.

    The compose file(s) can be changed in the text box (comma-separated paths, relative to the
    notebook's folder): try your copy, or a broken one, and see what the panel says."""

    def __init__(self, stack: Stack, live_seconds: float = LIVE_SECONDS, tail: int = 3):
        import ipywidgets as w
        super().__init__(stack, live_seconds)
        self.tail = tail
        self.files = w.Text(value=", ".join(os.path.relpath(f) for f in stack.files),
                            description="compose file", layout=w.Layout(width="80%"),
                            style={"description_width": "initial"})
        self.graph = w.Image(format="png", layout=w.Layout(max_width="640px"))
        self.table = w.HTML()
        self.drawn_edges: list = []
        self.rows: list = []
        header = w.HTML(f"<b>Compose project <code>{stack.project}</code></b>")
        buttons = w.HBox([self.button("up", self.up, "Up", button_style="success", icon="play"),
                          self.button("down", self.down, "Down (-v)", button_style="danger",
                                      icon="stop"),
                          self.button("refresh", self.refresh, "Refresh", icon="refresh")])
        self.layout(header, self.files, buttons, self.bar, self.graph, self.table)
        for name, button in self.buttons.items():   # a stable hook in the page (browser test)
            button.add_class(f"dockercourse-stack-{name}")
        self.guarded(self.refresh)

    def _use_files(self) -> None:
        paths = [p.strip() for p in self.files.value.split(",") if p.strip()]
        if not paths:
            raise ComposeError("Give the compose file's path (relative to this notebook's "
                               "folder), e.g. ../data/compose/05/compose.yaml.")
        self.stack.files = [Path(p).resolve() for p in paths]

    def up(self) -> None:
        """`docker compose up -d --wait`; then the panel follows the stack for a while."""
        self._stop.set()
        self._use_files()
        self.say(None, f"Starting: {self.stack.command('up', '-d', '--wait', '--pull', 'never')}")
        if not self.compose("up"):
            return
        self.refresh()
        self.say(True, f"{self.stack.project} is up: {len(self.stack.containers())} "
                       "container(s).", "the table follows it for a while; Refresh any time")
        self.live()

    def down(self) -> None:
        """`docker compose down -v --remove-orphans`: containers, network and volumes go."""
        self._stop.set()
        self._use_files()
        if not self.compose("down"):
            return
        self.refresh()
        self.say(True, f"{self.stack.project} is down: no container, network or volume of it "
                       "is left.")

    def refresh(self) -> list:
        """Read the project from the engine (by its labels) and redraw graph and table."""
        with self._lock:
            try:
                cfg = self.stack.config()
            except ComposeError as exc:
                self.error(str(exc))
                cfg = {"services": {}}
            rows = self.stack.services(tail=self.tail, cfg=cfg)
            fig, self.drawn_edges = draw_graph(cfg, rows, f"Services of {self.stack.project}")
            self.graph.value = charts.png(fig)
            self.table.value = html_table(
                ["service", "container", "state", "health", "ports", "last log lines"],
                [(r.service, r.container or "—", r.state, r.health or "—", r.ports or "—",
                  " ⏎ ".join(r.logs) or "—") for r in rows])
            self.rows = rows
            return rows
