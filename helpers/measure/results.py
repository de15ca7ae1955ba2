"""The benchmark's named results, each field's unit in its name (`_s` seconds, `_mib` MiB,
`_cpu_s` CPU seconds, `_percent` %), and the arithmetic that joins their parts.

Memory is counted in disjoint parts per side. A part that does not exist on a side, an
accelerator or a platform is None (shown as "n/a"), never 0; a total adds the parts that exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from helpers.measure.machine import Machine
from helpers.measure.stats import Conditions, Summary

AGREEMENT_PERCENT = 15      # the parts must add up to within this of what they are checked against


def quiet(drop_total_mib: float, drift_mib: float) -> bool:
    """Did the rest of the machine hold still while we measured? (MemAvailable came back to
    within 10 MiB, or 10% of what the instances took.)"""
    return abs(drift_mib) <= max(10.0, 0.1 * abs(drop_total_mib))


def _added(*parts) -> float:
    """The parts that exist, added (None: no such part here)."""
    return sum(p for p in parts if p is not None)


@dataclass(frozen=True)
class Counts:
    """How many runs of each kind (the quick run's are small, and it says so)."""
    containers: int             # measured container starts
    vms: int                    # measured VM boots
    memory_containers: int      # containers running at once while memory is measured
    memory_vms: int             # VMs running at once while memory is measured
    warmup: int                 # unmeasured runs of each side first
    sampler_s: float = 0        # seconds the sampler's own cost is measured (0: not measured)


QUICK = Counts(containers=5, vms=2, memory_containers=3, memory_vms=1, warmup=1)
FULL = Counts(containers=20, vms=7, memory_containers=20, memory_vms=4, warmup=1, sampler_s=10)


@dataclass(frozen=True)
class Ladder:
    """Start-up from the floor up, seconds from launch to the workload's first output line."""
    process_s: Summary                  # the same workload as a plain process of this machine
    container_no_network_s: Summary     # `docker run --network none`
    container_bridge_s: Summary         # `docker run` on the default bridge
    vm_ready_s: Summary                 # QEMU start → the guest's ready marker
    vm_qemu_s: Summary | None           # ... of which QEMU's set-up and loading the kernel
    vm_kernel_s: Summary | None         # ... the kernel's boot (guest's /proc/uptime at init)
    vm_user_space_s: Summary | None     # ... init → ready marker


@dataclass(frozen=True)
class ContainerCpu:
    """One container start's CPU bill, create → the workload's end marker (CPU seconds).
    None where this machine cannot see that process (Docker Desktop)."""
    dockerd_cpu_s: Summary | None
    containerd_cpu_s: Summary | None
    shim_cpu_s: Summary | None
    runc_cpu_s: Summary | None          # the runc runs the shim started and reaped
    cgroup_cpu_s: Summary               # every process that ran in the container's cgroup
    total_cpu_s: Summary
    source: str


@dataclass(frozen=True)
class VmCpu:
    """One VM boot's CPU bill, QEMU start → the workload's end marker (CPU seconds)."""
    qemu_cpu_s: Summary                 # all QEMU's threads
    engine_cpu_s: Summary | None        # QEMU in a container: dockerd, containerd and its shim
    total_cpu_s: Summary
    source: str


@dataclass(frozen=True)
class ContainerMemory:
    """MiB per container with `n` running at once (medians), in disjoint parts."""
    n: int
    cgroup_mib: float                   # the container's cgroup use (as docker stats)
    shim_mib: float | None              # its containerd-shim-runc-v2 process (PSS)
    engine_share_mib: float | None      # dockerd + containerd PSS growth ÷ n
    kernel_mib: float | None            # kernel memory outside its cgroup ÷ n (not in PSS)
    total_mib: float                    # the parts above, added
    measured_pss_mib: float | None      # PSS of its processes + shim + engine share
    mem_available_drop_mib: float       # what the host lost (MemAvailable) ÷ n
    mem_available_drift_mib: float      # MemAvailable after removing them − before (others)
    source: str

    @classmethod
    def of_parts(cls, n: int, cgroup_mib: float, shim_mib: float | None,
                 engine_share_mib: float | None, kernel_mib: float | None,
                 processes_pss_mib: float | None, mem_available_drop_mib: float,
                 mem_available_drift_mib: float, source: str) -> "ContainerMemory":
        """The parts, their total, and the PSS they are checked against (its processes' PSS +
        shim + engine share: None unless all three were read)."""
        seen = (processes_pss_mib, shim_mib, engine_share_mib)
        return cls(n, cgroup_mib, shim_mib, engine_share_mib, kernel_mib,
                   _added(cgroup_mib, shim_mib, engine_share_mib, kernel_mib),
                   sum(seen) if None not in seen else None, mem_available_drop_mib,
                   mem_available_drift_mib, source)


@dataclass(frozen=True)
class VmMemoryParts:
    """MiB per VM with `n` running at once (medians), in disjoint parts."""
    n: int
    guest_ram_mib: float | None         # the guest's RAM QEMU has touched
    guest_reported_used_mib: float | None  # inside guest RAM: what the guest says it uses
    tcg_code_cache_mib: float | None    # None: no such part (KVM)
    qemu_heap_mib: float | None
    qemu_binary_mib: float | None
    unsplit_mib: float | None           # QEMU's memory where its map cannot be read
    shim_mib: float | None              # QEMU in a container: that container's shim
    engine_share_mib: float | None      # QEMU in a container: engine PSS growth ÷ n
    kernel_mib: float | None            # kernel memory for it ÷ n (page tables, stacks, slab)
    total_mib: float
    measured_pss_mib: float | None      # QEMU's PSS (+ shim + engine share)
    mem_available_drop_mib: float
    mem_available_drift_mib: float      # MemAvailable after stopping them − before (others)
    source: str

    @classmethod
    def of_parts(cls, n: int, guest_ram_mib: float | None,
                 guest_reported_used_mib: float | None, tcg_code_cache_mib: float | None,
                 qemu_heap_mib: float | None, qemu_binary_mib: float | None,
                 unsplit_mib: float | None, shim_mib: float | None,
                 engine_share_mib: float | None, kernel_mib: float | None,
                 qemu_pss_mib: float | None, mem_available_drop_mib: float,
                 mem_available_drift_mib: float, source: str) -> "VmMemoryParts":
        """The parts and their total: QEMU's four parts from its map (or, where the map is
        unreadable, its memory unsplit) + shim + engine share + kernel, as the chart stacks
        them. The PSS they are checked against is QEMU's whole PSS + shim + engine share. The
        guest's own reported use is inside guest RAM, not added."""
        measured = None if qemu_pss_mib is None else \
            _added(qemu_pss_mib, shim_mib, engine_share_mib)
        total = _added(guest_ram_mib, tcg_code_cache_mib, qemu_heap_mib, qemu_binary_mib,
                       unsplit_mib, shim_mib, engine_share_mib, kernel_mib)
        return cls(n, guest_ram_mib, guest_reported_used_mib, tcg_code_cache_mib, qemu_heap_mib,
                   qemu_binary_mib, unsplit_mib, shim_mib, engine_share_mib, kernel_mib, total,
                   measured, mem_available_drop_mib, mem_available_drift_mib, source)


@dataclass(frozen=True)
class MemoryOfEach:
    """One side's memory in parts beside the other's (lessons 01, 02 and 03)."""
    container: ContainerMemory
    vm: VmMemoryParts


@dataclass(frozen=True)
class Agreement:
    """Do the parts add up to what they are checked against?"""
    side: str
    against: str              # "measured PSS" or "MemAvailable drop"
    parts_mib: float
    measured_mib: float
    off_percent: float
    ok: bool


def agreements(c: ContainerMemory, v: VmMemoryParts) -> list[Agreement]:
    """Each side's parts against its measured PSS (all but the kernel part, which no PSS
    shows) and all of them against what the host lost (a drop of zero or less, where other
    programs freed memory meanwhile, counts as not agreeing)."""
    out = []
    for side, m in (("container", c), ("VM", v)):
        # PSS counts no kernel memory: that check leaves the kernel part out.
        for against, measured, parts in (
                ("measured PSS", m.measured_pss_mib, m.total_mib - (m.kernel_mib or 0.0)),
                ("MemAvailable drop", m.mem_available_drop_mib, m.total_mib)):
            if measured is None:
                continue
            off = 100.0 * abs(parts - measured) / measured if measured > 0 else float("inf")
            out.append(Agreement(side, against, round(parts, 2), round(measured, 2),
                                 round(off, 1), off <= AGREEMENT_PERCENT))
    return out


@dataclass(frozen=True)
class Density:
    """Idle instances that fit in a budget of host memory (MemAvailable drop)."""
    budget_mib: int
    containers: int
    containers_stopped_by: str
    vms: int
    vms_stopped_by: str
    ksm_on: bool | None


@dataclass(frozen=True)
class SamplerCost:
    hz: float
    rate_hz: float
    watched: int
    seconds: float
    overhead_percent_of_core: float


@dataclass(frozen=True)
class Headline:
    """Like with like: each ratio compares the same measure on both sides (nan: n/a)."""
    container_start_median_s: float     # create → first output, default bridge
    vm_ready_median_s: float            # QEMU start → ready marker
    start_ratio: float
    container_memory_mib: float         # all parts: cgroup + shim + engine share
    vm_memory_mib: float                # all parts: guest RAM + QEMU (+ shim + engine share)
    memory_ratio: float
    container_host_loss_mib: float      # MemAvailable drop per container
    vm_host_loss_mib: float             # MemAvailable drop per VM
    host_loss_ratio: float
    container_cpu_s: float              # one start's CPU bill
    vm_cpu_s: float
    cpu_ratio: float


def headline(ladder: Ladder, cc: ContainerCpu, vc: VmCpu, cm: ContainerMemory,
             vmem: VmMemoryParts) -> Headline:
    ratio = lambda a, b: a / b if b and b > 0 and a > 0 else float("nan")   # nan: n/a
    return Headline(ladder.container_bridge_s.median, ladder.vm_ready_s.median,
                    ratio(ladder.vm_ready_s.median, ladder.container_bridge_s.median),
                    cm.total_mib, vmem.total_mib, ratio(vmem.total_mib, cm.total_mib),
                    cm.mem_available_drop_mib, vmem.mem_available_drop_mib,
                    ratio(vmem.mem_available_drop_mib, cm.mem_available_drop_mib),
                    cc.total_cpu_s.median, vc.total_cpu_s.median,
                    ratio(vc.total_cpu_s.median, cc.total_cpu_s.median))


@dataclass
class ContainerVsVm:
    """Notebook 07's comparison and the instructors' run (see `python -m helpers.bench -h`)."""
    quick: bool
    counts: Counts
    machine: Machine
    conditions_before: Conditions
    conditions_after: Conditions
    startup: Ladder
    cpu_container: ContainerCpu
    cpu_vm: VmCpu
    memory_container: ContainerMemory
    memory_vm: VmMemoryParts
    agreements: list
    headline: Headline
    boot_ids: dict                      # host / process / container / vm -> boot ID
    uptimes_s: dict                     # the same, each one's /proc/uptime
    outputs: dict                       # process / container / vm -> the workload's lines
    notes: list = field(default_factory=list)
    density: Density | None = None
    sampler: SamplerCost | None = None
    published: dict = field(default_factory=dict)   # data/bench/published.json
    date: str = ""
    commit: str = ""

    @property
    def failures(self) -> list[str]:
        """Why the instructors' full run fails ([] when it passes)."""
        if self.quick:
            return []
        out = [f"{a.side} parts ({a.parts_mib:.1f} MiB) are {a.off_percent:.0f}% off the "
               f"{a.against} ({a.measured_mib:.1f} MiB)" for a in self.agreements if not a.ok]
        if self.sampler and self.sampler.overhead_percent_of_core > 1.0:
            out.append(f"the sampler cost {self.sampler.overhead_percent_of_core:.2f}% of a "
                       "core (more than 1%)")
        if self.sampler and self.sampler.watched < 2:
            out.append(f"the sampler's cost was measured watching {self.sampler.watched} "
                       "instance(s) throughout, not 2 (one vanished or was out of sight)")
        return out


# ---------------------------------------------------------------- each lesson's scenario

@dataclass(frozen=True)
class DiskFootprint:
    """Bytes on disk, MiB: N apps as containers of one base image vs as N VMs."""
    copies: int
    base_image: str
    base_image_mib: float
    app_layer_mib: float | None         # what each app adds on top of the base (None: no app)
    vm_kernel_mib: float
    vm_initramfs_mib: float
    containers_total_mib: float         # the base once + each app's own layer
    vms_total_mib: float                # each VM its own kernel and boot image


@dataclass(frozen=True)
class StartAndMemory:
    """N containers started one after another, then one VM: times, memory in parts, timeline."""
    n: int
    container_start_s: Summary
    all_containers_s: float
    vm_ready_s: float
    container_memory: ContainerMemory
    vm_memory: VmMemoryParts
    timeline_t_s: list
    timeline_used_mib: list             # the machine's memory in use (total − MemAvailable)
    timeline_cpu_percent: list          # the machine's CPU, all cores = 100 %
    containers_done_t_s: float
    notes: list


@dataclass(frozen=True)
class BuildVsProvision:
    build_cold_s: Summary
    build_cached_s: Summary
    vm_initramfs_build_s: Summary
    vm_first_boot_s: Summary
    vm_provision_total_s: float


@dataclass(frozen=True)
class WriteThroughput:
    mib_written: int
    write_mib_s: dict            # where → Summary of MiB/s
    accelerator: str
    notes: list


@dataclass(frozen=True)
class StackContainerMemory:
    """The three containers' memory together, MiB, in parts (None: n/a here)."""
    cgroup_mib: float
    shim_mib: float | None
    engine_share_mib: float | None


@dataclass(frozen=True)
class StackVmMemory:
    """The three VMs' memory together, MiB, in parts (None: n/a here)."""
    guest_ram_mib: float | None
    tcg_code_cache_mib: float | None
    qemu_heap_mib: float | None
    qemu_binary_mib: float | None
    unsplit_mib: float | None           # only where QEMU's map is unreadable
    shim_mib: float | None


@dataclass(frozen=True)
class StackSide:
    ready_s: float               # start of the first → ready marker of the last
    memory_mib: float            # all parts, the three together
    cpu_percent_of_core: float   # while they idle: containers their cgroups and shims, VMs QEMU
    memory_parts: StackContainerMemory | StackVmMemory


@dataclass(frozen=True)
class Stack:
    services: list
    containers: StackSide
    vms: StackSide
    accelerator: str
    notes: list


@dataclass(frozen=True)
class Recovery:
    container_restart_s: Summary
    vm_reboot_s: Summary
    accelerator: str
    notes: list
