"""Measuring containers and VMs on this machine (every notebook's "Container vs VM" part).

One function per question, each figure in its unit:
- `Sampler`: a background thread that records, at a fixed rate, the machine's CPU and memory and
  those of what it watches: a container through its cgroup files, QEMU through /proc/PID. It
  reports its own CPU cost.
- /proc and cgroup readers: `pss_mib(pid)`, `qemu_memory(pid, ...)` (QEMU's PSS split from
  /proc/PID/smaps), `Cgroup` (a container's memory and CPU from the kernel's own files, cgroup v1
  or v2), `engine_processes()` (dockerd and containerd), `mem_available_mib()`.
- the engine's stats API read the way `docker stats` reads it.
- start latency: create + start to the workload's first output, through the SDK, and a plain
  process of this machine running the same workload.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil

from helpers.course.engine import container_create_args

MIB = 2**20
KIB_PER_MIB = 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# ---------------------------------------------------------------- /proc: processes and machine

def mem_available_mib() -> float:
    """MemAvailable: what the kernel says can be given to new programs without swapping."""
    return psutil.virtual_memory().available / MIB


def kernel_mib() -> float:
    """The kernel's own memory that no process's PSS shows: unreclaimable slab (namespaces,
    network devices, cgroups), page tables and kernel stacks, from /proc/meminfo."""
    wanted, total = ("SUnreclaim:", "PageTables:", "KernelStack:"), 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(wanted):
                total += int(line.split()[1])
    return total / KIB_PER_MIB


def pss_mib(pid: int) -> float:
    """The process's proportional set size (shared pages split between their users), in MiB.

    Needs the right to read /proc/PID/smaps_rollup (the process's own user, or root)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except FileNotFoundError:
        if not psutil.pid_exists(pid):
            raise psutil.NoSuchProcess(pid) from None
        return psutil.Process(pid).memory_full_info().pss / MIB   # kernels before 4.14
    except PermissionError:
        raise psutil.AccessDenied(pid) from None
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) / KIB_PER_MIB if found else 0.0


def process_cpu_s(pid: int, children: bool = True) -> float:
    """CPU seconds of all the process's threads, plus (with `children`) those of the children
    it has already reaped: short-lived helpers such as runc count too."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + ((t.children_user + t.children_system) if children else 0.0)


class QemuMemory(NamedTuple):
    """QEMU's PSS in disjoint parts, from /proc/PID/smaps (the four parts add up to pss_mib)."""
    guest_ram_mib: float                # the guest's RAM that QEMU has touched
    tcg_code_cache_mib: float | None    # TCG's translated code; None: none (KVM)
    heap_mib: float                     # heap, thread stacks, other anonymous memory
    binary_mib: float                   # QEMU's binary, its libraries, mapped files
    pss_mib: float
    rss_mib: float


def qemu_memory(pid: int, guest_memory_mib: int) -> QemuMemory:
    """QEMU's memory in parts, from its /proc/PID/smaps (root, or QEMU's own user)."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except PermissionError:
        raise psutil.AccessDenied(pid) from None
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    return split_smaps(text, guest_memory_mib)


def split_smaps(text: str, guest_memory_mib: int) -> QemuMemory:
    """Split a QEMU memory map: the guest's RAM is the anonymous mapping of the guest's size,
    the TCG code cache the anonymous executable one (or the tcg-jit memfd), the binary every
    file mapping, the heap the rest."""
    maps, current = [], None
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
    for line in text.splitlines():
        m = head.match(line)
        if m:
            current = {"kib": (int(m.group(2), 16) - int(m.group(1), 16)) // 1024,
                       "perms": m.group(3), "name": m.group(4), "Pss": 0, "Rss": 0}
            maps.append(current)
        elif current is not None and line.startswith(("Pss:", "Rss:")):
            key, value = line.split(":", 1)
            current[key] = int(value.split()[0])
    guest_kib = guest_memory_mib * 1024
    # QEMU may round the RAM block up (alignment); a few MiB of slack finds it either way.
    ram = [m for m in maps if not m["name"] and guest_kib <= m["kib"] <= guest_kib + 4096]
    ram_map = max(ram, key=lambda m: m["Pss"], default=None)
    guest = code = heap = binary = 0
    has_code = False
    for m in maps:
        if m is ram_map:
            guest += m["Pss"]
        elif "tcg-jit" in m["name"] or (not m["name"] and "x" in m["perms"]):
            code += m["Pss"]
            has_code = True
        elif m["name"].startswith("/"):
            binary += m["Pss"]
        else:
            heap += m["Pss"]
    total = sum(m["Pss"] for m in maps)
    return QemuMemory(guest / 1024, code / 1024 if has_code else None, heap / 1024,
                      binary / 1024, total / 1024, sum(m["Rss"] for m in maps) / 1024)


def shim_of(pid: int) -> int | None:
    """The containerd shim that runs the container whose first process is `pid` (None: the
    process is not a container's, or this machine does not see it, as under Docker Desktop)."""
    try:
        parent = psutil.Process(pid).parent()
        return parent.pid if parent and parent.name().startswith("containerd-shim") else None
    except psutil.Error:
        return None


@dataclass(frozen=True)
class EngineProcesses:
    """The engine's daemons on this machine: dockerd, and containerd where it runs apart."""
    dockerd: int
    containerd: int | None

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.dockerd, self.containerd) if p]

    def pss_mib(self) -> float:
        return sum(pss_mib(p) for p in self.pids)

    def cpu_s(self) -> float:
        """Both daemons' CPU, with what they reaped (the shim's short-lived starter)."""
        return sum(process_cpu_s(p) for p in self.pids)


def engine_processes() -> EngineProcesses | None:
    """dockerd and containerd as this machine sees them; None where the engine runs out of its
    sight (Docker Desktop's VM, a remote engine) or they cannot be read."""
    dockerd = containerd = None
    for proc in psutil.process_iter(["name", "status"]):
        name = proc.info["name"]
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue   # an engine that has ended, not yet reaped by its parent
        if name == "dockerd" and dockerd is None:
            dockerd = proc.pid
        elif name == "containerd" and containerd is None:
            containerd = proc.pid
    if dockerd is None:
        return None
    found = EngineProcesses(dockerd, containerd)
    try:
        found.pss_mib()
        found.cpu_s()
    except psutil.Error:
        return None
    return found


# ---------------------------------------------------------------- cgroup files

def _cgroup_mounts() -> dict[str, Path]:
    """Controller → mount point (v1), and '' → the unified hierarchy (v2)."""
    mounts: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or len(fields) < 5:
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault("", Path(fields[4]))
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                mounts.setdefault(option, Path(fields[4]))
    return mounts


@dataclass(frozen=True)
class Cgroup:
    """A container's cgroup, read from the kernel's files: what `docker stats` reads, and what
    counts every process the container ever ran, however short-lived."""
    memory_dir: Path
    cpu_dir: Path
    v2: bool

    @classmethod
    def of(cls, pid: int) -> "Cgroup | None":
        """The cgroup of process `pid` (None where this machine cannot see it)."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        mounts = _cgroup_mounts()
        paths = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                paths[c] = path.lstrip("/")
        if "memory" in paths and "cpuacct" in paths and "memory" in mounts and \
                "cpuacct" in mounts:
            found = cls(mounts["memory"] / paths["memory"], mounts["cpuacct"] / paths["cpuacct"],
                        False)
        elif "" in paths and "" in mounts:
            found = cls(mounts[""] / paths[""], mounts[""] / paths[""], True)
        else:
            return None
        return found if found.memory_dir.is_dir() and found.cpu_dir.is_dir() else None

    def pids(self) -> list[int]:
        """Every process in the cgroup now."""
        return [int(x) for x in (self.memory_dir / "cgroup.procs").read_text().split()]

    def _stat(self, folder: Path, name: str) -> dict:
        pairs = (line.split() for line in (folder / name).read_text().splitlines())
        return {p[0]: int(p[1]) for p in pairs if len(p) == 2}

    def memory_mib(self) -> float:
        """Use minus inactive file cache, as `docker stats` counts it."""
        if self.v2:
            usage = int((self.memory_dir / "memory.current").read_text())
            inactive = self._stat(self.memory_dir, "memory.stat").get("inactive_file", 0)
        else:
            usage = int((self.memory_dir / "memory.usage_in_bytes").read_text())
            inactive = self._stat(self.memory_dir, "memory.stat").get("total_inactive_file", 0)
        return (usage - inactive if inactive < usage else usage) / MIB

    def kernel_mib(self) -> float:
        """The kernel memory charged to the cgroup (and so already in its use)."""
        if self.v2:
            stat = self._stat(self.memory_dir, "memory.stat")
            return sum(stat.get(k, 0) for k in ("kernel_stack", "pagetables",
                                                 "slab_unreclaimable")) / MIB
        usage = self.memory_dir / "memory.kmem.usage_in_bytes"
        return int(usage.read_text()) / MIB if usage.exists() else 0.0

    def cpu_s(self) -> float:
        """CPU seconds of every process the cgroup has held (cpuacct.usage / cpu.stat)."""
        if self.v2:
            return self._stat(self.cpu_dir, "cpu.stat").get("usage_usec", 0) / 1e6
        return int((self.cpu_dir / "cpuacct.usage").read_text()) / 1e9


# ---------------------------------------------------------------- the sampler

class Reading(NamedTuple):
    cpu_percent: float    # % of one core since the previous sample (like `top`)
    memory_mib: float     # a process's resident set, or a cgroup's use
    cpu_s: float          # CPU seconds so far


@dataclass
class Sample:
    t: float                      # seconds since the sampler started
    machine_cpu_percent: float    # all cores together: 100 % = every core busy
    machine_used_mib: float       # total minus MemAvailable
    readings: dict = field(default_factory=dict)   # watched name -> Reading


def _machine_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _meminfo_used_mib() -> float:
    total = available = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1])
            elif line.startswith("MemAvailable:"):
                available = int(line.split()[1])
                break
    return (total - available) / KIB_PER_MIB


class _Process:
    """One process read straight from /proc (two small files a sample, no child scan)."""

    def __init__(self, pid: int):
        self.pid = pid

    def read(self) -> tuple[float, float]:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{self.pid}/statm") as f:
            resident = int(f.read().split()[1])
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, resident * PAGE_SIZE / MIB


class _Group:
    """A container read from its cgroup files."""

    def __init__(self, cgroup: Cgroup):
        self.cgroup = cgroup

    def read(self) -> tuple[float, float]:
        return self.cgroup.cpu_s(), self.cgroup.memory_mib()


class Sampler:
    """Samples at `hz` in a background thread: `with Sampler(10) as s: ...`, then `s.samples`.

    `watch(name, pid=...)` follows one process (QEMU); `watch(name, cgroup=...)` a container
    through its cgroup files, which count all its processes without listing them. CPU is in %
    of one core (like `top`); memory is a process's resident set or a cgroup's use, in MiB.
    """

    def __init__(self, hz: float = 10.0, on_sample=None):
        self.hz, self.on_sample = hz, on_sample
        self.samples: list[Sample] = []
        self._watched: dict = {}
        self._last_cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.own_cpu_s = 0.0
        self.wall_s = 0.0

    def watch(self, name: str, pid: int | None = None, cgroup: Cgroup | None = None) -> None:
        if (pid is None) == (cgroup is None):
            raise ValueError("watch() takes a pid or a cgroup")
        with self._lock:
            self._watched[name] = _Process(pid) if pid is not None else _Group(cgroup)
            self._last_cpu.pop(name, None)

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._watched.pop(name, None)

    def _run(self) -> None:
        began_cpu = time.thread_time()
        start = last = time.perf_counter()
        busy0, total0 = _machine_ticks()
        period = 1.0 / self.hz
        tick = start
        while not self._stop.is_set():
            now = time.perf_counter()
            dt, last = now - last, now
            busy, total = _machine_ticks()
            machine_cpu = 100.0 * (busy - busy0) / (total - total0) if total > total0 else 0.0
            busy0, total0 = busy, total
            sample = Sample(now - start, machine_cpu, _meminfo_used_mib())
            with self._lock:
                watched = list(self._watched.items())
            for name, source in watched:
                try:
                    cpu, memory = source.read()
                except (OSError, ValueError, IndexError):
                    continue   # gone: the container stopped or QEMU exited
                before = self._last_cpu.get(name)
                self._last_cpu[name] = cpu
                percent = 100.0 * (cpu - before) / dt if before is not None and dt > 0 else 0.0
                sample.readings[name] = Reading(max(percent, 0.0), memory, cpu)
            self.samples.append(sample)
            if self.on_sample:
                self.on_sample(sample)
            tick += period
            self._stop.wait(max(0.0, tick - time.perf_counter()))
        self.own_cpu_s = time.thread_time() - began_cpu
        self.wall_s = time.perf_counter() - start

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
        return 100.0 * self.own_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def rate_hz(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        return (len(self.samples) - 1) / (self.samples[-1].t - self.samples[0].t)

    def series(self, name: str, what: str) -> tuple[list, list]:
        """(times in s, values) for one watched thing and one Reading field ('memory_mib')."""
        pairs = [(s.t, getattr(s.readings[name], what)) for s in self.samples
                 if name in s.readings]
        return [p[0] for p in pairs], [p[1] for p in pairs]

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


def container_cpu_s(container) -> float:
    """CPU seconds the container's processes used so far (the stats API's total usage)."""
    stats = container.stats(stream=False, one_shot=True)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def remove(thing) -> None:
    """`docker rm -f` (or `docker volume rm -f`); already gone, or going, is what we wanted."""
    from docker.errors import APIError, NotFound
    try:
        thing.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        if exc.status_code != 409:   # 409: the engine is removing it already
            raise


def container_pid(container) -> int:
    """The host's pid of the container's first process (0 where the host cannot see it)."""
    container.reload()
    return int(container.attrs["State"].get("Pid") or 0)


def visible_pid(container) -> int | None:
    """The container's first process as this machine sees it: its pid where a containerd shim
    runs it here, None where the engine runs elsewhere (Docker Desktop's VM)."""
    pid = container_pid(container)
    return pid if pid and shim_of(pid) else None


# ---------------------------------------------------------------- start latency

def _create(lesson, image: str, script: str, **create):
    """`client.containers.create(...)` without the inspect it adds (one round trip fewer),
    so that the SDK path pays what `docker run` pays: create, attach, start."""
    client = lesson.client
    args = container_create_args(client, image, ["sh", "-c", script], labels=lesson.labels,
                                 **create)
    created = client.api.create_container(**args)
    return client.containers.prepare_model({"Id": created["Id"]})


@dataclass
class ContainerRun:
    """One workload run in a container: seconds to first output and to the end marker."""
    start_s: float
    work_s: float
    lines: list
    container: object
    then: object = None     # what `then()` returned, read right at the end marker


def container_workload(image: str, script: str, done_marker: str, keep: bool = False,
                       timeout_s: float = 60, then=None, mark: str | None = None,
                       *, lesson, **create) -> ContainerRun:
    """`docker run` through the SDK: create, attach, start; times create → first output and
    first output → `done_marker`. With `keep` the container stays (running, if the script
    holds) to be measured, and is written into the lesson's record; else it is removed.
    `then()`, if given, runs right at the end marker, before anything else talks to the
    engine (to read the engine's own CPU time). With `mark`, `work_s` runs from the line
    holding `mark` to the end marker."""
    client = lesson.client
    began = time.perf_counter()
    container = _create(lesson, image, script, **create)
    text, first, done, marked = "", None, None, None
    try:
        stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True,
                                   logs=True)
        container.start()
        for chunk in stream:
            now = time.perf_counter()
            first = first or now
            text += chunk.decode(errors="replace")
            if mark and marked is None and mark in text:
                marked = now
            if done_marker in text:
                done = now
                break
            if now - began > timeout_s:
                raise TimeoutError(f"The container did not finish within {timeout_s:.0f} s.")
        after = then() if then else None
        stream.close()
        if first is None:
            raise RuntimeError("The container exited without any output.")
        if keep:   # recorded after the timing: writing the record is not part of a start
            lesson.record(container.id, kind="containers")
    except BaseException:
        remove(container)
        raise
    if not keep:
        remove(container)
    lines = [l for l in text.splitlines() if l and done_marker not in l]
    return ContainerRun(first - began, (done or first) - (marked or first), lines, container,
                        after)


def container_start_s(image: str, script: str = "echo ready", *, lesson) -> float:
    """Seconds from `create` to the first output of `script` (the container is removed after)."""
    return container_workload(image, script, "\n", lesson=lesson).start_s


def cli_run_s(image: str, script: str = "echo ready", *, labels: dict) -> float:
    """`docker run --rm IMAGE sh -c SCRIPT`, timed from launch to its first output line."""
    args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    began = time.perf_counter()
    proc = subprocess.Popen(["docker", "run", "--rm", *args, image, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    seconds = time.perf_counter() - began
    proc.communicate(timeout=60)
    return seconds


def process_workload(script: str, done_marker: str, shell: tuple = ("/bin/sh",),
                     timeout_s: float = 60) -> tuple[float, list]:
    """The floor: the same workload as a plain process of this machine, run by `shell` (e.g.
    ("/bin/busybox", "sh"), the shell the image holds). Seconds from launch to its first output
    line, and its lines."""
    began = time.perf_counter()
    proc = subprocess.Popen([*shell, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first, lines = None, []
    try:
        for line in proc.stdout:
            first = first or time.perf_counter()
            if done_marker in line:
                break
            lines.append(line.rstrip("\n"))
            if time.perf_counter() - began > timeout_s:
                raise TimeoutError(f"The process did not finish within {timeout_s:.0f} s.")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    if first is None:
        raise RuntimeError("The process exited without any output.")
    return first - began, lines
