"""The health timeline panel of 06-healthchecks: up, break/heal, down, and every state change.

    HealthPanel(stack)
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from helpers.measure import charts
from helpers.course.compose import PROJECT, SERVICE, ComposeError, Stack, edges
from helpers.labs.stack_panel import ProjectPanel
from helpers.course.health import (NS, check_settings, command_text, freeze, seconds_to_notice,
                                   thaw, wait_for)
from helpers.course.ui import AMBER, GREEN, GREY, RED, html_table

LIVE_SECONDS = 60.0   # the panel follows the stack this long after each button press


# ---------------------------------------------------------------- the timeline

STATE_COLOURS = {"waiting": AMBER, "starting": GREY, "healthy": GREEN, "unhealthy": RED,
                 "running": GREEN, "exited": GREY}
WATCHED = ["create", "start", "die", "destroy", "health_status"]


@dataclass
class Change:
    t: float           # seconds since the timeline began
    state: str         # waiting, starting, healthy, unhealthy, running, exited, removed


@dataclass
class Row:
    service: str
    container: str
    changes: list = field(default_factory=list)


class Timeline:
    """Every state change of a project's containers, from the engine's events (`docker events
    --filter label=com.docker.compose.project=NAME`), plus the marks of what we did."""

    def __init__(self, client, project: str):
        self.client, self.project = client, project
        self.t0 = time.time()
        self.rows: dict = {}          # container id → Row
        self.marks: list = []         # (t, text)
        self._has_check: dict = {}
        self._events = None
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def now(self) -> float:
        return time.time() - self.t0

    def mark(self, text: str) -> None:
        with self._lock:
            self.marks.append((self.now(), text))

    def _row(self, cid: str, attrs: dict) -> Row:
        if cid not in self.rows:
            name = attrs.get("name", cid[:12])
            self.rows[cid] = Row(attrs.get(SERVICE, name), name)
        return self.rows[cid]

    def _checked(self, cid: str) -> bool:
        if cid not in self._has_check:
            try:
                self._has_check[cid] = bool(check_settings(self.client.containers.get(cid)))
            except Exception:  # removed meanwhile: it had no time to be checked anyway
                self._has_check[cid] = False
        return self._has_check[cid]

    def add(self, event: dict) -> None:
        """One engine event → one change of state."""
        action = event.get("Action", "")
        cid = (event.get("Actor") or {}).get("ID") or event.get("id", "")
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        t = event.get("timeNano", time.time() * NS) / NS - self.t0
        if action.startswith("health_status"):
            state = action.split(":", 1)[1].strip()
        else:
            state = {"create": "waiting", "die": "exited", "destroy": "removed"}.get(action)
            if action == "start":
                state = "starting" if self._checked(cid) else "running"
        if state is None or t < 0:   # `since` is in whole seconds: drop what came before
            return
        with self._lock:
            row = self._row(cid, attrs)
            if not row.changes or row.changes[-1].state != state:
                row.changes.append(Change(max(t, 0.0), state))

    def seed(self) -> None:
        """Containers already there when the timeline starts, in their present state."""
        wanted = {"label": f"{PROJECT}={self.project}"}
        for c in self.client.containers.list(all=True, filters=wanted, ignore_removed=True):
            state = c.attrs.get("State", {})
            now = (state.get("Health") or {}).get("Status") or \
                {"created": "waiting", "exited": "exited"}.get(state.get("Status"), "running")
            with self._lock:
                row = self._row(c.id, {"name": c.name, **c.labels})
                if not row.changes:
                    row.changes.append(Change(0.0, now))

    def start(self) -> "Timeline":
        """Follow the engine's events in a background thread until `stop()`."""
        self._events = self.client.events(
            decode=True, since=int(self.t0) - 1,
            filters={"label": f"{PROJECT}={self.project}", "type": "container",
                     "event": WATCHED})
        self.seed()

        def read(stream=self._events):
            try:
                for event in stream:
                    self.add(event)
            except Exception:  # the stream was closed (stop) or the engine went away
                pass

        self.thread = threading.Thread(target=read, daemon=True, name="health-timeline")
        self.thread.start()
        return self

    def stop(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def states(self, service: str) -> list[str]:
        """The states one service went through, in order (all its containers)."""
        with self._lock:
            return [c.state for r in self.rows.values() if r.service == service
                    for c in r.changes]

    def figure(self, waits: dict | None = None, title: str = ""):
        """One bar per container, coloured by state over time; dashed lines where we acted.
        `waits`: {service: the service it waits for}, written on its waiting stretch."""
        from matplotlib.patches import Patch
        with self._lock:
            # containers that only went away in the window (a stack taken down before) are
            # left out: they had no state worth a bar
            rows = sorted((r for r in self.rows.values()
                           if any(c.state not in ("exited", "removed") for c in r.changes)),
                          key=lambda r: (r.service, r.container))
            marks = list(self.marks)
            end = max([self.now()] + [c.t for r in rows for c in r.changes])
            fig, ax = charts.figure(title or f"Health of {self.project}, as the engine reported "
                                    "it", {}, width=9.0, height=0.7 * max(len(rows), 1) + 1.6)
            for y, row in enumerate(rows):
                changes = row.changes + [Change(end, "now")]
                for a, b in zip(changes, changes[1:]):
                    if a.state in ("removed",):
                        continue
                    colour = STATE_COLOURS.get(a.state, GREY)
                    ax.broken_barh([(a.t, max(b.t - a.t, 0.02))], (y - 0.3, 0.6),
                                   facecolors=colour, alpha=0.35 if a.state in ("exited",
                                   "running") else 0.9, hatch="//" if a.state == "waiting"
                                   else None, edgecolor="white")
                    if a.state == "waiting" and (waits or {}).get(row.service) and \
                            b.t - a.t > 0.08 * end:
                        ax.text(a.t + 0.1, y, f"waits for {waits[row.service]}", fontsize=7,
                                va="center")
            for t, text in marks:
                ax.axvline(t, color=GREY, ls="--", lw=1)
                ax.text(t, len(rows) - 0.45, f" {text}", fontsize=7, color=GREY, va="bottom")
            ax.set_yticks(range(len(rows)), [r.service for r in rows], fontsize=8)
            ax.set_ylim(-0.6, len(rows) + 0.1)
            ax.set_xlim(0, max(end, 1.0) * 1.02)
            ax.set_xlabel("seconds since the timeline began")
            ax.grid(axis="y", alpha=0)
            ax.legend(handles=[Patch(color=STATE_COLOURS[s], label=s, alpha=0.9 if s not in
                                     ("running", "exited") else 0.35,
                                     hatch="//" if s == "waiting" else None)
                               for s in ("waiting", "starting", "healthy", "unhealthy",
                                         "running", "exited")],
                      fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.25),
                      frameon=False)
            fig.tight_layout(rect=(0, 0.02, 1, 0.95))
        return fig


# ---------------------------------------------------------------- the panel

class HealthPanel(ProjectPanel):
    """Up, Break/Heal (a real hang of one service), Down, and the health timeline, live.

    Break sends SIGSTOP to the service's server process: the container stays running, its
    check stops getting answers. Heal sends SIGCONT."""

    def __init__(self, stack: Stack, target: str = "redis", live_seconds: float = LIVE_SECONDS):
        import ipywidgets as w
        super().__init__(stack, live_seconds)
        self.target = target
        self.timeline: Timeline | None = None
        self.broken = False
        self.picture = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.table = w.HTML()
        header = w.HTML(f"<b>Health of <code>{stack.project}</code></b>: break <code>{target}"
                        "</code> for real and watch what the engine reports")
        buttons = w.HBox([
            self.button("up", self.up, "Up", button_style="success", icon="play"),
            self.button("toggle", self.toggle, f"Break {target}", button_style="warning",
                        icon="bolt"),
            self.button("down", self.down, "Down (-v)", button_style="danger", icon="stop"),
            self.button("refresh", self.refresh, "Refresh", icon="refresh")])
        self.layout(header, buttons, self.bar, self.picture, self.table)
        for name, button in self.buttons.items():   # a stable hook in the page (browser test)
            button.add_class(f"dockercourse-health-{name}")

    # -- what the buttons do ------------------------------------------------------------
    def _target(self):
        found = self.stack.containers(self.target, all=False)
        if not found:
            raise ComposeError(f"No running {self.target} container in {self.stack.project}: "
                               "press Up first.")
        return found[0]

    def up(self) -> None:
        """Start following the engine's events, then `docker compose up -d --wait`."""
        self._stop.set()
        if self.timeline is not None:
            self.timeline.stop()
        self.timeline = Timeline(self.stack.client, self.stack.project).start()
        self.timeline.mark("up")
        self.broken = False
        self.buttons["toggle"].description = f"Break {self.target}"
        self.live()
        if not self.compose("up"):
            self.close()   # the stack was taken down: nothing more to follow
            return
        self.refresh()
        self.say(True, f"{self.stack.project} is up and healthy.",
                 f"press Break {self.target} and watch its check fail")

    def toggle(self) -> None:
        """Break (SIGSTOP) or heal (SIGCONT) the target service's server process."""
        container = self._target()
        if self.timeline is None:
            self.timeline = Timeline(self.stack.client, self.stack.project).start()
        if not self.broken:
            freeze(container)
            self.timeline.mark(f"{self.target} hangs (SIGSTOP)")
            self.broken = True
            self.buttons["toggle"].description = f"Heal {self.target}"
            settings = check_settings(container)
            when = f"within about {seconds_to_notice(settings):.0f} s" if settings else \
                "never: it has no healthcheck"
            self.say(None, f"{self.target}'s server process is stopped; the container still "
                           f"runs. Its check will notice {when}.")
        else:
            thaw(container)
            self.timeline.mark(f"{self.target} heals (SIGCONT)")
            self.broken = False
            self.buttons["toggle"].description = f"Break {self.target}"
            self.say(None, f"{self.target} answers again; its next passing check makes it "
                           "healthy.")
        self.live()

    def down(self) -> None:
        """Heal first (a stopped process cannot act on SIGTERM), then `docker compose down -v`."""
        if self.broken:
            for c in self.stack.containers(self.target, all=False):
                thaw(c)
            self.broken = False
            self.buttons["toggle"].description = f"Break {self.target}"
        if self.timeline is not None:
            self.timeline.mark("down")
        if not self.compose("down"):
            return
        time.sleep(0.3)   # the last events (die, destroy) reach the timeline
        self.refresh()
        self.close()
        self.say(True, f"{self.stack.project} is down: nothing of it is left.")

    def wait_for(self, service: str, wanted: str, timeout: float = 30) -> float:
        """Seconds until `service` reports `wanted` (healthy/unhealthy); TimeoutError if not."""
        began = time.monotonic()
        for c in self.stack.containers(service, all=False):
            status, seconds = wait_for(c, wanted, timeout - (time.monotonic() - began))
            if status != wanted:
                raise TimeoutError(f"{service} was still {status or 'without health'} after "
                                   f"{seconds:.0f} s")
            return seconds
        raise ComposeError(f"No running {service} container in {self.stack.project}.")

    # -- drawing --------------------------------------------------------------------------
    def waits(self) -> dict:
        try:
            return {s: d for s, d, cond in edges(self.stack.config())
                    if cond == "service_healthy"}
        except ComposeError:
            return {}

    def refresh(self) -> None:
        with self._lock:
            if self.timeline is not None:
                self.picture.value = charts.png(self.timeline.figure(self.waits()))
            rows = []
            for c in self.stack.containers():
                settings = check_settings(c)
                report = c.attrs.get("State", {}).get("Health") or {}
                last = (report.get("Log") or [{}])[-1]
                rows.append((c.labels.get(SERVICE, "?"), c.name, c.status,
                             report.get("Status", "no check"),
                             command_text(settings.get("test", [])) or "—",
                             f"{settings['interval_s']:g} s / {settings['timeout_s']:g} s / "
                             f"{settings['retries']}" if settings else "—",
                             (f"exit {last.get('ExitCode')}: "
                              f"{(last.get('Output') or '').strip()[:80]}") if last else "—"))
            self.table.value = html_table(
                ["service", "container", "state", "health", "check", "interval / timeout / "
                 "retries", "last check"], rows)

    def close(self) -> None:
        """Stop redrawing and stop following the engine's events."""
        super().close()
        if self.timeline is not None:
            self.timeline.stop()
