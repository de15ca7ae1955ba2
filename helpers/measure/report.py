"""The benchmark's writers: the text report the instructors' command prints, the JSON (its keys
documented in `KEYS`, which `python -m helpers.bench --help` shows), a CSV of every run with
its load and steal, and the PNG dashboard (drawn by `charts`)."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path

from helpers.measure.results import (AGREEMENT_PERCENT, ContainerMemory, ContainerVsVm, VmMemoryParts, quiet)
from helpers.measure.stats import Summary


def plain(obj):
    """Named results as JSON-ready values: dataclasses and named tuples become objects."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(result: ContainerVsVm) -> dict:
    """The instructors' JSON (keys documented in `python -m helpers.bench --help`)."""
    data = plain(result)
    data["failures"] = result.failures
    data["schema"] = 2
    return data


def write_csv(path: Path, header: list, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_outputs(result: ContainerVsVm, json_path: Path, folder: Path | None = None) -> list:
    """The JSON, a CSV of every run (with its load and steal) and the PNG dashboard."""
    from helpers.measure import charts   # matplotlib loads only when a dashboard is drawn
    json_path = Path(json_path)
    folder = Path(folder or json_path.parent)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(to_json(result), indent=2))
    rows = []
    for name in ("process_s", "container_no_network_s", "container_bridge_s", "vm_ready_s"):
        s: Summary = getattr(result.startup, name)
        rows += [("startup", name, v, l, st)
                 for v, l, st in zip(s.samples, s.load_1m, s.steal_percent)]
    for side, bill in (("container", result.cpu_container), ("vm", result.cpu_vm)):
        s = bill.total_cpu_s
        rows += [(f"cpu {side}", "total_cpu_s", v, l, st)
                 for v, l, st in zip(s.samples, s.load_1m, s.steal_percent)]
    written = [json_path, write_csv(folder / "runs.csv",
                                    ["what", "figure", "value", "load_1m", "steal_percent"],
                                    rows)]
    written.append(charts.save(charts.dashboard(result), folder / "dashboard.png"))
    return written


def na(value, unit: str = "", digits: int = 1) -> str:
    """A figure, or 'n/a' where it does not exist here (never 0)."""
    return "n/a" if value is None else f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def _drift(m) -> str:
    """A warning where other programs moved the machine's memory while we measured."""
    if quiet(m.mem_available_drop_mib * m.n, m.mem_available_drift_mib):
        return ""
    return (f" (but MemAvailable moved {m.mem_available_drift_mib:+.0f} MiB meanwhile: other "
            "programs started or stopped, so this drop is not the instances' alone)")


def container_memory_text(cm: ContainerMemory) -> str:
    """'5.4 = cgroup 0.33 + shim 4.8 + engine share 0.0 + kernel 0.4; host lost 1.0' (MiB)."""
    return (f"{cm.total_mib:.1f} = cgroup {cm.cgroup_mib:.2f} + shim {na(cm.shim_mib)} + "
            f"engine share {na(cm.engine_share_mib)} + kernel {na(cm.kernel_mib)}; host lost "
            f"{cm.mem_available_drop_mib:.1f}{_drift(cm)}")


def vm_memory_text(vm: VmMemoryParts) -> str:
    """'165 = guest RAM 98.0 (guest says 20.6 used) + TCG code 38.0 + ...; host lost 148' (MiB)."""
    return (f"{vm.total_mib:.1f} = guest RAM {na(vm.guest_ram_mib)} (guest says "
            f"{na(vm.guest_reported_used_mib)} used) + TCG code {na(vm.tcg_code_cache_mib)} + "
            f"heap {na(vm.qemu_heap_mib)} + binary {na(vm.qemu_binary_mib)} + shim "
            f"{na(vm.shim_mib)} + engine share {na(vm.engine_share_mib)} + kernel "
            f"{na(vm.kernel_mib)}"
            + (f" + unsplit {vm.unsplit_mib:.1f}" if vm.unsplit_mib else "")
            + f"; host lost {vm.mem_available_drop_mib:.1f}{_drift(vm)}")


def report(result: ContainerVsVm) -> str:
    """The figures, one a line, as the instructors' command prints them."""
    m, L, h = result.machine, result.startup, result.headline
    cm, vm, cc, vc = result.memory_container, result.memory_vm, result.cpu_container, \
        result.cpu_vm
    lines = [f"run          {'quick' if result.quick else 'full'}: {plain(result.counts)}",
             f"machine      {m.cpu_model}, {m.cores} cores; Docker {m.engine_version} "
             f"({m.image_store} store); load {result.conditions_before.load_1m} → "
             f"{result.conditions_after.load_1m}, steal {result.conditions_after.steal_percent}%",
             f"accelerator  {m.accelerator} ({m.accelerator_reason}); QEMU {m.qemu_version} "
             f"{'in ' + m.qemu_image if m.qemu_ran == 'image' else 'on this machine'}",
             "start-up, median [95% interval]:",
             f"  process                {L.process_s.text('s')}",
             f"  container, no network  {L.container_no_network_s.text('s')}",
             f"  container, bridge      {L.container_bridge_s.text('s')}",
             f"  VM to ready            {L.vm_ready_s.text('s')}"]
    if L.vm_kernel_s:
        lines.append(f"    QEMU {L.vm_qemu_s.median:.2f} s + kernel {L.vm_kernel_s.median:.2f} s "
                     f"+ user space {L.vm_user_space_s.median:.2f} s")
    lines += ["CPU bill of one start (CPU s, median):",
              f"  container  total {cc.total_cpu_s.text('s')}: dockerd "
              f"{na(cc.dockerd_cpu_s and cc.dockerd_cpu_s.median, 's', 3)}, containerd "
              f"{na(cc.containerd_cpu_s and cc.containerd_cpu_s.median, 's', 3)}, shim "
              f"{na(cc.shim_cpu_s and cc.shim_cpu_s.median, 's', 3)}, runc "
              f"{na(cc.runc_cpu_s and cc.runc_cpu_s.median, 's', 3)}, cgroup "
              f"{cc.cgroup_cpu_s.median:.3f} s",
              f"  VM         total {vc.total_cpu_s.text('s')}: QEMU {vc.qemu_cpu_s.median:.2f} s,"
              f" engine {na(vc.engine_cpu_s and vc.engine_cpu_s.median, 's', 3)}",
              f"memory per instance (MiB, {cm.n} containers / {vm.n} VMs running):",
              f"  container  {container_memory_text(cm)}",
              f"  VM         {vm_memory_text(vm)}"]
    for a in result.agreements:
        lines.append(f"  check      {a.side} parts {a.parts_mib:.1f} vs {a.against} "
                     f"{a.measured_mib:.1f}: {a.off_percent:.0f}% off "
                     f"{'ok' if a.ok else 'TOO FAR'} (limit {AGREEMENT_PERCENT}%)")
    x = lambda r: "n/a" if not math.isfinite(r) else f"{r:.0f}x"
    lines += [f"headline     VM ÷ container: start {x(h.start_ratio)}, memory (all parts) "
              f"{x(h.memory_ratio)}, host memory lost {x(h.host_loss_ratio)}, CPU bill "
              f"{x(h.cpu_ratio)}",
              f"boot IDs     host {result.boot_ids['host'][:8]}, container "
              f"{result.boot_ids['container'][:8]}, VM {result.boot_ids['vm'][:8]}"]
    if result.density:
        d = result.density
        lines.append(f"density      in {d.budget_mib} MiB: {d.containers} containers (stopped by "
                     f"{d.containers_stopped_by}), {d.vms} VMs (stopped by {d.vms_stopped_by});"
                     f" KSM {'on' if d.ksm_on else 'off' if d.ksm_on is False else 'n/a'}")
    if result.sampler:
        s = result.sampler
        lines.append(f"sampler      {s.overhead_percent_of_core:.2f}% of one core at {s.hz:.0f} Hz "
                     f"({s.rate_hz:.1f} Hz achieved) watching {s.watched}")
    lines += [f"note         {n}" for n in result.notes]
    lines += [f"FAILED       {f}" for f in result.failures]
    return "\n".join(lines)


KEYS = """
JSON keys (units in the names: _s seconds, _mib MiB, _percent %, _cpu_s CPU seconds;
a Summary is {n, median, low_95, high_95, min, max, samples, load_1m, steal_percent}:
median and bootstrap 95% interval of the runs, and each run's load average and steal):
  schema (2), quick, counts, date, commit, failures (why a full run failed; [] = passed)
  machine              cpu_model, cores, memory_gib, os, host_kernel, engine_version,
                       image_store, accelerator, accelerator_reason, qemu_version, guest_kernel,
                       qemu_ran, qemu_image, ksm_on, engine_visible
  conditions_before, conditions_after   load_1m, steal_percent around the whole run
  startup              the ladder, Summaries: process_s, container_no_network_s,
                       container_bridge_s, vm_ready_s, vm_qemu_s, vm_kernel_s, vm_user_space_s
  cpu_container        one start's bill, Summaries: dockerd_cpu_s, containerd_cpu_s,
                       shim_cpu_s, runc_cpu_s, cgroup_cpu_s, total_cpu_s; source
  cpu_vm               qemu_cpu_s, engine_cpu_s, total_cpu_s; source
  memory_container     per container, n running: cgroup_mib, shim_mib, engine_share_mib,
                       kernel_mib (kernel memory outside its cgroup: slab, page tables, kernel
                       stacks, from /proc/meminfo; no PSS shows it), total_mib, measured_pss_mib, mem_available_drop_mib,
                       mem_available_drift_mib (how far other programs moved it), source
  memory_vm            per VM: guest_ram_mib, guest_reported_used_mib (inside guest RAM,
                       not added), tcg_code_cache_mib, qemu_heap_mib, qemu_binary_mib,
                       unsplit_mib, shim_mib, engine_share_mib, kernel_mib, total_mib,
                       measured_pss_mib,
                       mem_available_drop_mib, mem_available_drift_mib, source
  agreements           [{side, against, parts_mib, measured_mib, off_percent, ok}]: the parts
                       (less kernel_mib) against the measured PSS, and all of them against
                       the MemAvailable drop (full run: within 15%)
  headline             container_start_median_s, vm_ready_median_s, start_ratio,
                       container_memory_mib, vm_memory_mib, memory_ratio,
                       container_host_loss_mib, vm_host_loss_mib, host_loss_ratio,
                       container_cpu_s, vm_cpu_s, cpu_ratio
  density              (full run) budget_mib, containers, containers_stopped_by, vms,
                       vms_stopped_by, ksm_on
  sampler              hz, rate_hz, watched, seconds, overhead_percent_of_core
  boot_ids, uptimes_s  host / process / container / vm
  outputs, notes, published
A part that does not exist on this side, accelerator or platform is null ("n/a"), never 0.
"""
