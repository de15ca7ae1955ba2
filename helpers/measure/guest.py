"""One QEMU guest (taught in 07): boot it, wait for its ready marker, read its figures, stop it.

QEMU boots a real Linux kernel (`-M microvm`, direct kernel boot: the leanest standard path)
into the course's initramfs. The guest's first line from the workload is the ready marker, so
"boot to ready" is timed the way "start to first output" is timed for a container; init's own
first line gives the guest's uptime, which splits the boot into QEMU's part, the kernel's and
user space's.

Where QEMU runs is a back end, chosen once from the kit: a process of this machine
(`HostQemu`), or the only process of a container of the course's VM image (`ContainerQemu`).
`VM` delegates to it; every figure (pid, memory, CPU, kernel) is read through `VM`.

No wait lasts minutes: a guest that has not printed its ready marker within
`deadline_for(...)` (10 to 25 s, from this machine's measured boot) is killed and started
once more, and `VM.notes` says so.
"""
from __future__ import annotations

import base64
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

from helpers.measure import vmkit
from helpers.measure.initramfs import DONE, READY, UPTIME
from helpers.measure.sampler import (MIB, QemuMemory, container_cpu_s, container_memory_mib, container_pid, pss_mib, process_cpu_s, qemu_memory, shim_of)

# Debian's kernel finds virtio-mmio devices only through ACPI, so a VM with a disk boots the
# standard PC machine and a virtio-pci disk; the disk modules are loaded only then.
DISK_MACHINE = "pc"
# Firecracker-style quiet boot: skip probing hardware a microvm does not have.
CMDLINE = ("console=ttyS0 quiet panic=-1 reboot=t 8250.nr_uarts=1 "
           "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd")
BARE_CMDLINE = "console=ttyS0 quiet panic=-1"
DONE_TIMEOUT_S = 10          # ready marker → end marker: with two boot tries, 60 s at most
BOOTS_FILE = vmkit.VM_CACHE / "boot-seconds.json"
FIRST_GUESS_S = {"kvm": 1.0, "tcg": 8.0}   # before this machine has booted a guest


class GuestTimeout(TimeoutError):
    """The guest printed no ready marker in time, twice; the message says what to do."""


# ---------------------------------------------------------------- how long to wait

def measured_boot_s(accel: str, where: str) -> float | None:
    """The median of this machine's last solo boots (QEMU start → ready) with `accel`."""
    try:
        seconds = json.loads(BOOTS_FILE.read_text()).get(f"{where}|{accel}") or []
    except (OSError, ValueError):
        return None
    return statistics.median(seconds) if seconds else None


def _remember_boot(accel: str, where: str, seconds: float) -> None:
    try:
        saved = json.loads(BOOTS_FILE.read_text())
    except (OSError, ValueError):
        saved = {}
    key = f"{where}|{accel}"
    saved[key] = (saved.get(key) or [])[-4:] + [round(seconds, 3)]
    BOOTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    part = BOOTS_FILE.with_name(f"{BOOTS_FILE.name}.{os.getpid()}.part")
    part.write_text(json.dumps(saved))
    part.replace(BOOTS_FILE)


def deadline_for(accel: str, where: str, at_once: int = 1) -> float:
    """max(10 s, min(25 s, 3 × this machine's measured boot × guests booting at once)):
    one retry still fits a 60 s notebook cell."""
    boot = measured_boot_s(accel, where) or FIRST_GUESS_S.get(accel, 8.0)
    return max(10.0, min(25.0, 3 * boot * max(at_once, 1)))


# ---------------------------------------------------------------- the QEMU command line

def command(k: vmkit.VmKit, accel: str, script: str = "", memory_mib: int = vmkit.MEMORY_MIB,
            disk: Path | None = None, cmdline: str = CMDLINE) -> list[str]:
    """The QEMU command line: microvm, direct kernel boot, serial console on stdout."""
    backend = BACKENDS[k.where]
    append = cmdline
    if script:
        append += " dcw=" + base64.b64encode(script.encode()).decode()
    machine = DISK_MACHINE if disk is not None else vmkit.MACHINE
    cmd = [k.qemu, "-M", machine, "-accel", accel, "-m", str(memory_mib), "-smp", "1",
           "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
           "-kernel", str(k.kernel), "-initrd", backend.initrd_arg(k)]
    if disk is not None:
        from helpers.measure.initramfs import DISK_MODULES
        append += " dcmods=" + ",".join(DISK_MODULES)
        cmd += ["-drive", f"id=disk0,file={backend.disk_arg(disk)},format=raw,if=none,"
                          "cache=none,aio=threads",
                "-device", "virtio-blk-pci,drive=disk0"]
    if len(append) > 2000:
        raise ValueError("The workload is too long for the kernel command line (2 KiB).")
    return cmd + ["-append", append]


def bare_command(k: vmkit.VmKit, accel: str = "tcg") -> list[str]:
    """The textbook boot the course's VM is compared with: nothing but microvm and the kernel."""
    return [k.qemu, "-M", vmkit.MACHINE, "-accel", accel, "-m", str(vmkit.MEMORY_MIB),
            "-nographic", "-no-reboot", "-kernel", str(k.kernel), "-initrd",
            BACKENDS[k.where].initrd_arg(k), "-append", BARE_CMDLINE]


# ---------------------------------------------------------------- the two back ends

def _die_with_parent() -> None:
    """In QEMU's child process: its own session, and killed if the Python that started it dies
    (a killed kernel or test run must not leave a guest spinning a core)."""
    os.setsid()
    if platform.system() == "Linux":
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class HostQemu:
    """QEMU as a process of this machine."""
    label = "QEMU on this machine"
    uses_engine = False       # no container, no shim, no engine daemons behind it

    def __init__(self, k: vmkit.VmKit, *, lesson):
        self.kit, self.proc = k, None

    @staticmethod
    def initrd_arg(k: vmkit.VmKit) -> str:
        return str(k.initrd)

    @staticmethod
    def disk_arg(disk: Path) -> str:
        return str(disk)

    def start(self, argv: list, accel: str, disk: Path | None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        return iter(self.proc.stdout.readline, b"")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def container(self):
        return None

    def shim_pid(self) -> int | None:
        return None

    def fallback_memory(self) -> tuple[float, str]:
        """QEMU's resident set from /proc/PID/status, readable where its memory map is not."""
        return psutil.Process(self.pid).memory_info().rss / MIB, \
            "QEMU's resident set (its memory map could not be read, so it is not split)"

    def fallback_cpu_s(self) -> float:
        return process_cpu_s(self.pid, children=False)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


class ContainerQemu:
    """QEMU as the only process of a container of the course's VM image, without network,
    its serial console read from the container's output; labelled and recorded for `lesson`."""
    INITRD = "/tmp/dockercourse-initrd.gz"
    DISK = "/tmp/dockercourse-disk.img"
    uses_engine = True        # its container has a shim, and the engine's daemons serve it

    def __init__(self, k: vmkit.VmKit, *, lesson):
        self.kit, self.lesson = k, lesson
        self.labels = vmkit.kit_labels(lesson)
        self.container, self._pid = None, None

    @property
    def label(self) -> str:
        return self.kit.where_label

    @classmethod
    def initrd_arg(cls, k: vmkit.VmKit) -> str:
        return cls.INITRD

    @classmethod
    def disk_arg(cls, disk: Path) -> str:
        return cls.DISK

    def start(self, argv: list, accel: str, disk: Path | None):
        """`docker run -i --rm --network none [--device /dev/kvm] <image> qemu ...`, with the
        initramfs copied in before the start; returns the console's lines."""
        from docker.errors import NotFound
        client = self.lesson.client
        create = {"labels": self.labels, "network_mode": "none", "auto_remove": True}
        if accel == "kvm":
            create["devices"] = ["/dev/kvm:/dev/kvm:rwm"]
        if disk is not None:
            create["volumes"] = {str(Path(disk).resolve()): {"bind": self.DISK, "mode": "rw"}}
        self.container = client.containers.create(self.kit.image, argv, **create)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(self.kit.initrd, arcname=Path(self.INITRD).name)
        self.container.put_archive(str(Path(self.INITRD).parent), archive.getvalue())
        # Attach before starting, as `docker run` does, so that no console line is missed.
        chunks = client.api.attach(self.container.id, stdout=True, stderr=True, stream=True,
                                   logs=True)
        self.container.start()
        self._pid = None
        try:
            pid = container_pid(self.container)
            # On Linux QEMU is a process of this machine; under Docker Desktop the pid belongs
            # to Docker's own VM and names nothing (or something else) here.
            if pid and "qemu" in psutil.Process(pid).name():
                self._pid = pid
        except (NotFound, psutil.Error):   # it exited already: the console says why
            pass
        return _split_lines(chunks)

    @property
    def pid(self) -> int | None:
        return self._pid

    def shim_pid(self) -> int | None:
        return shim_of(self._pid) if self._pid else None

    def fallback_memory(self) -> tuple[float, str]:
        return container_memory_mib(self.container), \
            ("its container's memory from the engine's stats API (docker stats): QEMU's memory "
             "map is not readable here, so guest RAM and QEMU's own are not split")

    def fallback_cpu_s(self) -> float:
        return container_cpu_s(self.container)

    def stop(self, timeout_s: float = 10) -> None:
        """`docker rm -f`, then wait until the engine has really removed it (--rm races us)."""
        from docker.errors import APIError, NotFound
        if self.container is None:
            return
        try:
            self.container.remove(force=True)
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: the engine is removing it already
                raise
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.container.reload()
            except NotFound:
                break
            time.sleep(0.05)

    def close(self) -> None:
        pass


BACKENDS = {"host": HostQemu, "image": ContainerQemu}


def _split_lines(chunks):
    """Console lines from the container's output, which arrives in chunks of any size."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


# ---------------------------------------------------------------- figures

class BootTimes(NamedTuple):
    """One boot, QEMU start → ready marker, in three parts (seconds)."""
    qemu_s: float          # QEMU's set-up and loading the kernel, until the guest's clock starts
    kernel_s: float        # the kernel's boot, by the guest's clock (/proc/uptime at init)
    user_space_s: float    # init → the workload's ready marker
    total_s: float


@dataclass(frozen=True)
class VmMemory:
    """A running VM's memory in disjoint parts, MiB; None where a part does not exist here (no
    TCG code cache under KVM; no shim for host QEMU) or cannot be read."""
    guest_ram_mib: float | None        # the guest's RAM that QEMU has touched
    tcg_code_cache_mib: float | None   # TCG's translated code
    qemu_heap_mib: float | None        # QEMU's heap, thread stacks, other anonymous memory
    qemu_binary_mib: float | None      # QEMU's binary, libraries and mapped files
    shim_mib: float | None             # image side: the containerd shim of QEMU's container
    pss_mib: float | None              # QEMU's whole PSS (its four parts added)
    rss_mib: float | None
    unsplit_mib: float | None          # where the map is unreadable: QEMU's memory, unsplit
    source: str

    @property
    def total_mib(self) -> float:
        """Every part this machine could read, added."""
        return sum(x for x in (self.pss_mib, self.unsplit_mib, self.shim_mib) if x is not None)


class _Attempt:
    """One boot: its console lines, markers and when each came (a retry gets a new one)."""

    def __init__(self):
        self.lines: list[str] = []
        self.stamps: list[float] = []     # when each of `lines` came
        self.ready, self.done, self.exited = threading.Event(), threading.Event(), \
            threading.Event()
        self.started_at = time.perf_counter()
        self.init_at = self.init_uptime_s = self.ready_at = self.done_at = None

    def read(self, lines) -> None:
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r\n")
            now = time.perf_counter()
            if UPTIME in line and self.init_at is None:
                self.init_at = now
                try:
                    self.init_uptime_s = float(line.split(UPTIME, 1)[1].split()[0])
                except (IndexError, ValueError):
                    pass
            elif READY in line and not self.ready.is_set():
                self.ready_at = now
                self.ready.set()
            elif DONE in line and not self.done.is_set():
                self.done_at = now
                self.done.set()
            else:
                self.lines.append(line)
                self.stamps.append(now)
        self.exited.set()
        self.ready.set()  # wake waiters; they check ready_at
        self.done.set()


# ---------------------------------------------------------------- the VM

class VM:
    """One QEMU guest: `start()`, `wait_ready()` (seconds to the ready marker), `stop()`.

    `VM(script, lesson=lesson)` runs `script` (busybox sh) in the guest; its output lines land
    in `.output`. Pass `kit` and `accel` when you have them (they are looked up otherwise).
    `lesson` labels and records the container QEMU runs in on the image side (None will do
    where QEMU runs on this machine). `at_once`: how many guests boot together (their deadline
    grows with it).
    """

    def __init__(self, script: str = "", *, lesson, kit: vmkit.VmKit | None = None,
                 accel: str | None = None, memory_mib: int = vmkit.MEMORY_MIB,
                 disk: Path | None = None, argv: list | None = None,
                 initrd: Path | None = None, at_once: int = 1,
                 ready_deadline_s: float | None = None, retry: bool = True):
        from dataclasses import replace
        self.kit = kit or vmkit.kit(lesson=lesson)
        if initrd is not None:
            self.kit = replace(self.kit, initrd=Path(initrd))
        self.accel = accel or vmkit.accelerator(self.kit, lesson=lesson).name
        self.memory_mib, self.disk, self.at_once, self.retry = memory_mib, disk, at_once, retry
        self.argv = argv or command(self.kit, self.accel, script, memory_mib, disk)
        self.deadline_s = ready_deadline_s or deadline_for(self.accel, self.kit.where, at_once)
        self.backend = BACKENDS[self.kit.where](self.kit, lesson=lesson)
        self.notes: list[str] = []     # what happened on the way (a retry), in plain words
        self._attempt: _Attempt | None = None

    # -- the current boot ------------------------------------------------------------------
    @property
    def lines(self) -> list[str]:
        """Every console line of the current boot (kernel messages included)."""
        return self._attempt.lines if self._attempt else []

    @property
    def started_at(self) -> float | None:
        return self._attempt.started_at if self._attempt else None

    @property
    def ready_at(self) -> float | None:
        return self._attempt.ready_at if self._attempt else None

    @property
    def done_at(self) -> float | None:
        return self._attempt.done_at if self._attempt else None

    def marked_at(self, mark: str) -> float | None:
        """When the first console line holding `mark` came (None: none did)."""
        a = self._attempt
        return next((t for l, t in zip(a.lines, a.stamps) if mark in l), None) if a else None

    @property
    def running(self) -> bool:
        return self._attempt is not None and not self._attempt.exited.is_set()

    def finished(self, wait_s: float = 0) -> bool:
        """True once the workload has ended (or QEMU has stopped); waits up to `wait_s`."""
        return self._attempt is not None and self._attempt.done.wait(wait_s)

    @property
    def pid(self) -> int | None:
        """QEMU's process id on this machine (None where Docker runs it out of sight)."""
        return self.backend.pid

    @property
    def container(self):
        """The container QEMU runs in (image side), else None."""
        return self.backend.container

    @property
    def kernel_version(self) -> str:
        return self.kit.kernel_version

    @property
    def where_label(self) -> str:
        return self.backend.label

    def start(self) -> "VM":
        self._attempt = attempt = _Attempt()
        lines = self.backend.start(self.argv, self.accel, self.disk)
        threading.Thread(target=attempt.read, args=(lines,), daemon=True).start()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Seconds from starting QEMU to the guest's ready marker. A guest that is silent past
        the deadline (or dies first) is killed and started once more; `notes` says so."""
        limit = timeout_s or self.deadline_s
        attempts = 2 if self.retry else 1
        for attempt in range(1, attempts + 1):
            current = self._attempt
            current.ready.wait(max(0.0, current.started_at + limit - time.perf_counter()))
            if current.ready_at is not None:
                seconds = current.ready_at - current.started_at
                if self.at_once == 1 and attempt == 1:
                    _remember_boot(self.accel, self.kit.where, seconds)
                return seconds
            died = current.exited.is_set()
            what = ("QEMU stopped before the guest's ready marker" if died else
                    f"the guest printed no ready marker within {limit:.3g} s")
            if attempt < attempts:
                self.notes.append(f"VM ({self.accel.upper()}): {what}; it was killed and "
                                  "started once more.")
                self.stop()
                self.start()
                continue
            self.stop()
            if died:
                raise RuntimeError(f"{what}:\n" + "\n".join(current.lines[-8:]))
            boot = measured_boot_s(self.accel, self.kit.where)
            raise GuestTimeout(
                f"The VM ({self.accel.upper()}) did not boot: {what}"
                + (", twice" if attempts > 1 else "")
                + (f" (this machine's boots took {boot:.1f} s)" if boot else "")
                + ". The machine is too busy now: close other work and run the cell again.")

    def wait_done(self, timeout_s: float = DONE_TIMEOUT_S) -> float:
        """Seconds from starting QEMU to the end of the workload (it must end within
        `timeout_s` of the ready marker)."""
        self.wait_ready()
        current = self._attempt
        if not current.done.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"The VM's workload did not end within {timeout_s:.0f} s of its "
                               "ready marker.")
        if current.done_at is None:
            raise RuntimeError("QEMU stopped before the end of its workload:\n"
                               + "\n".join(current.lines[-8:]))
        return current.done_at - current.started_at

    def boot_times(self) -> BootTimes | None:
        """The last boot in three parts, where init reported the guest's uptime."""
        a = self._attempt
        if a is None or a.ready_at is None or a.init_at is None or a.init_uptime_s is None:
            return None
        before_kernel = max(a.init_at - a.started_at - a.init_uptime_s, 0.0)
        return BootTimes(before_kernel, a.init_uptime_s, a.ready_at - a.init_at,
                         a.ready_at - a.started_at)

    @property
    def output(self) -> list[str]:
        """The workload's lines (kernel messages and markers left out)."""
        return [l for l in self.lines
                if l and not l.startswith(("[", "qemu-system")) and DONE not in l]

    # -- figures, read through the back end ---------------------------------------------------
    def process(self) -> psutil.Process:
        """QEMU's process on this machine (host side, or image side on Linux)."""
        if self.pid is None:
            raise vmkit.VmUnavailable("QEMU runs inside Docker's own VM here (Docker Desktop), "
                                      "out of this machine's sight: memory() reads the "
                                      "container's memory from the engine instead.")
        return psutil.Process(self.pid)

    def memory(self) -> VmMemory:
        """QEMU's memory now, in parts from its memory map where this machine can read it;
        else what can be read (its resident set, or its container's), said in `source`."""
        shim = self.backend.shim_pid()
        shim_mib = pss_mib(shim) if shim else None
        if self.pid is not None:
            try:
                q: QemuMemory = qemu_memory(self.pid, self.memory_mib)
                return VmMemory(q.guest_ram_mib, q.tcg_code_cache_mib, q.heap_mib, q.binary_mib,
                                shim_mib, q.pss_mib, q.rss_mib, None,
                                "QEMU's PSS split from /proc/PID/smaps")
            except psutil.AccessDenied:
                pass
        unsplit, source = self.backend.fallback_memory()
        return VmMemory(None, None, None, None, shim_mib, None, None, unsplit, source)

    def cpu_s(self) -> float:
        """CPU seconds of all QEMU's threads so far (its container's, where it is out of
        sight)."""
        if self.pid is not None:
            try:
                return process_cpu_s(self.pid, children=False)
            except psutil.AccessDenied:
                pass
        return self.backend.fallback_cpu_s()

    def figures(self) -> dict:
        """What this boot measured and how: accelerator, where QEMU ran, boot time, memory."""
        running = self.running
        return {"accelerator": self.accel, "qemu_ran": self.kit.where,
                "qemu_ran_label": self.kit.where_label, "image": self.kit.image or None,
                "qemu_version": self.kit.qemu_version, "kernel_version": self.kit.kernel_version,
                "boot_s": (self.ready_at - self.started_at) if self.ready_at else None,
                "memory": self.memory() if running else None}

    # -- stopping ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Power the VM off (QEMU is killed: the guest keeps nothing worth saving)."""
        self.backend.stop()
        if self._attempt is not None:
            self._attempt.exited.wait(2)
        self.backend.close()

    def reboot(self) -> float:
        """A VM restarted after a failure: power off, boot again; seconds to ready again."""
        began = time.perf_counter()
        self.stop()
        self.start()
        self.wait_ready()
        return self._attempt.ready_at - began

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def boot_s(*, lesson, kit: vmkit.VmKit | None = None, accel: str | None = None,
           argv: list | None = None) -> float:
    """Boot once to the ready marker, then power off; seconds."""
    with VM(lesson=lesson, kit=kit, accel=accel, argv=argv) as guest:
        return guest.wait_ready()


def disk_image(size_mib: int = 256, directory: Path | None = None) -> Path:
    """A raw disk image file for the VM's virtio disk (sparse; delete it when done)."""
    import tempfile
    directory = Path(directory or tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="dockercourse-disk-", suffix=".img", dir=directory)
    os.ftruncate(fd, size_mib * 2**20)
    os.close(fd)
    return Path(name)
