"""Each lesson's "Container vs VM" part in one call: run the lesson's scenario (`bench`), draw
it (`charts`), and show the figures beside the chart; or, where the VM side cannot run here, a
grey line saying what could not run and why.

    from helpers.measure import comparison
    comparison.disk(app_image="course01.invalid/hello", lesson=lesson)     # 01
    comparison.start_and_memory(n=5, lesson=lesson)         # 02
    comparison.build_vs_provision(lesson=lesson)            # 03
    comparison.write_throughput(lesson=lesson)              # 04
    comparison.stack(lesson=lesson)                         # 05
    comparison.recovery(lesson=lesson)                      # 06
    comparison.container_vs_vm(lesson=lesson)               # 07
    comparison.published()                                  # the literature, with conditions
"""
from __future__ import annotations

import base64
import html
from dataclasses import fields

from docker.errors import DockerException

from helpers.course.ui import GREY, Progress, html_table, plain_words, status_html
from helpers.measure import bench, charts, reference
from helpers.measure.guest import GuestTimeout
from helpers.measure.machine import machine, vm_side
from helpers.measure.report import container_memory_text, na, report, vm_memory_text
from helpers.measure.results import MemoryOfEach
from helpers.measure.vmkit import VmUnavailable

EXPECTED = (VmUnavailable, GuestTimeout, TimeoutError, RuntimeError, DockerException, OSError)


class Shown:
    """A lesson's part as a cell shows it: lines of figures, the chart, notes in amber; or one
    grey line saying what could not run. `.result` holds the named result."""

    def __init__(self, result=None, figure=None, lines=(), notes=(), problem: str = ""):
        self.result, self.figure = result, figure
        self.lines, self.notes, self.problem = list(lines), list(notes), problem

    def __repr__(self) -> str:
        return "\n".join([f"● {self.problem}"] if self.problem else self.lines + self.notes)

    def _repr_html_(self) -> str:
        if self.problem:
            return status_html(None, self.problem, "notebook 00's preflight says what is "
                                                   "missing on this machine")
        text = (f'<pre style="color:{GREY};font-size:11px">'
                f'{html.escape(chr(10).join(self.lines))}</pre>')
        notes = "".join(status_html("warn", n) for n in self.notes)
        picture = ""
        if self.figure is not None:
            data = base64.b64encode(charts.png(self.figure)).decode()
            picture = f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'
        return notes + text + picture


def _shown(lesson, make) -> Shown:
    """`make(side, facts)` → Shown, with the VM side and the machine found once; what the
    machine cannot do becomes the grey line."""
    try:
        side = vm_side(lesson=lesson)
        return make(side, machine(lesson=lesson, side=side))
    except EXPECTED as exc:
        return Shown(problem=f"This comparison could not run here: {plain_words(exc)}")


def _memory_lines(c, v) -> list[str]:
    """Each side's memory in its parts, MiB per instance, as the figures' text says it."""
    return [f"memory per container, MiB ({c.n} running): {container_memory_text(c)}",
            f"memory per VM, MiB ({v.n} running): {vm_memory_text(v)}"]


def _memory_of_each(lesson, side) -> MemoryOfEach:
    """One container and one VM running the same workload, measured in parts."""
    with Progress("memory: 1 container, then 1 VM", 2) as bar:
        return bench.memory_of_each(side, progress=bar, lesson=lesson)


# ---------------------------------------------------------------- 01

def disk(app_image: str | None = None, copies: int = 10, *, lesson) -> Shown:
    """Disk: N apps on one shared base image vs N VMs, each with its kernel and boot image;
    and one of each running the same workload, memory in parts."""
    def make(side, facts):
        d = bench.disk_footprint(lesson=lesson, copies=copies, app_image=app_image, side=side)
        mem = _memory_of_each(lesson, side)
        fig, (one, many, running) = charts.figure(
            "Disk: images share layers, VMs carry their own kernel; and memory, running",
            facts, ncols=3, width=4.8, height=5.2)
        charts.bars(one, [f"{d.base_image} image", "VM kernel + initramfs"],
                    [d.base_image_mib, d.vm_kernel_mib + d.vm_initramfs_mib], "MiB on disk",
                    "one of each, on disk")
        charts.bars(many, [f"{copies} containers", f"{copies} VMs"],
                    [d.containers_total_mib, d.vms_total_mib], "MiB on disk",
                    f"{copies} apps (containers: the base once + each app's layer)")
        charts.memory_parts(running, mem.container, mem.vm, facts.accelerator.upper())
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        lines = [f"{d.base_image} image {d.base_image_mib:.2f} MiB; each app's own layer "
                 f"{na(d.app_layer_mib, 'MiB', 3)}",
                 f"one VM: kernel {d.vm_kernel_mib:.1f} MiB + initramfs "
                 f"{d.vm_initramfs_mib:.1f} MiB",
                 f"{copies} apps: as containers {d.containers_total_mib:.2f} MiB, as VMs "
                 f"{d.vms_total_mib:.1f} MiB"] + _memory_lines(mem.container, mem.vm)
        return Shown(d, fig, lines)
    return _shown(lesson, make)


# ---------------------------------------------------------------- 02

def start_and_memory(n: int = 5, *, lesson) -> Shown:
    """N containers started, then one VM booted: time to ready, memory in parts, timeline."""
    def make(side, facts):
        r = bench.many_containers_vs_vm(lesson=lesson, n=n, side=side)
        accel = facts.accelerator.upper()
        fig, (t, mem, line) = charts.figure(f"{n} containers vs 1 VM", facts, ncols=3, width=4.8)
        charts.bars(t, [f"{n} containers\n(one after another)", f"1 VM boot ({accel})"],
                    [r.all_containers_s, r.vm_ready_s], "seconds", "time to ready")
        charts.memory_parts(mem, r.container_memory, r.vm_memory, accel)
        charts.timeline(line, {"host memory in use": (r.timeline_t_s, r.timeline_used_mib)},
                        "MiB", "the whole machine (psutil)")
        line.axvline(r.containers_done_t_s, color=charts.VM, ls="--", lw=1)
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        lines = [f"container start, median of {n}: {r.container_start_s.text('s')}; all {n}: "
                 f"{r.all_containers_s:.2f} s; VM ready: {r.vm_ready_s:.2f} s ({accel})"] + \
            _memory_lines(r.container_memory, r.vm_memory)
        return Shown(r, fig, lines, r.notes)
    return _shown(lesson, make)


# ---------------------------------------------------------------- 03

def build_vs_provision(runs: int = 1, also: dict | None = None, *, lesson) -> Shown:
    """`docker build` cold and cached vs making the VM's boot image and booting it, and what
    each then holds in memory, running, in parts. `also` adds seconds the lesson measured
    itself (e.g. {"container:\\nweb app, cold": 4.2})."""
    def make(side, facts):
        r = bench.build_vs_provision(lesson=lesson, runs=runs, side=side)
        mem = _memory_of_each(lesson, side)
        accel = facts.accelerator.upper()
        figures = {**(also or {}),
                   "container:\nbusybox, cold": r.build_cold_s.median,
                   "container:\nbusybox, cached": r.build_cached_s.median,
                   "VM: make\nboot image": r.vm_initramfs_build_s.median,
                   f"VM: first\nboot ({accel})": r.vm_first_boot_s.median}
        fig, (ax, running) = charts.figure("Build an image vs make and boot a VM", facts,
                                           ncols=2, width=6.4, height=5.2)
        charts.bars(ax, list(figures), list(figures.values()), "seconds (log scale)",
                    "Building the image (containers) vs making and booting it (VM)", log=True)
        charts.memory_parts(running, mem.container, mem.vm, accel)
        fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        lines = [f"{name.replace(chr(10), ' '):32} {s:7.3f} s" for name, s in figures.items()]
        return Shown(r, fig, lines + _memory_lines(mem.container, mem.vm))
    return _shown(lesson, make)


# ---------------------------------------------------------------- 04

def write_throughput(mib: int = 32, runs: int = 3, *, lesson) -> Shown:
    """MiB/s written (then fsync) into each place a container can write, and a VM's disk."""
    def make(side, facts):
        r = bench.write_throughput(lesson=lesson, mib=mib, runs=runs, side=side)
        fig, ax = charts.figure(f"Writing {mib} MiB, then fsync", facts, width=7.5)
        charts.summary_bars(ax, r.write_mib_s, "MiB/s (log scale)",
                            "containers (blue) vs VM (orange); whiskers: 95% interval",
                            colours=[charts.VM if "VM" in p else charts.CONTAINER
                                     for p in r.write_mib_s], log=True)
        lines = [f"{place:16} {s.text('MiB/s', 0)}" for place, s in r.write_mib_s.items()]
        return Shown(r, fig, lines, r.notes)
    return _shown(lesson, make)


# ---------------------------------------------------------------- 05

def stack(settle_s: float = 3, *, lesson) -> Shown:
    """Three services as containers vs as VMs: time to all ready, memory in parts, idle CPU."""
    def make(side, facts):
        r = bench.stack(lesson=lesson, settle_s=settle_s, side=side)
        accel = r.accelerator.upper()
        fig, (t, mem, cpu) = charts.figure("A 3-service stack: containers vs VMs", facts,
                                           ncols=3, width=4.6)
        charts.bars(t, ["3 containers", f"3 VMs ({accel})"],
                    [r.containers.ready_s, r.vms.ready_s], "seconds", "all three ready")
        def parts(who: str, memory) -> list:
            # unsplit is a fallback, not a part: listed only where it was needed
            return [(f"{who}: {charts.PART_LABELS[f.name]}", getattr(memory, f.name))
                    for f in fields(memory)
                    if f.name != "unsplit_mib" or memory.unsplit_mib is not None]
        charts.stacked(mem, {"3 containers": parts("containers", r.containers.memory_parts),
                             f"3 VMs ({accel})": parts("VMs", r.vms.memory_parts)},
                       "MiB, the three together", "memory in parts")
        charts.bars(cpu, ["3 containers", f"3 VMs ({accel})"],
                    [r.containers.cpu_percent_of_core, r.vms.cpu_percent_of_core],
                    "% of one core", "CPU while idle (container: cgroups and shims)")
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        lines = [f"{name:10} ready in {s.ready_s:.2f} s, {s.memory_mib:.0f} MiB, "
                 f"{s.cpu_percent_of_core:.1f}% of a core"
                 for name, s in (("containers", r.containers), ("VMs", r.vms))]
        return Shown(r, fig, lines, r.notes)
    return _shown(lesson, make)


# ---------------------------------------------------------------- 06

def recovery(runs: int = 3, *, lesson) -> Shown:
    """Seconds until the service answers again: the engine's restart vs a VM reboot."""
    def make(side, facts):
        r = bench.recovery(lesson=lesson, runs=runs, side=side)
        fig, ax = charts.figure("Back after a crash", facts)
        charts.summary_bars(ax, {"container\n(restart policy)": r.container_restart_s,
                                 f"VM reboot\n({r.accelerator.upper()})": r.vm_reboot_s},
                            "seconds (log scale)", "median, whiskers: 95% interval",
                            colours=[charts.CONTAINER, charts.VM], log=True)
        lines = [f"container restart {r.container_restart_s.text('s')}",
                 f"VM reboot         {r.vm_reboot_s.text('s')}"]
        return Shown(r, fig, lines, r.notes)
    return _shown(lesson, make)


# ---------------------------------------------------------------- 07

def container_vs_vm(quick: bool = True, *, lesson) -> Shown:
    """The full comparison on equal terms (quick counts in a notebook), with the reference run
    beside yours."""
    def make(side, facts):
        r = bench.container_vs_vm(quick=quick, side=side, lesson=lesson)
        return Shown(r, charts.dashboard(r), report(r).splitlines(), [])
    return _shown(lesson, make)


def published() -> "HTMLTable":
    """The published figures, each with its source's conditions (an escaped table)."""
    rows = [(f"{f['value']:g} {f['unit']}" + (" (at most)" if f.get("bound") == "upper" else ""),
             f["what"], f["conditions"], f["source"])
            for f in reference.published()["figures"]]
    return HTMLTable(html_table(["figure", "what", "measured under", "source"], rows))


class HTMLTable(str):
    """An escaped HTML table a cell shows as a table (and prints as its markup)."""

    def _repr_html_(self) -> str:
        return str(self)
