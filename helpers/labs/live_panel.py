"""Notebook 07's live lab: the same workload in a container and in the VM at once, charted as
the samples arrive, then a table of what each saw (kernel, boot ID, uptime, start, memory)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from helpers.measure import charts
from helpers.measure.bench import said, script
from helpers.measure.guest import BootTimes, VmMemory
from helpers.course.images import ref
from helpers.measure.initramfs import DONE
from helpers.measure.machine import VmSide, machine, vm_side
from helpers.measure.sampler import (Cgroup, Sampler, container_memory_mib, container_workload, remove, visible_pid)
from helpers.course.ui import Panel, Progress, html_table, status_html


@dataclass(frozen=True)
class LiveResult:
    """One run of the panel: both sides' start, output and memory."""
    machine: object                 # machine.Machine
    container_start_s: float
    vm_ready_s: float
    vm_boot: BootTimes | None
    container_output: list
    vm_output: list
    container_memory_mib: float     # its cgroup (docker stats)
    vm_memory: VmMemory
    host_boot_id: str
    notes: list

    @property
    def ratio(self) -> float:
        """VM ready ÷ container start: what the prediction slider asks for."""
        return self.vm_ready_s / self.container_start_s


class LivePanel(Panel):
    """Press Run both (or call `panel.run()`); `panel.chart()` redraws the last run."""

    def __init__(self, hz: float = 5, *, lesson):
        import ipywidgets as w
        super().__init__()
        self.lesson, self.hz = lesson, hz
        self.result: LiveResult | None = None
        self.sampler: Sampler | None = None
        self.side: VmSide | None = None
        self.bar = Progress.make_widget("VM boot")
        self.picture = w.Image(format="png")
        self.table = w.HTML()
        self.button("run", lambda: self.thread(self._run), "Run both", button_style="primary",
                    icon="play")
        self.layout(self.buttons["run"], self.bar, self.picture, self.table)

    def chart(self):
        """Memory and CPU over time, container and VM, from the last run's samples."""
        accel = self.side.accel.name.upper() if self.side and self.side.accel else "?"
        names = {"container": "container (its cgroup)", "vm": f"VM ({accel}, QEMU)"}
        s = self.sampler
        memory = {names[k]: s.series(k, "memory_mib") for k in names} if s else {}
        cpu = {names[k]: s.series(k, "cpu_percent") for k in names} if s else {}
        return charts.live(memory, cpu, self.result.machine if self.result else {})

    def _draw(self) -> None:
        self.picture.value = charts.png(self.chart())

    def run(self) -> LiveResult | None:
        """Start both, sample until the VM has run the workload, then read each side's memory;
        a failure is this panel's red line (None is returned)."""
        return self.guarded(self._run)

    def _run(self) -> LiveResult | None:
        self.buttons["run"].disabled = True
        try:
            return self._both()
        finally:
            self.buttons["run"].disabled = False

    def _both(self) -> LiveResult | None:
        lesson = self.lesson
        self.side = side = self.side or vm_side(lesson=lesson)
        if side.unavailable:
            self.say(None, f"No VM on this machine: {side.unavailable}",
                     "notebook 00's preflight says what is missing")
            return None
        facts = machine(lesson=lesson, side=side)
        self.say(None, f"Running the container and the VM ({side.accel.label})...")
        self.sampler = sampler = Sampler(self.hz).start()
        container = guest = None
        bar = Progress(f"VM boot ({side.accel.name.upper()})", 1.0, widget=self.bar)
        try:
            run = container_workload(ref("busybox"), script(hold=True), DONE, keep=True, lesson=lesson)
            container = run.container
            pid = visible_pid(container)
            group = Cgroup.of(pid) if pid else None
            if group is not None:
                sampler.watch("container", cgroup=group)
            guest = side.vm(script(), lesson=lesson).start()
            if guest.pid:
                sampler.watch("vm", pid=guest.pid)
            last = 0.0
            while not guest.finished(0.25):
                elapsed = time.perf_counter() - guest.started_at
                bar.update(min(elapsed / guest.deadline_s, 0.95), caption=f"{elapsed:.1f} s")
                if elapsed - last > 1.0:
                    self._draw()
                    last = elapsed
                if elapsed > guest.deadline_s:
                    break   # wait_ready() below kills it and starts it once more
            ready = guest.wait_ready()
            if guest.pid:
                sampler.watch("vm", pid=guest.pid)   # a retry has a new QEMU
            guest.wait_done()
            time.sleep(1.0)  # a second of both idling, on the chart
            self.result = LiveResult(
                facts, run.start_s, ready, guest.boot_times(), run.lines, guest.output,
                group.memory_mib() if group else container_memory_mib(container),
                guest.memory(), open("/proc/sys/kernel/random/boot_id").read().strip(),
                list(guest.notes))
            bar.close(f"ready in {ready:.2f} s")
        except BaseException:
            bar.close("failed", ok=False)
            raise
        finally:
            sampler.stop()
            if container is not None:
                remove(container)
            if guest is not None:
                guest.stop()
        self._draw()
        self.table.value = self.table_html(self.result)
        notes = " ".join(self.result.notes)
        self.say("warn" if notes else True,
                 "Both ran the same workload." + (f" {notes}" if notes else ""))
        return self.result

    @staticmethod
    def table_html(r: LiveResult) -> str:
        """What each side saw, as an escaped table."""
        c, v = r.container_output, r.vm_output
        same = lambda x: f"{x[:8]}… " + ("(the host's)" if x == r.host_boot_id else "(its own)")
        accel = r.machine.accelerator.upper()
        boot = r.vm_boot
        split = (f" (QEMU {boot.qemu_s:.1f} + kernel {boot.kernel_s:.1f} + init "
                 f"{boot.user_space_s:.2f})" if boot else "")
        rows = [("kernel (uname -r)", said(c, "kernel"), said(v, "kernel")),
                ("boot ID (/proc/sys/kernel/random/boot_id)", same(said(c, "boot_id")),
                 same(said(v, "boot_id"))),
                ("uptime (s)", said(c, "uptime_s"), said(v, "uptime_s")),
                ("hostname", said(c, "hostname"), said(v, "hostname")),
                ("processes it sees", said(c, "processes"), said(v, "processes")),
                ("start to ready", f"{r.container_start_s:.3f} s", f"{r.vm_ready_s:.2f} s{split}"),
                ("memory", f"{r.container_memory_mib:.1f} MiB (its cgroup)",
                 f"{r.vm_memory.total_mib:.0f} MiB ({r.vm_memory.source})")]
        return html_table(["", "container", f"VM ({accel})"], rows) + status_html(
            None, f"Host boot ID {r.host_boot_id[:8]}…: the container shares the host's kernel "
                  "(same boot, same uptime); the VM booted a kernel of its own seconds ago.")
