"""Container vs VM, measured on this machine: one benchmark per notebook topic.

Every function runs the real thing (containers through the engine, a QEMU guest booting a real
kernel with the same busybox user space), repeats it, and returns plain dicts of figures whose
keys carry their units (`_s`, `_mib`, `_mib_s`, `_percent`). Charts: `helpers.charts`.

Instructors: python -m helpers.bench --quick --json results/bench.json
             (writes the JSON, a CSV per chart and the PNG charts beside it)
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import psutil

from . import vm as vmlib
from .engine import connect
from .images import DATA, ref
from .labels import labels
from .measure import (MIB, Sampler, cli_run_seconds, container_cpu_seconds,
                      container_memory_mib, container_pid, container_workload, first_output,
                      memory_mib_from_stats, summary)
from .ui import Progress

NN = 7  # what the benchmark creates carries notebook 07's label unless a notebook passes its own
WORKLOAD = ('echo "kernel: $(uname -r)"; echo "hostname: $(hostname)"; '
            'echo "processes: $(ls -d /proc/[0-9]* | wc -l)"; '
            'dd if=/dev/zero bs=1M count=8 2>/dev/null | md5sum >/dev/null; echo "work: done"')


def script(body: str = WORKLOAD, hold: bool = False) -> str:
    """The workload both sides run: the ready marker first, then the body, then the end marker.

    With `hold`, the container sleeps afterwards (the VM's init always stays up) so that its
    memory can be read while it is alive.
    """
    text = f"echo {vmlib.READY}; {body}; echo {vmlib.DONE}"
    return text + ("; exec sleep 3600" if hold else "")


# ---------------------------------------------------------------- the machine

def machine(client: docker.DockerClient | None = None) -> dict:
    """CPU model, cores, memory, OS, engine version and the VM's accelerator: every figure's context."""
    client = client or connect()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        os_name = next(l.split("=", 1)[1].strip('"') for l in
                       Path("/etc/os-release").read_text().splitlines()
                       if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    facts = {"cpu_model": cpu, "cores": psutil.cpu_count(logical=True),
             "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "os": os_name,
             "host_kernel": platform.release(),
             "engine_version": client.version().get("Version", "?"),
             "python": platform.python_version()}
    try:
        k, accel = vmlib.kit(), vmlib.accelerator()
        facts.update(accelerator=accel.name, accelerator_reason=accel.reason,
                     qemu_version=k.qemu_version, guest_kernel=k.kernel_version,
                     qemu_ran=k.where, qemu_image=k.image)
    except vmlib.VmUnavailable as exc:
        facts.update(accelerator="none", accelerator_reason=str(exc), qemu_version="",
                     guest_kernel="", qemu_ran="none", qemu_image="")
    return facts


def _bar(progress, description: str, total: float):
    return progress if progress is not None else Progress(description, total)


def _close(bar, own: bool, caption: str = "done") -> None:
    if own:
        bar.close(caption)


# ---------------------------------------------------------------- 07: the same workload, both sides

def container_side(client: docker.DockerClient, runs: int = 5, warmup: int = 1, nn: int = NN,
                   image: str | None = None, progress=None) -> dict:
    """Start-up (create+start → first output), work time, memory and CPU of the workload."""
    image = image or ref("busybox")
    bar, own = _bar(progress, "containers", warmup + runs + 1), progress is None
    starts, works, lines = [], [], []
    for i in range(warmup + runs):
        run = container_workload(client, image, script(), nn, vmlib.DONE)
        if i >= warmup:
            starts.append(run.start_seconds)
            works.append(run.work_seconds)
        lines = run.lines
        bar.advance(1, caption=f"container {i + 1}/{warmup + runs}: {run.start_seconds:.3f} s")
    held = container_workload(client, image, script(hold=True), nn, vmlib.DONE, keep=True)
    try:
        stats = held.container.stats(stream=False, one_shot=True)
        pid = container_pid(held.container)
        rss = 0.0
        if pid:
            proc = psutil.Process(pid)
            rss = sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)) / MIB
        cpu_s = stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        memory = memory_mib_from_stats(stats)
    finally:
        held.container.remove(force=True)
    bar.advance(1, caption="container memory read")
    _close(bar, own)
    return {"start_s": summary(starts), "work_s": summary(works), "memory_mib": memory,
            "rss_mib": rss, "cpu_s": cpu_s, "output": lines, "image": image}


def vm_side(runs: int = 3, warmup: int = 0, progress=None, sampler: Sampler | None = None) -> dict:
    """Boot to ready, work time, QEMU's RSS and PSS, CPU time: the same workload in the VM."""
    accel = vmlib.accelerator().name
    bar, own = _bar(progress, f"VM boots ({accel})", warmup + runs), progress is None
    boots, works, rss, pss, cpu, lines = [], [], [], [], [], []
    for i in range(warmup + runs):
        with vmlib.VM(script(), accel=accel) as guest:
            if sampler is not None:
                sampler.watch("vm", guest.pid)
            boot = guest.wait_ready()
            work = guest.wait_done() - boot
            info = guest.process().memory_full_info()
            times = guest.process().cpu_times()
            lines = guest.output
            if sampler is not None:
                sampler.unwatch("vm")
        if i >= warmup:
            boots.append(boot)
            works.append(work)
            rss.append(info.rss / MIB)
            pss.append(info.pss / MIB)
            cpu.append(times.user + times.system)
        bar.advance(1, caption=f"VM {i + 1}/{warmup + runs}: ready in {boot:.2f} s")
    _close(bar, own)
    return {"boot_s": summary(boots), "work_s": summary(works), "rss_mib": summary(rss),
            "pss_mib": summary(pss), "cpu_s": summary(cpu), "output": lines,
            "accelerator": accel, "qemu_ran": vmlib.kit().where,
            "guest_memory_mib": vmlib.MEMORY_MIB}


def container_vs_vm(client: docker.DockerClient | None = None, runs: int = 5, vm_runs: int = 3,
                    warmup: int = 1, nn: int = NN) -> dict:
    """The notebook 07 comparison: the same workload as a container and as a VM."""
    client = client or connect()
    facts = machine(client)
    with Progress("container vs VM", warmup + runs + 1 + vm_runs) as bar:
        c = container_side(client, runs, warmup, nn, progress=bar)
        v = vm_side(vm_runs, 0, progress=bar)
    return {"machine": facts, "container": c, "vm": v, **headline(c, v, facts)}


def headline(c: dict, v: dict, facts: dict) -> dict:
    """The flat figures the instructors' JSON promises."""
    return {"accelerator": facts.get("accelerator"), "qemu_ran": facts.get("qemu_ran"),
            "container_start_median_s": c["start_s"]["median"],
            "vm_boot_median_s": v["boot_s"]["median"],
            "container_memory_mib": c["memory_mib"],
            "vm_memory_mib": v["pss_mib"]["median"],
            "vm_rss_mib": v["rss_mib"]["median"],
            "boot_ratio": v["boot_s"]["median"] / c["start_s"]["median"],
            "memory_ratio": v["pss_mib"]["median"] / max(c["memory_mib"], 1e-3)}


# ---------------------------------------------------------------- the benchmark's own checks

def sampler_overhead(hz: float = 10, seconds: float = 5) -> dict:
    """The sampler's own CPU cost while it watches this process, in % of one core."""
    with Sampler(hz) as s:
        s.watch("self", os.getpid())
        time.sleep(seconds)
    return {"hz": hz, "rate_hz": s.rate_hz, "samples": len(s.samples),
            "overhead_percent_of_core": s.overhead_percent}


def sdk_vs_cli(client: docker.DockerClient | None = None, runs: int = 5, warmup: int = 1,
               nn: int = NN) -> dict:
    """Start to first output: the SDK (attach, start) against `docker run --rm`, interleaved."""
    client = client or connect()
    image, sdk, cli = ref("busybox"), [], []
    for i in range(warmup + runs):
        s = first_output(client, image, "echo ready", nn)[0]
        c = cli_run_seconds(image, nn, "echo ready")
        if i >= warmup:
            sdk.append(s)
            cli.append(c)
    sdk_s, cli_s = summary(sdk), summary(cli)
    return {"sdk_s": sdk_s, "cli_s": cli_s, "sdk_over_cli": sdk_s["median"] / cli_s["median"]}


def vm_vs_bare_qemu(runs: int = 3) -> dict:
    """The course's VM against a bare `qemu-system-x86_64 -M microvm -kernel -initrd` boot."""
    accel = vmlib.accelerator().name
    k = vmlib.kit()
    course, bare = [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        course.append(vmlib.boot_seconds(accel))
        bare.append(vmlib.boot_seconds(accel, argv=vmlib.bare_command(k, accel)))
    c, b = summary(course), summary(bare)
    return {"course_s": c, "bare_s": b, "course_over_bare": c["median"] / b["median"],
            "bare_command": " ".join(vmlib.bare_command(k, accel))}


# ---------------------------------------------------------------- 02: N containers vs one VM

def many_containers_vs_vm(client: docker.DockerClient | None = None, n: int = 5,
                          nn: int = NN, hz: float = 10) -> dict:
    """Start N containers (each kept running), then boot one VM; start times, memory, timeline."""
    client = client or connect()
    image, running, starts = ref("busybox"), [], []
    with Sampler(hz) as sampler, Progress(f"{n} containers, then 1 VM", n + 1) as bar:
        began = time.perf_counter()
        try:
            for i in range(n):
                run = container_workload(client, image, script(hold=True), nn, vmlib.DONE,
                                         keep=True)
                running.append(run.container)
                starts.append(run.start_seconds)
                bar.advance(1, caption=f"container {i + 1}: {run.start_seconds:.3f} s")
            all_containers_s = time.perf_counter() - began
            memory = [container_memory_mib(c) for c in running]
        finally:
            for c in running:
                c.remove(force=True)
        marks = {"containers_done_t": time.perf_counter() - began}
        with vmlib.VM(script(), nn=nn) as guest:
            sampler.watch("vm", guest.pid)
            boot = guest.wait_ready()
            guest.wait_done()
            info = guest.process().memory_full_info()
        bar.advance(1, caption=f"VM ready in {boot:.2f} s")
    t0 = sampler.samples[0].t if sampler.samples else 0
    return {"n": n, "container_start_s": summary(starts), "all_containers_s": all_containers_s,
            "container_memory_mib": summary(memory), "containers_total_memory_mib": sum(memory),
            "vm_boot_s": boot, "vm_pss_mib": info.pss / MIB, "vm_rss_mib": info.rss / MIB,
            "timeline": {"t_s": [s.t - t0 for s in sampler.samples],
                         "machine_used_mib": [s.machine_used_mib for s in sampler.samples],
                         "machine_cpu_percent": [s.machine_cpu_percent for s in sampler.samples]},
            **marks}


# ---------------------------------------------------------------- 01: disk footprint

def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB


def disk_footprint(client: docker.DockerClient | None = None, copies: int = 10) -> dict:
    """Bytes on disk: images and their shared layers vs the VM's kernel, initramfs and disk."""
    client = client or connect()
    images = {}
    for name in ("busybox", "python"):
        try:
            img = client.images.get(ref(name))
        except docker.errors.ImageNotFound:
            continue
        images[ref(name)] = {"size_mib": img.attrs["Size"] / MIB,
                             "layers": len(img.attrs["RootFS"].get("Layers", []))}
    k = vmlib.kit()
    kernel_mib = k.kernel_bytes / MIB
    initrd_mib = k.initrd.stat().st_size / MIB
    modules = Path("/lib/modules", k.kernel_version)
    busybox = images.get(ref("busybox"), {}).get("size_mib", 0.0)
    return {"images": images, "vm_kernel_mib": kernel_mib, "vm_initramfs_mib": initrd_mib,
            "vm_modules_mib": _dir_mib(modules) if modules.is_dir() else 0.0,
            "copies": copies,
            # N containers share one image; each VM boots from its own copy of its disk
            "containers_total_mib": busybox,
            "vms_total_mib": copies * (kernel_mib + initrd_mib)}


# ---------------------------------------------------------------- 03: build vs provision

def build_vs_provision(client: docker.DockerClient | None = None, runs: int = 3,
                       nn: int = NN) -> dict:
    """`docker build` cold and cached vs making the VM's initramfs from nothing and booting it."""
    client = client or connect()
    dockerfile = (f"FROM {ref('busybox')}\nRUN echo built > /built && ls / > /listing\n"
                  f'CMD ["sh", "-c", "echo {vmlib.READY}"]\n')
    tag = f"dockercourse-bench:{int(nn):02d}"
    cold, cached, provision, boot = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="dockercourse-build-") as tmp, \
            Progress("build vs provision", 3 * runs) as bar:
        Path(tmp, "Dockerfile").write_text(dockerfile)
        for i in range(runs):
            for store, nocache in ((cold, True), (cached, False)):
                t = time.perf_counter()
                client.images.build(path=tmp, tag=tag, nocache=nocache, labels=labels(nn),
                                    rm=True)
                store.append(time.perf_counter() - t)
                bar.advance(1)
            t = time.perf_counter()
            initrd = vmlib.build_initramfs(directory=Path(tmp, f"vm{i}"))
            provision.append(time.perf_counter() - t)
            with vmlib.VM(initrd=initrd, nn=nn) as guest:
                boot.append(guest.wait_ready())
            bar.advance(1, caption=f"VM image made in {provision[-1]:.2f} s")
    try:
        client.images.remove(tag, force=True)
    except docker.errors.APIError:
        pass
    return {"build_cold_s": summary(cold), "build_cached_s": summary(cached),
            "vm_initramfs_build_s": summary(provision), "vm_first_boot_s": summary(boot),
            "vm_provision_total_s": statistics.median(provision) + statistics.median(boot)}


# ---------------------------------------------------------------- 04: write throughput

def write_throughput(client: docker.DockerClient | None = None, mib: int = 32, runs: int = 3,
                     nn: int = NN) -> dict:
    """MiB/s of `dd ... conv=fsync` into the container layer, a volume, a bind mount, a tmpfs
    and a VM disk.

    Timed on the host from the line printed just before `dd` to the one just after (busybox's
    dd does not print its own speed), the same way on both sides.
    """
    client = client or connect()
    image = ref("busybox")
    dd = f"dd if=/dev/zero of={{path}} bs=1M count={mib} conv=fsync 2>/dev/null"
    volume = client.volumes.create(labels=labels(nn))
    bind = tempfile.mkdtemp(prefix="dockercourse-bind-")
    targets = {"container layer": ("/tmp/out", {}),
               "named volume": ("/vol/out", {"volumes": {volume.name: {"bind": "/vol"}}}),
               "bind mount": ("/bind/out", {"volumes": {bind: {"bind": "/bind"}}}),
               # memory only: fsync has no disk to wait for, so this is the page cache's part
               "tmpfs": ("/mem/out", {"tmpfs": {"/mem": f"size={mib + 8}m"}})}
    results = {}
    with Progress("write throughput", (len(targets) + 1) * runs) as bar:
        try:
            for name, (path, extra) in targets.items():
                speeds = []
                for _ in range(runs):
                    run = container_workload(client, image, script(dd.format(path=path)), nn,
                                             vmlib.DONE, **extra)
                    speeds.append(mib / run.work_seconds)
                    bar.advance(1, caption=f"{name}: {speeds[-1]:.0f} MiB/s")
                results[name] = summary(speeds)
            disk = vmlib.disk_image(mib + 16)
            try:
                speeds = []
                for _ in range(runs):
                    with vmlib.VM(script(dd.format(path="/dev/vda")), disk=disk,
                                  nn=nn) as guest:
                        seconds = guest.wait_done() - guest.wait_ready()
                    speeds.append(mib / seconds)
                    bar.advance(1, caption=f"VM virtual disk: {speeds[-1]:.0f} MiB/s")
                results["VM virtual disk"] = summary(speeds)
            finally:
                disk.unlink(missing_ok=True)
        finally:
            volume.remove(force=True)
            shutil.rmtree(bind, ignore_errors=True)
    return {"mib_written": mib, "write_mib_s": results,
            "accelerator": vmlib.accelerator().name}


# ---------------------------------------------------------------- 05: a three-service stack

STACK = {"web": "httpd -f -p 8080 -h /www",
         "worker": "while true; do echo tick > /tmp/tick; sleep 1; done",
         "store": "mkdir -p /data; while true; do sleep 5; done"}


def stack(client: docker.DockerClient | None = None, settle_s: float = 3, nn: int = NN) -> dict:
    """Three services as three containers vs as three VMs: time to all ready, memory, CPU."""
    client = client or connect()
    image, containers = ref("busybox"), []
    network = client.networks.create(f"dockercourse-bench-{int(nn):02d}", labels=labels(nn))
    out = {}
    with Progress("3-service stack", 2) as bar:
        try:
            began = time.perf_counter()
            for name, cmd in STACK.items():
                run = container_workload(client, image, f"echo {vmlib.READY}; echo {vmlib.DONE};"
                                         f" {cmd}", nn, vmlib.DONE, keep=True,
                                         network=network.name, hostname=name)
                containers.append(run.container)
            up = time.perf_counter() - began
            cpu0 = {c.id: container_cpu_seconds(c) for c in containers}
            time.sleep(settle_s)
            cpu_s = sum(container_cpu_seconds(c) - cpu0[c.id] for c in containers)
            out["containers"] = {"ready_s": up,
                                 "memory_mib": sum(container_memory_mib(c) for c in containers),
                                 "cpu_percent_of_core": 100 * cpu_s / (settle_s + 1)}
        finally:
            for c in containers:
                c.remove(force=True)
            network.remove()
        bar.advance(1, caption=f"containers up in {out['containers']['ready_s']:.2f} s")
        began = time.perf_counter()
        guests = [vmlib.VM(f"echo {vmlib.READY}; ({cmd}) &", nn=nn).start()
                  for cmd in STACK.values()]
        try:
            for g in guests:
                g.wait_ready()
            up = time.perf_counter() - began
            procs = [g.process() for g in guests]
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
            time.sleep(settle_s)
            cpu_s = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
            out["vms"] = {"ready_s": up,
                          "memory_mib": sum(p.memory_full_info().pss for p in procs) / MIB,
                          "cpu_percent_of_core": 100 * cpu_s / settle_s}
        finally:
            for g in guests:
                g.stop()
        bar.advance(1, caption=f"VMs up in {out['vms']['ready_s']:.2f} s")
    out["services"] = list(STACK)
    out["accelerator"] = vmlib.accelerator().name
    return out


# ---------------------------------------------------------------- 06: recovery after a failure

def recovery(client: docker.DockerClient | None = None, runs: int = 3, nn: int = NN) -> dict:
    """Kill the service; seconds until it answers again: engine restart policy vs VM reboot."""
    client = client or connect()
    image, restarts = ref("busybox"), []
    container = client.containers.run(image, ["sh", "-c", f"echo {vmlib.READY}; exec sleep 3600"],
                                      detach=True, labels=labels(nn),
                                      restart_policy={"Name": "on-failure"})
    with Progress("recovery", 2 * runs) as bar:
        try:
            deadline = time.perf_counter() + 30
            while container.logs().count(vmlib.READY.encode()) < 1:
                if time.perf_counter() > deadline:
                    raise TimeoutError("The service container never became ready.")
                time.sleep(0.02)
            for i in range(runs):
                count = container.logs().count(vmlib.READY.encode())
                t = time.perf_counter()
                container.kill()  # SIGKILL: a crash, so the on-failure policy restarts it
                while container.logs().count(vmlib.READY.encode()) <= count:
                    if time.perf_counter() - t > 30:
                        raise TimeoutError("The engine did not restart the container.")
                    time.sleep(0.01)
                restarts.append(time.perf_counter() - t)
                bar.advance(1, caption=f"container back in {restarts[-1]:.2f} s")
                time.sleep(0.1 * 2 ** i + 0.2)  # the engine's restart back-off doubles
        finally:
            container.remove(force=True)
        reboots = []
        with vmlib.VM(nn=nn) as guest:
            guest.wait_ready()
            for _ in range(runs):
                reboots.append(guest.reboot())
                bar.advance(1, caption=f"VM back in {reboots[-1]:.2f} s")
    return {"container_restart_s": summary(restarts), "vm_reboot_s": summary(reboots),
            "accelerator": vmlib.accelerator().name}


# ---------------------------------------------------------------- published figures

def published() -> dict:
    """Figures from the literature (with sources) and this course's reference run."""
    folder = DATA / "bench"
    return {"published": json.loads((folder / "published.json").read_text()),
            "reference": json.loads((folder / "reference.json").read_text())
            if (folder / "reference.json").exists() else {}}


# ---------------------------------------------------------------- charts for the whole benchmark

def dashboard(result: dict):
    """The full dashboard: start-up distribution, memory, CPU, and published figures beside."""
    from . import charts
    c, v, facts = result["container"], result["vm"], result["machine"]
    accel = facts.get("accelerator", "?").upper()
    fig, axes = charts.figure("Container vs VM on this machine", facts, ncols=2, nrows=2,
                              width=5.6, height=3.4)
    charts.distribution(axes[0], {"container\n(create+start → output)": c["start_s"]["samples"],
                                  f"VM ({accel})\n(QEMU start → ready)": v["boot_s"]["samples"]},
                        "seconds", "Start-up, every run (log scale)")
    charts.bars(axes[1], ["container\n(docker stats)", "VM\n(QEMU PSS)"],
                [c["memory_mib"], v["pss_mib"]["median"]], "MiB", "Memory while idle after work")
    charts.bars(axes[2], ["container", f"VM ({accel})"], [c["cpu_s"], v["cpu_s"]["median"]],
                "CPU seconds", "CPU time for start + workload", log=True)
    pub = published()["published"]
    names, values = ["container\n(yours)", f"VM {accel}\n(yours)"], \
        [c["start_s"]["median"], v["boot_s"]["median"]]
    for item in pub["figures"]:
        if item.get("unit") == "s" and "chart_label" in item:
            names.append(item["chart_label"])
            values.append(item["value"])
    charts.bars(axes[3], names, values, "seconds", "Start-up: yours beside published (log)",
                colours=[charts.CONTAINER, charts.VM] + [charts.REFERENCE] * (len(names) - 2),
                log=True)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig


def write_csv(path: Path, header: list, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_outputs(result: dict, json_path: Path, folder: Path | None = None) -> list[Path]:
    """The JSON, a CSV of every run and the PNG dashboard, in one folder."""
    from . import charts
    json_path = Path(json_path)
    folder = Path(folder or json_path.parent)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, default=str))
    rows = [("container", "start_s", x) for x in result["container"]["start_s"]["samples"]] + \
        [("vm", "boot_s", x) for x in result["vm"]["boot_s"]["samples"]] + \
        [("vm", "pss_mib", x) for x in result["vm"]["pss_mib"]["samples"]] + \
        [("vm", "rss_mib", x) for x in result["vm"]["rss_mib"]["samples"]] + \
        [("container", "memory_mib", result["container"]["memory_mib"])]
    written = [json_path, write_csv(folder / "runs.csv", ["side", "figure", "value"], rows)]
    written.append(charts.save(dashboard(result), folder / "dashboard.png"))
    return written


def run_all(quick: bool = True, client: docker.DockerClient | None = None) -> dict:
    """The whole benchmark with its own checks (sampler cost, SDK vs CLI, VM vs bare QEMU)."""
    client = client or connect()
    runs, vm_runs = (5, 2) if quick else (10, 5)
    result = container_vs_vm(client, runs=runs, vm_runs=vm_runs, warmup=1)
    result["checks"] = {"sampler": sampler_overhead(10, 3 if quick else 10),
                        "sdk_vs_cli": sdk_vs_cli(client, runs=runs),
                        "vm_vs_bare_qemu": vm_vs_bare_qemu(2 if quick else 5)}
    result["published"] = published()["published"]
    result["quick"] = quick
    return result


def report(result: dict) -> str:
    """The figures, one a line, as the instructors' command prints them."""
    c, v, chk = result["container"], result["vm"], result.get("checks", {})
    lines = [f"accelerator                 {result['accelerator']} "
             f"({result['machine'].get('accelerator_reason', '')})",
             f"container start (median)    {c['start_s']['median']:.3f} s  "
             f"[{c['start_s']['min']:.3f}–{c['start_s']['max']:.3f}, n={c['start_s']['n']}]",
             f"VM boot to ready (median)   {v['boot_s']['median']:.3f} s  "
             f"[{v['boot_s']['min']:.3f}–{v['boot_s']['max']:.3f}, n={v['boot_s']['n']}]",
             f"container memory            {c['memory_mib']:.2f} MiB (docker stats), "
             f"{c['rss_mib']:.2f} MiB RSS",
             f"VM memory (QEMU)            {v['pss_mib']['median']:.1f} MiB PSS, "
             f"{v['rss_mib']['median']:.1f} MiB RSS (guest RAM {v['guest_memory_mib']} MiB)"]
    if chk:
        s, sc, vb = chk["sampler"], chk["sdk_vs_cli"], chk["vm_vs_bare_qemu"]
        lines += [f"sampler overhead            {s['overhead_percent_of_core']:.2f} % of one core "
                  f"at {s['hz']:.0f} Hz ({s['rate_hz']:.2f} Hz achieved)",
                  f"SDK vs docker run --rm      {sc['sdk_over_cli']:.2f}x  "
                  f"(SDK {sc['sdk_s']['median']:.3f} s, CLI {sc['cli_s']['median']:.3f} s)",
                  f"course VM vs bare QEMU      {vb['course_over_bare']:.2f}x  "
                  f"(course {vb['course_s']['median']:.3f} s, bare {vb['bare_s']['median']:.3f} s)"]
    return "\n".join(lines)


def main(argv: list | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs (about a minute)")
    parser.add_argument("--json", default="bench-results/bench.json", help="where to write JSON")
    parser.add_argument("--out", default=None, help="folder for CSV and PNG (default: beside JSON)")
    args = parser.parse_args(argv)
    from .labels import clean_up
    try:
        result = run_all(quick=args.quick)
        written = write_outputs(result, Path(args.json), Path(args.out) if args.out else None)
    except Exception as exc:  # a command-line tool: one line, no traceback
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    finally:
        clean_up(NN)
    print(report(result))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------- 07's live panel

class LivePanel:
    """The same workload in a container and in the VM at once, charted as the samples arrive.

    Show the panel, then press Run (or call `panel.run()`); `panel.chart()` redraws the result.
    """

    def __init__(self, client: docker.DockerClient | None = None, nn: int = NN, hz: float = 5):
        import ipywidgets as w
        self.client, self.nn, self.hz = client or connect(), nn, hz
        self.result: dict = {}
        self.sampler: Sampler | None = None
        self.button = w.Button(description="Run both", button_style="primary", icon="play")
        self.bar = Progress.make_widget("VM boot")
        self.plot = w.Output()
        self.text = w.HTML()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([self.button, self.bar, self.plot, self.text])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def _draw(self) -> None:
        from IPython.display import display
        with self.plot:
            self.plot.clear_output(wait=True)
            display(self.chart())

    def chart(self):
        """Memory and CPU over time, container and VM, from the last run's samples."""
        from . import charts
        fig, (mem, cpu) = charts.figure("Same workload, side by side", self.result.get("machine")
                                        or {}, ncols=2, width=5.2, height=3.2)
        if self.sampler is not None:
            labels_ = {"container": "container (its processes)",
                       "vm": f"VM ({vmlib.accelerator().name.upper()}, QEMU process)"}
            charts.timeline(mem, {labels_[k]: self.sampler.series(k, "rss_mib")
                                  for k in labels_}, "resident memory (MiB)", "Memory")
            charts.timeline(cpu, {labels_[k]: self.sampler.series(k, "cpu_percent")
                                  for k in labels_}, "CPU (% of one core)", "CPU")
        fig.tight_layout(rect=(0, 0.06, 1, 0.94))
        return fig

    def run(self) -> dict:
        """Start both, sample until the VM has run the workload, then read memory each side."""
        from .ui import error_html, status_html
        self.button.disabled = True
        self.text.value = ""
        facts = machine(self.client)
        accel = facts["accelerator"]
        expect_s = 1.0 if accel == "kvm" else 8.0
        self.result = {"machine": facts}
        self.sampler = Sampler(self.hz).start()
        container = guest = None
        bar = Progress(f"VM boot ({accel.upper()})", expect_s, "s", widget=self.bar)
        try:
            run = container_workload(self.client, ref("busybox"), script(hold=True), self.nn,
                                     vmlib.DONE, keep=True)
            container = run.container
            self.sampler.watch("container", container_pid(container))
            guest = vmlib.VM(script(), accel=accel, nn=self.nn).start()
            self.sampler.watch("vm", guest.pid)
            last = 0.0
            while not guest.done.wait(0.25):
                elapsed = time.perf_counter() - guest.started_at
                bar.update(min(elapsed, expect_s * 0.95), caption=f"{elapsed:.1f} s")
                if elapsed - last > 1.0:
                    self._draw()
                    last = elapsed
                if elapsed > 300:
                    raise TimeoutError("The VM did not finish its workload within 300 s.")
            boot = guest.wait_ready(1)
            time.sleep(1.0)  # a second of both idling, on the chart
            info = guest.process().memory_full_info()
            self.result.update(
                container={"start_s": run.start_seconds, "output": run.lines,
                           "memory_mib": container_memory_mib(container)},
                vm={"boot_s": boot, "output": guest.output, "pss_mib": info.pss / MIB,
                    "rss_mib": info.rss / MIB, "accelerator": accel})
            bar.close(f"ready in {boot:.2f} s")
        except Exception as exc:  # a panel reports, it does not raise a traceback wall
            bar.close("failed", ok=False)
            self.text.value = error_html(f"{exc}")
            return self.result
        finally:
            self.sampler.stop()
            if container is not None:
                container.remove(force=True)
            if guest is not None:
                guest.stop()
            self.button.disabled = False
        self._draw()
        c, v = self.result["container"], self.result["vm"]
        rows = [("", "container", f"VM ({accel.upper()})"),
                ("kernel (uname -r)", _pick(c["output"], "kernel:"), _pick(v["output"], "kernel:")),
                ("hostname", _pick(c["output"], "hostname:"), _pick(v["output"], "hostname:")),
                ("processes", _pick(c["output"], "processes:"), _pick(v["output"], "processes:")),
                ("start to ready", f"{c['start_s']:.3f} s", f"{v['boot_s']:.2f} s"),
                ("memory", f"{c['memory_mib']:.1f} MiB (docker stats)",
                 f"{v['pss_mib']:.0f} MiB (QEMU PSS)")]
        self.text.value = status_html(True, "Both ran the same workload.") + \
            "<table>" + "".join("<tr>" + "".join(f"<td style='padding:0 1em'>{x}</td>"
                                                 for x in r) + "</tr>" for r in rows) + "</table>"
        return self.result


def _pick(lines: list, prefix: str) -> str:
    return next((l.split(":", 1)[1].strip() for l in lines if l.startswith(prefix)), "?")
