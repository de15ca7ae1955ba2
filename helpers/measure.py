"""Measuring containers and VMs on this machine (used by every notebook's "Container vs VM" part).

- `Sampler`: a background thread that records, at a fixed rate, the machine's CPU and memory and
  those of the processes it watches (QEMU, a container's processes); it reports its own cost.
- `container_memory_mib` / `container_cpu_percent`: the engine's stats API read the way
  `docker stats` reads it.
- `container_start_seconds`: create + start to the workload's first output, through the SDK.
"""
from __future__ import annotations

import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

import docker
import psutil

from .labels import labels

MIB = 2**20


# ---------------------------------------------------------------- the psutil sampler

@dataclass
class Sample:
    t: float                      # seconds since the sampler started
    machine_cpu_percent: float    # all cores together: 100 % = every core busy
    machine_used_mib: float
    processes: dict = field(default_factory=dict)  # name -> {"cpu_percent", "rss_mib"}


class Sampler:
    """Samples at `hz` in a background thread: `with Sampler(10) as s: ...`, then `s.samples`.

    `watch(name, pid)` follows a process and its children; their CPU is in % of one core
    (like `top`), their memory is resident set size in MiB.
    """

    def __init__(self, hz: float = 10.0, on_sample=None):
        self.hz, self.on_sample = hz, on_sample
        self.samples: list[Sample] = []
        self._watched: dict[str, psutil.Process] = {}
        self._last_cpu: dict[str, float] = {}
        self._trees: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.own_cpu_seconds = 0.0
        self.wall_seconds = 0.0

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._watched[name] = psutil.Process(pid)
            self._last_cpu.pop(name, None)
            self._trees.pop(name, None)

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._watched.pop(name, None)

    def _tree(self, name: str, proc: psutil.Process, now: float) -> list[psutil.Process]:
        # Listing children scans all of /proc: do it once a second, not at every sample.
        tree, when = self._trees.get(name, (None, 0.0))
        if tree is None or now - when > 1.0:
            try:
                tree = [proc] + proc.children(recursive=True)
            except psutil.Error:
                tree = []
            self._trees[name] = (tree, now)
        return tree

    def _measure(self, name: str, proc: psutil.Process, t: float, dt: float) -> dict | None:
        cpu = rss = 0.0
        alive = False
        for p in self._tree(name, proc, t):
            try:
                with p.oneshot():
                    times = p.cpu_times()
                    cpu += times.user + times.system
                    rss += p.memory_info().rss
                alive = True
            except psutil.Error:
                continue
        if not alive:
            return None
        last = self._last_cpu.get(name)
        self._last_cpu[name] = cpu
        percent = 100.0 * (cpu - last) / dt if last is not None and dt > 0 else 0.0
        return {"cpu_percent": max(percent, 0.0), "rss_mib": rss / MIB, "cpu_seconds": cpu}

    def _run(self) -> None:
        began_cpu = time.thread_time()
        start = last = time.perf_counter()
        psutil.cpu_percent(None)
        period = 1.0 / self.hz
        tick = start
        while not self._stop.is_set():
            now = time.perf_counter()
            dt, last = now - last, now
            vm = psutil.virtual_memory()
            sample = Sample(now - start, psutil.cpu_percent(None),
                            (vm.total - vm.available) / MIB)
            with self._lock:
                watched = list(self._watched.items())
            for name, proc in watched:
                figures = self._measure(name, proc, now, dt)
                if figures:
                    sample.processes[name] = figures
            self.samples.append(sample)
            if self.on_sample:
                self.on_sample(sample)
            tick += period
            self._stop.wait(max(0.0, tick - time.perf_counter()))
        self.own_cpu_seconds = time.thread_time() - began_cpu
        self.wall_seconds = time.perf_counter() - start

    def start(self) -> "Sampler":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dockercourse-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        return self.samples

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    @property
    def overhead_percent(self) -> float:
        """The sampler's own CPU time, in % of one core, over the time it ran."""
        return 100.0 * self.own_cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def rate_hz(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        return (len(self.samples) - 1) / (self.samples[-1].t - self.samples[0].t)

    def series(self, name: str, key: str) -> tuple[list, list]:
        """(times in s, values) for one watched process and one figure, e.g. ('vm', 'rss_mib')."""
        pairs = [(s.t, s.processes[name][key]) for s in self.samples if name in s.processes]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def peak(self, name: str, key: str = "rss_mib") -> float:
        return max(self.series(name, key)[1], default=0.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------- the engine's stats, CLI-style

def memory_mib_from_stats(stats: dict) -> float:
    """Memory as `docker stats` shows it: usage minus inactive file cache (cgroup v1 or v2)."""
    mem = stats.get("memory_stats") or {}
    usage, detail = mem.get("usage", 0), mem.get("stats") or {}
    if "total_inactive_file" in detail and detail["total_inactive_file"] < usage:   # cgroup v1
        usage -= detail["total_inactive_file"]
    elif detail.get("inactive_file", usage) < usage:                                 # cgroup v2
        usage -= detail["inactive_file"]
    return usage / MIB


def cpu_percent_from_stats(stats: dict) -> float:
    """CPU as `docker stats` shows it: % of one core, from the deltas to the previous reading."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - \
        pre.get("cpu_usage", {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    if system_delta > 0 and cpu_delta > 0:
        return 100.0 * cpu_delta / system_delta * cpus
    return 0.0


def container_memory_mib(container) -> float:
    """One `docker stats --no-stream` memory reading, in MiB (one_shot: memory needs no
    previous CPU sample, so the engine answers at once)."""
    return memory_mib_from_stats(container.stats(stream=False, one_shot=True))


def container_cpu_percent(container) -> float:
    """One `docker stats --no-stream` CPU reading, in % of one core."""
    return cpu_percent_from_stats(container.stats(stream=False))


def container_pid(container) -> int:
    """The host's pid of the container's first process (0 where the host cannot see it)."""
    container.reload()
    return int(container.attrs["State"].get("Pid") or 0)


def container_cpu_seconds(container) -> float:
    """CPU time the container's processes used so far (the stats API's total usage), in s."""
    stats = container.stats(stream=False, one_shot=True)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


# ---------------------------------------------------------------- start latency

def _create(client: docker.DockerClient, image: str, script: str, nn: int, **create):
    """`client.containers.create(...)` without the inspect it adds (one round trip fewer),
    so that the SDK path pays what `docker run` pays: create, attach, start."""
    from docker.models.containers import _create_container_args
    args = _create_container_args({"image": image, "command": ["sh", "-c", script],
                                   "version": client.api._version,
                                   "labels": labels(nn), **create})
    created = client.api.create_container(**args)
    if hasattr(client, "lesson"):   # the lesson's client: the course made it, so record it
        client.lesson.record(created["Id"], kind="containers", nn=str(nn))
    return client.containers.prepare_model({"Id": created["Id"]})


def first_output(client: docker.DockerClient, image: str, script: str, nn: int,
                 keep: bool = False, **create) -> tuple[float, object]:
    """`docker run` through the SDK, timed from create to the workload's first output.

    Attaches before starting, as `docker run` does, so no output is missed. Returns
    (seconds, container); the container is removed unless `keep`.
    """
    began = time.perf_counter()
    container = _create(client, image, script, nn, **create)
    try:
        stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True,
                                   logs=True)
        container.start()
        next(stream)
        seconds = time.perf_counter() - began
        stream.close()
    except BaseException:
        container.remove(force=True)
        raise
    if not keep:
        container.remove(force=True)
    return seconds, container


def container_start_seconds(client: docker.DockerClient, image: str, nn: int,
                            script: str = "echo ready") -> float:
    """Seconds from `create` to the first output of `script` (the container is removed after)."""
    return first_output(client, image, script, nn)[0]


def cli_run_seconds(image: str, nn: int, script: str = "echo ready") -> float:
    """`docker run --rm IMAGE sh -c SCRIPT`, timed from launch to its first output line."""
    label = f"dockercourse.notebook={int(nn):02d}"
    began = time.perf_counter()
    proc = subprocess.Popen(["docker", "run", "--rm", "--label", label, image, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    seconds = time.perf_counter() - began
    proc.communicate(timeout=60)
    return seconds


# ---------------------------------------------------------------- summaries

def summary(values: list[float]) -> dict:
    """Median and spread of repeated runs (never one sample alone)."""
    values = sorted(values)
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"n": len(values), "median": statistics.median(values), "min": values[0],
            "max": values[-1], "q1": q[0], "q3": q[2],
            "stdev": statistics.stdev(values) if len(values) >= 2 else 0.0,
            "samples": values}


def repeat(fn, runs: int, warmup: int = 1, progress=None, caption: str = "") -> list[float]:
    """Call `fn()` warmup + runs times; keep the last `runs` results."""
    results = []
    for i in range(warmup + runs):
        value = fn()
        if i >= warmup:
            results.append(value)
        if progress is not None:
            progress.advance(1, caption=f"{caption} {i + 1}/{warmup + runs}")
    return results


@dataclass
class ContainerRun:
    """One workload run in a container: seconds to first output and to the end marker."""
    start_seconds: float
    work_seconds: float
    lines: list
    container: object


def container_workload(client: docker.DockerClient, image: str, script: str, nn: int,
                       done_marker: str, keep: bool = False, timeout: float = 300,
                       **create) -> ContainerRun:
    """Run `script`, timing create → first output and first output → `done_marker`.

    With `keep` the container stays (running, if the script holds) for stats; else removed.
    """
    began = time.perf_counter()
    container = _create(client, image, script, nn, **create)
    text, first, done = "", None, None
    try:
        stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True,
                                   logs=True)
        container.start()
        for chunk in stream:
            now = time.perf_counter()
            first = first or now
            text += chunk.decode(errors="replace")
            if done_marker in text:
                done = now
                break
            if now - began > timeout:
                raise TimeoutError(f"The container did not finish within {timeout:.0f} s.")
        stream.close()
        if first is None:
            raise RuntimeError("The container exited without any output.")
    except BaseException:
        container.remove(force=True)
        raise
    if not keep:
        container.remove(force=True)
    lines = [l for l in text.splitlines() if l and done_marker not in l]
    return ContainerRun(first - began, (done or first) - first, lines, container)
