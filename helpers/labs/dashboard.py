"""A live view of the course's containers: state, CPU, memory and last log lines (02-containers).

`Dashboard(lesson=lesson).start()` refreshes in a background thread, so the notebook's kernel stays free
for other cells; `stop()` (or the Stop button, or `close()`) ends the thread. `refresh()` takes
one snapshot, for headless runs and tests.
"""
from __future__ import annotations

import threading
import time

from docker.errors import NotFound

from helpers.course.labels import LABEL, label_filter
from helpers.measure.sampler import cpu_percent_from_stats, memory_mib_from_stats
from helpers.course.ui import Panel, html_table, plain_words, status_html


class Dashboard(Panel):
    """The course's containers (label dockercourse.notebook), refreshed every `interval` seconds;
    `nn` narrows it to one lesson's."""

    def __init__(self, *, lesson, interval: float = 2.0, nn=None, log_lines: int = 3):
        import ipywidgets as w
        super().__init__()
        self.lesson, self.interval, self.nn, self.log_lines = lesson, interval, nn, log_lines
        self.table = w.HTML()
        self.line = w.HTML()
        self.button("start", self.start, "Start", icon="play")
        self.button("stop", self.stop, "Stop", icon="stop")
        self.layout(w.HBox([*self.buttons.values(), self.line]), self.table)
        self.refreshes = 0
        self.rows: list[dict] = []
        self._previous: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def client(self):
        return self.lesson.client

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> list[dict]:
        """One row per course container: `docker ps -a` + `docker stats --no-stream` + `docker logs`."""
        rows = []
        for c in self.client.containers.list(all=True, filters=label_filter(self.nn),
                                            ignore_removed=True):
            row = {"name": c.name, "notebook": c.labels.get(LABEL, ""),
                   "image": c.attrs["Config"]["Image"],
                   "status": c.status, "cpu_percent": None, "memory_mib": None, "logs": ""}
            try:
                if c.status in ("running", "paused"):
                    sample = c.stats(stream=False, one_shot=True)
                    previous = self._previous.get(c.id)
                    if previous:  # one-shot samples carry no previous reading: pair two ourselves
                        row["cpu_percent"] = cpu_percent_from_stats(
                            {"cpu_stats": sample["cpu_stats"],
                             "precpu_stats": previous["cpu_stats"]})
                    row["memory_mib"] = memory_mib_from_stats(sample)
                    self._previous[c.id] = sample
                row["logs"] = c.logs(tail=self.log_lines).decode(errors="replace").strip()
            except NotFound:  # removed between the list and the question
                continue
            rows.append(row)
        return rows

    def refresh(self) -> list[dict]:
        """Take one snapshot and draw it; an engine that stops answering gets an error line."""
        try:
            self.rows = self.snapshot()
        except Exception as exc:  # shown in the panel; the loop tries again next interval
            self.error(plain_words(exc) + (" Retrying." if self.running else ""))
            return self.rows
        self.status.value = ""
        self.refreshes += 1
        self._draw()
        return self.rows

    def _draw(self) -> None:
        rows = [(r["name"], r["notebook"], r["image"], r["status"],
                 "—" if r["cpu_percent"] is None else f"{r['cpu_percent']:.1f} %",
                 "—" if r["memory_mib"] is None else f"{r['memory_mib']:.1f} MiB", r["logs"])
                for r in self.rows]
        self.table.value = html_table(["container", "notebook", "image", "state", "CPU",
                                       "memory", f"last {self.log_lines} log lines"], rows) \
            if rows else status_html(None, "No course containers right now.")
        when = time.strftime("%H:%M:%S")
        self.line.value = status_html(
            None, f"{'live, every ' + str(self.interval) + ' s' if self.running else 'stopped'}"
                  f" · updated {when}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def start(self) -> "Dashboard":
        """Refresh in a background thread until `stop()`; returns at once."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = self.thread(self._loop)
        return self

    def stop(self) -> None:
        """End the refresh thread (waits for the refresh in progress to finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._draw()

    def close(self) -> None:
        """Stop refreshing and remove the panel from the page."""
        self.stop()
        self.widget.close()
