"""Every figure's context: this machine (CPU, cores, memory, OS, kernel), its engine, and the VM
side (the kit and accelerator, found once and passed down to every scenario)."""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

from helpers.measure import vmkit
from helpers.measure.guest import VM
from helpers.measure.sampler import engine_processes


class VmSide(NamedTuple):
    """The VM's kit and accelerator, found once and passed down; `unavailable` says why not."""
    kit: vmkit.VmKit | None
    accel: vmkit.Accelerator | None
    unavailable: str = ""

    def vm(self, workload: str = "", *, lesson, **kw) -> VM:
        if self.unavailable:
            raise vmkit.VmUnavailable(self.unavailable)
        return VM(workload, lesson=lesson, kit=self.kit, accel=self.accel.name, **kw)


def vm_side(*, lesson) -> VmSide:
    try:
        k = vmkit.kit(lesson=lesson)
        return VmSide(k, vmkit.accelerator(k, lesson=lesson))
    except vmkit.VmUnavailable as exc:
        return VmSide(None, None, str(exc))


@dataclass(frozen=True)
class Machine:
    """Every figure's context: this machine, its engine, and how the VM ran."""
    cpu_model: str
    cores: int
    memory_gib: float
    os: str
    host_kernel: str
    engine_version: str
    image_store: str
    python: str
    accelerator: str            # "kvm", "tcg", or "none" (no VM here)
    accelerator_reason: str
    qemu_version: str
    guest_kernel: str
    qemu_ran: str               # "host", "image" or "none"
    qemu_image: str
    ksm_on: bool | None         # kernel same-page merging (None: not on this system)
    engine_visible: bool        # dockerd and containerd readable here (not Docker Desktop)


def ksm_on() -> bool | None:
    try:
        return Path("/sys/kernel/mm/ksm/run").read_text().strip() == "1"
    except OSError:
        return None


def host_boot() -> tuple[str, str]:
    """(boot ID, uptime in seconds as written) of this machine's kernel."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return boot_id, Path("/proc/uptime").read_text().split()[0]


def machine(*, lesson, side: VmSide | None = None) -> Machine:
    """CPU model, cores, memory, OS, engine and the VM's accelerator: every figure's context."""
    client = lesson.client
    side = side or vm_side(lesson=lesson)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in
                   Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    os_name = platform.platform()
    try:
        os_name = next(l.split("=", 1)[1].strip('"') for l in
                       Path("/etc/os-release").read_text().splitlines()
                       if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    info = client.info()
    store = "containerd" if any("containerd.snapshotter" in str(pair) for pair in
                                info.get("DriverStatus") or []) else "classic"
    k, a = side.kit, side.accel
    return Machine(cpu, psutil.cpu_count(logical=True),
                   round(psutil.virtual_memory().total / 2**30, 1), os_name, platform.release(),
                   client.version().get("Version", "?"), store, platform.python_version(),
                   a.name if a else "none", a.reason if a else side.unavailable,
                   k.qemu_version if k else "", k.kernel_version if k else "",
                   k.where if k else "none", k.image if k else "", ksm_on(),
                   engine_processes() is not None)
