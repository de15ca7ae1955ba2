"""BuildKit as learners see it: `docker buildx build --progress=rawjson`, read as it streams.

`docker build` has used BuildKit by default since Engine 23; the docker CLI runs it through its
buildx plugin, which sends the build to the engine's own BuildKit (buildx's `docker` driver) and
reports progress. With `--progress=rawjson` that report is a stream of JSON objects, each
printed over several lines:

- `vertexes`: the steps of the build graph. A Dockerfile step is named as
  `--progress=plain` prints it, `[2/5] RUN ...` (`[build 2/5] ...` in a multi-stage build), and
  has `started`, `completed`, `cached` and `error` once they are known;
- `statuses`: progress inside a step (`transferring context`, `writing image sha256:...`);
- `logs`: what a step's commands printed (base64 `data`, `stream` 1 or 2).

After the objects, buildx prints plain text such as `ERROR: failed to solve: ...`.

`read_events(lines)` turns the text into objects and plain lines, `Trace` keeps the vertexes and
writes the lines `--progress=plain` would show, and `Buildx` runs the CLI with a wall-clock
limit that really stops the build. ENV, LABEL, EXPOSE, CMD and the other metadata instructions
are no vertexes: BuildKit writes them straight into the image config's history.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Iterator

STEP_NAME = re.compile(r"^\[(?:(?P<stage>\S+) )?(?P<number>\d+)/(?P<total>\d+)\] "
                       r"(?P<instruction>.*)$", re.S)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def timestamp(text: str | None) -> float | None:
    """An RFC 3339 time with nanoseconds (`2024-05-01T10:00:00.123456789Z`) in seconds."""
    m = _STAMP.match(text or "")
    if not m:
        return None
    zone = "+00:00" if m[3] == "Z" else m[3]
    when = datetime.fromisoformat(f"{m[1]}.{(m[2] or '0')[:6].ljust(6, '0')}{zone}")
    return when.astimezone(timezone.utc).timestamp()


def read_events(lines: Iterable[str]) -> Iterator[dict | str]:
    """The rawjson stream as objects (dicts) and plain text lines (str), in order.

    buildx prints each object indented over several lines and closes it with a `}` alone at
    the start of a line; anything outside an object is plain text (`ERROR: ...`)."""
    pending: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if not pending and not line.startswith("{"):
            if line.strip():
                yield line
            continue
        pending.append(line)
        if line.startswith("}"):
            text = "\n".join(pending)
            try:
                event = json.loads(text)
            except ValueError:
                continue  # a `}` inside the object: keep reading until it closes
            pending = []
            if isinstance(event, dict):
                yield event
    if pending:  # cut off (the build was stopped): show what arrived as text
        yield from (p for p in pending if p.strip())


@dataclass
class Vertex:
    """One node of the build graph as BuildKit reported it."""
    digest: str
    name: str
    number: int                    # `#N` in `--progress=plain` (0 until it starts)
    started: float | None = None
    completed: float | None = None
    cached: bool = False
    error: str = ""
    output: list = field(default_factory=list)   # lines the step printed
    reported: bool = False         # its DONE / CACHED / ERROR line was shown
    _partial: str = ""

    @property
    def step(self):
        """The match of a Dockerfile step's name (`[2/5] RUN ...`), or None (internal work)."""
        return STEP_NAME.match(self.name)

    @property
    def seconds(self) -> float:
        if self.started is None or self.completed is None:
            return 0.0
        return max(self.completed - self.started, 0.0)

    @property
    def done(self) -> bool:
        return self.completed is not None or self.cached or bool(self.error)


class Trace:
    """The state of one build from its rawjson events, and the lines `--progress=plain` shows.

    `feed(event)` returns (lines to show, vertexes that finished with this event)."""

    def __init__(self):
        self.vertexes: dict[str, Vertex] = {}
        self.text: list[str] = []          # plain lines buildx printed after the objects
        self._statuses_done: set = set()
        self._started = 0

    def feed(self, event: dict | str) -> tuple[list, list]:
        if isinstance(event, str):
            self.text.append(event)
            return [event], []
        lines, finished = [], []
        for raw in event.get("vertexes") or []:
            # Each object carries the vertex's whole state as it is now.
            v = self.vertexes.setdefault(raw.get("digest", ""),
                                         Vertex(raw.get("digest", ""), raw.get("name", ""), 0))
            was_done = v.done
            v.name = raw.get("name") or v.name
            v.started = timestamp(raw.get("started"))
            v.completed = timestamp(raw.get("completed"))
            v.cached = bool(raw.get("cached"))
            v.error = raw.get("error") or ""
            if v.started is not None and not v.number:
                # numbered as `--progress=plain` numbers them: in the order they start
                self._started += 1
                v.number = self._started
                lines.append(f"#{v.number} {v.name}")
            if v.done and not was_done and not v.reported:
                v.reported = True
                lines.extend(self._flush(v))
                if v.error:
                    lines.append(f"#{v.number} ERROR: {v.error}")
                elif v.cached:
                    lines.append(f"#{v.number} CACHED")
                else:
                    lines.append(f"#{v.number} DONE {v.seconds:.1f}s")
                finished.append(v)
        for status in event.get("statuses") or []:
            v = self.vertexes.get(status.get("vertex", ""))
            key = (status.get("vertex"), status.get("id"))
            if v and status.get("completed") and key not in self._statuses_done:
                self._statuses_done.add(key)
                lines.append(f"#{v.number} {status.get('id', '')} done".replace("  ", " "))
        for log in event.get("logs") or []:
            v = self.vertexes.get(log.get("vertex", ""))
            if v is None:
                continue
            text = base64.b64decode(log.get("data") or b"").decode(errors="replace")
            at = timestamp(log.get("timestamp"))
            since = f"{at - v.started:.3f} " if at is not None and v.started is not None else ""
            *complete, v._partial = (v._partial + text.replace("\r\n", "\n")).split("\n")
            for line in complete:
                v.output.append(line)
                lines.append(f"#{v.number} {since}{line}")
        return lines, finished

    def _flush(self, v: Vertex) -> list:
        if not v._partial:
            return []
        v.output.append(v._partial)
        line, v._partial = f"#{v.number} {v._partial}", ""
        return [line]

    def steps(self) -> list[Vertex]:
        """The Dockerfile steps (named `[n/m] ...`) in the order they started; those that never
        started (cancelled by a failure elsewhere) last."""
        found = [v for v in self.vertexes.values() if v.step]
        return sorted(found, key=lambda v: (v.number or 10**6, int(v.step["number"])))

    def error(self) -> str:
        """What buildx said went wrong (`failed to solve: ...`), else the failed step's error."""
        said = [t[len("ERROR: "):] for t in self.text if t.startswith("ERROR: ")]
        if said:
            return said[-1]
        failed = [v.error for v in self.vertexes.values() if v.error]
        return failed[0] if failed else ""


# ------------------------------------------------------------------ the CLI

def cli() -> str:
    """The docker CLI that runs buildx ('' where there is none on PATH)."""
    return shutil.which("docker") or ""


class Buildx:
    """`docker buildx build ARGS` with `--progress=rawjson`, stopped after `seconds`.

    The CLI is called directly here, not through python-on-whales: its `buildx.build()` (0.81)
    has no `--cgroup-parent` or `--ulimit`, and the process behind `stream_logs=True` is out of
    reach, so a build that runs too long could not be stopped. The CLI and its buildx plugin
    run in their own process group. Stopping sends SIGTERM to the group (buildx cancels the
    solve, and BuildKit kills the step's processes), then SIGKILL if it lingers: the engine
    cancels a build whose client went away, too.
    """

    def __init__(self, args: list, seconds: float | None = None):
        self.args = [cli() or "docker", "buildx", "build", "--progress=rawjson", *map(str, args)]
        self.seconds = seconds
        self.returncode: int | None = None
        self.timed_out = False
        self._proc: subprocess.Popen | None = None

    def lines(self) -> Iterator[str]:
        """Every line buildx writes (progress goes to stderr), until it ends or time is up."""
        self._proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      start_new_session=True, text=True,
                                      errors="replace", bufsize=1)
        lines: queue.Queue = queue.Queue()

        def pump(stream):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self._proc.stderr,), daemon=True).start()
        deadline = None if self.seconds is None else time.monotonic() + self.seconds
        try:
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    self.timed_out = True
                    self.stop()
                    return
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    continue
                if line is None:
                    break
                yield line
            self.returncode = self._proc.wait()
        finally:
            self.stop()  # also when the reader gave up early

    def events(self) -> Iterator[dict | str]:
        return read_events(self.lines())

    def stop(self, grace: float = 3.0) -> None:
        """End the CLI and its plugin (SIGTERM, then SIGKILL): the engine cancels the build."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if proc is not None and self.returncode is None:
                self.returncode = proc.returncode
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self.returncode = proc.poll()
        try:  # the plugin may outlive the CLI by a moment: make sure the group is gone
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------ is BuildKit there?

@dataclass
class BuilderInfo:
    version: str          # buildx's version, e.g. '0.13.1'
    builder: str = ""     # `--builder` to pass ('' for the current one, a docker-driver builder)

    @property
    def label(self) -> str:
        return f"BuildKit (docker buildx {self.version})"


_INFO: dict = {}


def builder_info() -> BuilderInfo | None:
    """BuildKit through `docker buildx`, or None where the CLI or its buildx plugin is missing
    (then only the engine's legacy builder can build).

    Builds must see the engine's own images (FROM python:3.11-slim is never pulled), so they go
    to a builder with the `docker` driver: the current one, or else the one buildx keeps for the
    current docker context (named after it)."""
    from helpers.course.engine import buildx_version
    key = tuple(os.environ.get(k, "") for k in ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
                                                "PATH"))
    if key not in _INFO:
        version = buildx_version() if cli() else ""
        info = None
        if version:
            from python_on_whales import DockerClient
            from python_on_whales.exceptions import DockerException
            info = BuilderInfo(version)
            try:
                docker = DockerClient()
                if docker.buildx.inspect().driver != "docker":
                    info.builder = docker.context.inspect().name
            except (DockerException, OSError):
                pass  # buildx answers; let the build itself say what is wrong
        _INFO[key] = info
    return _INFO[key]
