"""The fence around what a learner types into a panel: limits, a timeout, bounded output.

A panel that runs a container from a learner's input runs it through `run_fenced()`: at most
256 MiB of memory (no swap on top), 128 processes, half a CPU, `settings.fence_seconds()` of wall
clock, and 64 KiB of output read back. Whatever happens, the container goes, with its anonymous
volumes. What a learner types in a terminal or a `!docker` cell is theirs: no panel fences that.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from docker.errors import APIError, NotFound

from helpers.course import settings

MEMORY = "256m"
PIDS = 128
NANO_CPUS = 500_000_000          # half of one CPU
OUTPUT_BYTES = 64 * 1024


def container_limits() -> dict:
    """The SDK's keywords for the fence (`docker run --memory 256m --memory-swap 256m
    --pids-limit 128 --cpus 0.5`)."""
    return {"mem_limit": MEMORY, "memswap_limit": MEMORY, "pids_limit": PIDS,
            "nano_cpus": NANO_CPUS}


def describe() -> str:
    return (f"memory {MEMORY}, {PIDS} processes, 0.5 CPU, {settings.fence_seconds():.0f} s, "
            f"{OUTPUT_BYTES // 1024} KiB of output")


@dataclass
class FencedRun:
    """What a fenced container did: its exit code, its output (cut), and which limit caught it."""
    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False
    oom_killed: bool = False
    output_cut: bool = False

    @property
    def caught_by(self) -> str:
        """Which limit stopped it ('' when it ended by itself)."""
        if self.timed_out:
            return f"the {settings.fence_seconds():.0f} s time limit"
        if self.oom_killed:
            return f"the {MEMORY} memory limit"
        return ""


def read_bounded(container, limit: int = OUTPUT_BYTES) -> tuple[str, bool]:
    """The first `limit` bytes of a container's output, read as a stream and then let go."""
    chunks, size = [], 0
    stream = container.logs(stream=True, follow=False)
    try:
        for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                return b"".join(chunks)[:limit].decode(errors="replace"), True
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
    return b"".join(chunks).decode(errors="replace"), False


def run_fenced(image: str, command=None, *, lesson, timeout: float | None = None,
               **create) -> FencedRun:
    """Run `image` with `command` inside the fence, wait at most `timeout` seconds, remove it."""
    timeout = settings.fence_seconds() if timeout is None else timeout
    client = lesson.client
    container = client.containers.create(image, command, labels=lesson.labels,
                                         **container_limits(), **create)
    started = time.monotonic()
    timed_out = False
    try:
        container.start()
        try:
            container.wait(timeout=timeout)
        except Exception:  # the SDK's read timeout: the fence's time is up
            timed_out = True
            try:
                container.kill()
            except APIError:
                pass
        seconds = time.monotonic() - started
        container.reload()
        state = container.attrs.get("State", {})
        output, cut = read_bounded(container)
        return FencedRun(None if timed_out else state.get("ExitCode"), output, seconds,
                         timed_out, bool(state.get("OOMKilled")), cut)
    finally:
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
