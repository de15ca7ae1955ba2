"""A real virtual machine beside the containers (taught in 07-vm-vs-container).

QEMU boots a real Linux kernel (`-M microvm`, direct kernel boot: the leanest standard path) into
an initramfs whose whole user space is the same static busybox the course's `busybox:1.35` image
holds. The guest runs the same shell workload a container runs, and its first line is the ready
marker, so "boot to ready" is timed the way "start to first output" is timed for a container.

The accelerator is KVM where a probe guest really boots within a watchdog (some machines offer
/dev/kvm yet a guest never leaves early boot), otherwise TCG, QEMU's software emulation.
Every figure says which.

QEMU and the kernel come from this machine where it has them, otherwise from the course's VM
image (`python -m helpers.images ensure --name vmkit`): QEMU then runs as the only process of a
container of that image, without network, its serial console read from the container's output.
DOCKERCOURSE_VM=image (or =host) chooses instead. Every figure says where QEMU ran.
"""
from __future__ import annotations

import base64
import glob
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .engine import EngineUnavailable, connect
from .images import CACHE, ref
from .labels import labels
from .measure import container_memory_mib, container_pid

READY = "DOCKERCOURSE-READY"
DONE = "DOCKERCOURSE-DONE"
VM_CACHE = CACHE / "vm"
MEMORY_MIB = 128
MIB = 2**20
NN = 7  # containers the VM runs in carry notebook 07's label unless a notebook passes its own
VM_IMAGE = "vmkit"  # the catalogue's name for the course's VM image
# Where the image side finds its pieces inside the container (see data/images/vmkit/setup.sh).
IMAGE_QEMU = "/usr/bin/qemu-system-x86_64"
IMAGE_KERNEL = "/vmkit/vmlinuz"
IMAGE_INITRD = "/tmp/dockercourse-initrd.gz"
IMAGE_DISK = "/tmp/dockercourse-disk.img"
# microvm without ACPI: with ACPI, a TCG guest on a busy host often waits forever for its first
# timer tick (jiffies never advance), while acpi=off boots every time.
MACHINE = "microvm,acpi=off"
# Debian's kernel finds virtio-mmio devices only through ACPI, so a VM with a disk boots the
# standard PC machine and a virtio-pci disk; these modules are loaded only then.
DISK_MACHINE = "pc"
DISK_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                "virtio_pci", "virtio_blk")
# Firecracker-style quiet boot: skip probing hardware a microvm does not have.
CMDLINE = ("console=ttyS0 quiet panic=-1 reboot=t 8250.nr_uarts=1 "
           "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd")
BARE_CMDLINE = "console=ttyS0 quiet panic=-1"

INIT = r"""#!/bin/sh
# The guest's whole user space: mount the kernel's file systems, run the workload, stay up.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
hostname dockercourse-vm
for word in $(cat /proc/cmdline); do
  case "$word" in
    dcmods=*) for m in $(echo "${word#dcmods=}" | tr , ' '); do insmod /lib/modules/$m.ko; done ;;
    dcw=*) echo "${word#dcw=}" | base64 -d > /workload.sh ;;
  esac
done
if [ -s /workload.sh ]; then sh /workload.sh; else echo DOCKERCOURSE-READY; fi
echo DOCKERCOURSE-DONE
while true; do sleep 3600; done
"""


class VmUnavailable(RuntimeError):
    """QEMU or a kernel is missing, and so is the VM image; the message says both ways out."""


def mode() -> str:
    """'host' or 'image' when DOCKERCOURSE_VM forces one, else '' (host if it can, else image)."""
    chosen = os.environ.get("DOCKERCOURSE_VM", "").strip().lower()
    if chosen not in ("", "host", "image"):
        raise VmUnavailable(f"DOCKERCOURSE_VM={chosen!r}: use 'host', 'image' or leave it unset.")
    return chosen


# ---------------------------------------------------------------- finding QEMU and a kernel

def find_qemu() -> str | None:
    """Path of qemu-system-x86_64 on this machine, or None."""
    return shutil.which("qemu-system-x86_64") or next(
        (p for p in ("/usr/bin/qemu-system-x86_64", "/usr/libexec/qemu-kvm") if os.path.exists(p)),
        None)


def qemu_version(qemu: str | None = None) -> str:
    qemu = qemu or find_qemu()
    if not qemu:
        return ""
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version ([0-9.]+)", out)
    return m.group(1) if m else out.strip()[:40]


KERNEL_CACHE = VM_CACHE / "kernel"   # Debian's kernel package, unpacked (never installed)


def find_kernel() -> Path | None:
    """A readable kernel with its modules: the one the course unpacked into its cache first,
    else one in /boot (the running one first, else the newest)."""
    candidates = sorted(KERNEL_CACHE.glob("boot/vmlinuz-*")) + \
        [Path(f"/boot/vmlinuz-{platform.release()}")] + sorted(
        (Path(p) for p in glob.glob("/boot/vmlinuz-*")), key=lambda p: p.stat().st_mtime,
        reverse=True)
    for path in candidates:
        if path.is_file() and os.access(path, os.R_OK) and kernel_modules(path).is_dir():
            return path
    return None


def kernel_version(kernel: Path) -> str:
    return kernel.name.removeprefix("vmlinuz-")


def kernel_modules(kernel: Path) -> Path:
    """The modules that belong to `kernel`: beside it in the course's cache, or the system's."""
    return kernel.parent.parent / "lib" / "modules" / kernel_version(kernel)


def unpack_kernel() -> Path:
    """Debian's versioned kernel package (the one `linux-image-amd64` points to), fetched with
    `apt-get download` and unpacked with `dpkg -x` into the course's cache, keeping only the
    kernel and the virtio modules the guest loads (about 10 MB of 400), with a `modules.dep`
    for them written from the modules' own `depends=` (no depmod needed). Nothing is
    installed; removing the cache undoes it."""
    found = sorted(KERNEL_CACHE.glob("boot/vmlinuz-*"))
    if found:
        return found[-1]
    depends = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                             text=True).stdout
    names = re.findall(r"Depends: (linux-image-[0-9][^\s]*)", depends)
    if not names:
        raise VmUnavailable("apt knows no linux-image-amd64 here: run `apt-get update` first.")
    part = KERNEL_CACHE.with_suffix(".part")
    shutil.rmtree(part, ignore_errors=True)
    part.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockercourse-kernel-") as tmp:
        done = subprocess.run(["apt-get", "download", "-qq", names[0]], cwd=tmp,
                              capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if done.returncode != 0 or not debs:
            raise VmUnavailable(f"Fetching {names[0]} failed: {done.stderr.strip()[-300:]}")
        subprocess.run(["dpkg", "-x", str(debs[0]), str(part)], check=True)
    kernel = sorted(part.glob("boot/vmlinuz-*"))[-1]
    _keep_disk_modules(part / "lib" / "modules" / kernel_version(kernel))
    for extra in part.glob("usr"):
        shutil.rmtree(extra)
    shutil.rmtree(KERNEL_CACHE, ignore_errors=True)
    part.rename(KERNEL_CACHE)
    return KERNEL_CACHE / "boot" / kernel.name


def _keep_disk_modules(moddir: Path) -> None:
    """Keep DISK_MODULES and what they depend on; write their modules.dep; drop the rest."""
    files = {p.name.split(".ko")[0].replace("-", "_"): p for p in moddir.rglob("*.ko*")}
    keep, todo = {}, list(DISK_MODULES)
    while todo:
        name = todo.pop()
        if name in keep or name not in files:
            continue   # built into the kernel, or already taken
        keep[name] = files[name]
        found = re.search(rb"depends=([^\0]*)\0", files[name].read_bytes())
        todo += [d for d in (found.group(1).decode().split(",") if found else []) if d]
    rel = lambda p: str(p.relative_to(moddir))
    lines = []
    for name, path in keep.items():
        found = re.search(rb"depends=([^\0]*)\0", path.read_bytes())
        deps = [keep[d] for d in (found.group(1).decode().split(",") if found else []) if d in keep]
        lines.append(f"{rel(path)}: {' '.join(rel(d) for d in deps)}".rstrip())
    for path in files.values():
        if path not in keep.values():
            path.unlink()
    (moddir / "modules.dep").write_text("\n".join(lines) + "\n")


def find_busybox() -> Path | None:
    """A static busybox (Debian's busybox-static), the same binary the busybox image carries."""
    for p in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if p and Path(p).is_file():
            return Path(p).resolve()
    return None


# ---------------------------------------------------------------- the initramfs (newc cpio)

class _Cpio:
    """Writes the 'newc' cpio format the kernel unpacks into its first root file system."""

    def __init__(self):
        self.buf, self.ino = io.BytesIO(), 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self.buf.write(b"\0" * (-self.buf.tell() % 4) + data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data: bytes, mode=0o755):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target: str):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def build_initramfs(kernel: Path | None = None, busybox: Path | None = None,
                    directory: Path | None = None) -> Path:
    """The guest's initramfs (busybox + init + virtio disk modules), built once and cached.

    With `directory` it is always built afresh there (to time provisioning from nothing).
    """
    kernel, busybox = kernel or find_kernel(), busybox or find_busybox()
    if not kernel or not busybox:
        raise VmUnavailable(missing_advice())
    return _initramfs(kernel_version(kernel), kernel_modules(kernel), busybox,
                      _applets(busybox), directory)


def _initramfs(version: str, moddir: Path, busybox: Path, applets: list[str],
               directory: Path | None = None, where: str = "") -> Path:
    dep = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path = line.split(":")[0]
        dep[Path(path).name.removesuffix(".ko")] = moddir / path
    blob = busybox.read_bytes()
    key = hashlib.sha256(blob + INIT.encode() + version.encode() +
                         ",".join(DISK_MODULES).encode()).hexdigest()[:12]
    # The image side's initramfs is named apart (where="image-"), so that it never stands in
    # for the host's.
    out = Path(directory or VM_CACHE) / f"initramfs-{where}{version}-{key}.cpio.gz"
    if out.exists() and directory is None:
        return out
    cpio = _Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc",
              "root", "lib", "lib/modules", "mnt"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)  # init needs a console before devtmpfs is mounted
    cpio.file("bin/busybox", blob)
    for applet in applets:
        if applet != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    cpio.file("init", INIT.encode())
    cpio.file("etc/hostname", b"dockercourse-vm\n", 0o644)
    for name in DISK_MODULES:
        if name in dep:
            cpio.file(f"lib/modules/{name}.ko", dep[name].read_bytes(), 0o644)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    part.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    part.replace(out)
    return out


IMAGE_WAY_OUT = (f"`python -m helpers.images ensure --name {VM_IMAGE}` builds the course's VM "
                 "image, which carries QEMU, a kernel and busybox (Docker is all it needs)")


def missing_advice() -> str:
    """What is missing on this machine, and both ways out ('' when nothing is)."""
    parts = []
    if not find_qemu():
        parts.append("QEMU (`sudo apt-get install qemu-system-x86`)")
    if not find_kernel():
        parts.append("a Linux kernel with its modules (`./course start` unpacks Debian's into "
                     "its cache; or a readable one in /boot: on Ubuntu "
                     "`sudo chmod 0644 /boot/vmlinuz-*`)")
    if not find_busybox():
        parts.append("a static busybox (`sudo apt-get install busybox-static`)")
    return ("The VM side needs " + ", ".join(parts) + " on this machine; or else "
            + IMAGE_WAY_OUT + ". The container side works without either." if parts else "")


@dataclass
class VmKit:
    """What boots the course's VM, and where each piece came from.

    On the image side `qemu` and `kernel` are paths inside the image; `initrd` is always a file
    on this machine (copied into the container before QEMU starts).
    """
    qemu: str
    kernel: Path
    initrd: Path
    kernel_version: str
    qemu_version: str
    where: str = "host"     # where QEMU runs: "host" (this machine) or "image" (a container)
    image: str = ""         # the image's tag on the image side
    kernel_bytes: int = 0   # the kernel file's size (on the image side it is not on this machine)

    @property
    def where_label(self) -> str:
        return "QEMU on this machine" if self.where == "host" else \
            f"QEMU in a container of {self.image}"


def host_kit() -> VmKit:
    """QEMU, kernel and initramfs from this machine, or VmUnavailable saying what to install."""
    qemu, kernel = find_qemu(), find_kernel()
    if not qemu or not kernel or not find_busybox():
        raise VmUnavailable(missing_advice())
    return VmKit(qemu, kernel, build_initramfs(kernel), kernel_version(kernel), qemu_version(qemu),
                 kernel_bytes=kernel.stat().st_size)


_CLIENT = None
_IMAGE_KITS: dict[str, VmKit] = {}


def _client():
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = connect(timeout=60)
    return _CLIENT


def _untar(chunks, folder: Path, strip: str = "") -> None:
    """Regular files of a `get_archive` stream into `folder` (names checked: nothing escapes)."""
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(strip).lstrip("/")
            if not member.isfile() or ".." in Path(name).parts:
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())


def _extract(client, image_ref: str, folder: Path) -> None:
    """Copy what the initramfs needs out of the image (as `docker cp`, from a container that
    never starts): busybox, its applet list, the kernel's version and its virtio modules."""
    container = client.containers.create(image_ref, ["true"], labels=labels(NN),
                                         network_mode="none")
    part = folder.with_suffix(".part")
    shutil.rmtree(part, ignore_errors=True)
    try:
        _untar(container.get_archive("/vmkit")[0], part, "vmkit/")
        _untar(container.get_archive("/bin/busybox")[0], part)
        version = (part / "kernel-version").read_text().strip()
        _untar(container.get_archive(f"/lib/modules/{version}")[0], part / "modules")
        # Only the size is wanted: the archive's stat says it, the 8 MB stream is left unread.
        size = container.get_archive(f"/boot/vmlinuz-{version}")[1]["size"]
        (part / "kernel-bytes").write_text(str(size))
    finally:
        container.remove(force=True)
    (part / "busybox").chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)
    part.replace(folder)


def image_kit() -> VmKit:
    """QEMU and kernel from the course's VM image; the initramfs is built here from its busybox."""
    image_ref = ref(VM_IMAGE)
    try:
        image = _client().images.get(image_ref)
    except EngineUnavailable as exc:
        raise VmUnavailable(missing_advice() + f"\n(The VM image needs Docker: {exc})") from None
    except ImageNotFound:
        raise VmUnavailable(missing_advice() or (
            f"The VM image {image_ref} is not present: {IMAGE_WAY_OUT}. Or, with QEMU and a "
            "kernel on this machine, leave DOCKERCOURSE_VM unset.")) from None
    except (DockerException, OSError) as exc:
        raise VmUnavailable(f"Docker did not answer about {image_ref}: {exc}") from None
    if image.id in _IMAGE_KITS:
        return _IMAGE_KITS[image.id]
    folder = VM_CACHE / f"image-{image.id.split(':')[-1][:12]}"
    if not (folder / "kernel-bytes").exists():
        try:
            _extract(_client(), image_ref, folder)
        except (DockerException, OSError, KeyError) as exc:
            raise VmUnavailable(f"Could not read QEMU's kernel and busybox from {image_ref} "
                                f"({exc}); rebuild it: {IMAGE_WAY_OUT}.") from None
    version = (folder / "kernel-version").read_text().strip()
    applets = (folder / "busybox-applets").read_text().split()
    initrd = _initramfs(version, folder / "modules" / version, folder / "busybox", applets,
                        where="image-")
    qemu_text = (folder / "qemu-version").read_text()
    m = re.search(r"version ([0-9.]+)", qemu_text)
    found = VmKit(IMAGE_QEMU, Path(IMAGE_KERNEL), initrd, version,
                  m.group(1) if m else qemu_text.strip()[:40], "image", image_ref,
                  int((folder / "kernel-bytes").read_text()))
    _IMAGE_KITS[image.id] = found
    return found


def kit() -> VmKit:
    """QEMU, kernel and initramfs: from this machine where it has them, else from the course's
    VM image; VmUnavailable (saying both ways out) when neither is there."""
    chosen = mode()
    if chosen == "host" or (chosen == "" and find_qemu() and find_kernel() and find_busybox()):
        return host_kit()
    return image_kit()


def available() -> bool:
    try:
        kit()
        return True
    except (VmUnavailable, OSError):
        return False


# ---------------------------------------------------------------- booting

def command(k: VmKit, accel: str, script: str = "", memory_mib: int = MEMORY_MIB,
            disk: Path | None = None, cmdline: str = CMDLINE) -> list[str]:
    """The QEMU command line: microvm, direct kernel boot, serial console on stdout."""
    append = cmdline
    if script:
        append += " dcw=" + base64.b64encode(script.encode()).decode()
    machine = DISK_MACHINE if disk is not None else MACHINE
    cmd = [k.qemu, "-M", machine, "-accel", accel, "-m", str(memory_mib), "-smp", "1",
           "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
           "-kernel", str(k.kernel), "-initrd", _initrd_path(k)]
    if disk is not None:
        append += " dcmods=" + ",".join(DISK_MODULES)
        disk = IMAGE_DISK if k.where == "image" else disk
        cmd += ["-drive", f"id=disk0,file={disk},format=raw,if=none,cache=none,aio=threads",
                "-device", "virtio-blk-pci,drive=disk0"]
    if len(append) > 2000:
        raise ValueError("The workload is too long for the kernel command line (2 KiB).")
    return cmd + ["-append", append]


def _initrd_path(k: VmKit) -> str:
    return IMAGE_INITRD if k.where == "image" else str(k.initrd)


def bare_command(k: VmKit, accel: str = "tcg") -> list[str]:
    """The textbook boot the course's VM is compared with: nothing but microvm and the kernel."""
    return [k.qemu, "-M", MACHINE, "-accel", accel, "-m", str(MEMORY_MIB), "-nographic",
            "-no-reboot", "-kernel", str(k.kernel), "-initrd", _initrd_path(k),
            "-append", BARE_CMDLINE]


def _die_with_parent() -> None:
    """In QEMU's child process: its own session, and killed if the Python that started it dies
    (a killed kernel or test run must not leave a guest spinning a core)."""
    os.setsid()
    if platform.system() == "Linux":
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class VM:
    """One QEMU guest: `start()`, `wait_ready()` (seconds to the ready marker), `stop()`.

    `VM(script)` runs `script` (busybox sh) in the guest; its output lines land in `.lines`.
    On the image side QEMU runs in a container (`.container`, labelled for notebook `nn`).
    """

    def __init__(self, script: str = "", accel: str | None = None, memory_mib: int = MEMORY_MIB,
                 disk: Path | None = None, argv: list | None = None,
                 initrd: Path | None = None, nn: int | str = NN):
        self.kit = kit()
        if initrd is not None:
            self.kit = replace(self.kit, initrd=Path(initrd))
        self.accel = accel or accelerator().name
        self.argv = argv or command(self.kit, self.accel, script, memory_mib, disk)
        self.disk, self.nn = disk, nn
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.exited = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.container = None
        self._qemu_pid = 0
        self.started_at = self.ready_at = self.done_at = None

    @property
    def pid(self) -> int | None:
        """QEMU's process id on this machine (None where Docker runs it out of sight)."""
        if self.container is not None:
            return self._qemu_pid or None
        return self.proc.pid if self.proc else None

    def start(self) -> "VM":
        self.started_at = time.perf_counter()
        if self.kit.where == "image":
            lines = self._start_container()
        else:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
            lines = iter(self.proc.stdout.readline, b"")
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        return self

    def _start_container(self):
        """`docker run -i --rm --network none [--device /dev/kvm] <image> qemu ...`, with the
        initramfs copied in before the start; returns the console's lines."""
        import tarfile
        client = _client()
        create = {"labels": labels(self.nn), "network_mode": "none", "auto_remove": True}
        if self.accel == "kvm":
            create["devices"] = ["/dev/kvm:/dev/kvm:rwm"]
        if self.disk is not None:
            create["volumes"] = {str(Path(self.disk).resolve()): {"bind": IMAGE_DISK,
                                                                   "mode": "rw"}}
        self.container = client.containers.create(self.kit.image, self.argv, **create)
        self._qemu_pid = 0
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(self.kit.initrd, arcname=Path(IMAGE_INITRD).name)
        self.container.put_archive(str(Path(IMAGE_INITRD).parent), archive.getvalue())
        # Attach before starting, as `docker run` does, so that no console line is missed.
        chunks = client.api.attach(self.container.id, stdout=True, stderr=True, stream=True,
                                   logs=True)
        self.container.start()
        try:
            pid = container_pid(self.container)
            # On Linux QEMU is a process of this machine; under Docker Desktop the pid belongs
            # to Docker's own VM and names nothing (or something else) here.
            if pid and "qemu" in psutil.Process(pid).name():
                self._qemu_pid = pid
        except (NotFound, psutil.Error):
            pass
        return _split_lines(chunks)

    def _read(self, lines) -> None:
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r\n")
            now = time.perf_counter()
            if READY in line and not self.ready.is_set():
                self.ready_at = now
                self.ready.set()
            elif DONE in line and not self.done.is_set():
                self.done_at = now
                self.done.set()
            else:
                self.lines.append(line)
        self.exited.set()
        self.ready.set()  # wake waiters; they check ready_at
        self.done.set()

    def _seconds_until(self, event: threading.Event, stamp: str, timeout: float,
                       what: str) -> float:
        """Wait for a marker; seconds from starting QEMU to when it appeared."""
        if not event.wait(timeout):
            self.stop()
            raise TimeoutError(f"The VM ({self.accel}) did not reach {what} within {timeout:.0f} s.")
        if getattr(self, stamp) is None:
            raise RuntimeError(f"QEMU stopped before {what}:\n" + "\n".join(self.lines[-8:]))
        return getattr(self, stamp) - self.started_at

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from starting QEMU to the guest's ready marker."""
        return self._seconds_until(self.ready, "ready_at", timeout, "the ready marker")

    def wait_done(self, timeout: float = 300) -> float:
        """Seconds from starting QEMU to the end of the workload."""
        return self._seconds_until(self.done, "done_at", timeout, "the end of its workload")

    @property
    def output(self) -> list[str]:
        """The workload's lines (kernel messages and markers left out)."""
        return [l for l in self.lines
                if l and not l.startswith(("[", "qemu-system")) and DONE not in l]

    def process(self) -> psutil.Process:
        """QEMU's process on this machine (host side, or image side on Linux)."""
        if self.pid is None:
            raise VmUnavailable("QEMU runs inside Docker's own VM here (Docker Desktop), out of "
                                "this machine's sight: memory() reads the container's memory "
                                "from the engine instead.")
        return psutil.Process(self.pid)

    def memory(self) -> dict:
        """QEMU's memory now, and how it was read ('source'): its process's PSS where this
        machine sees the process, else the container's memory from the engine's stats API."""
        where = "" if self.container is None else ", inside the container"
        if self.pid is not None:
            try:
                info = psutil.Process(self.pid).memory_full_info()
                return {"memory_mib": info.pss / MIB, "pss_mib": info.pss / MIB,
                        "rss_mib": info.rss / MIB,
                        "source": f"PSS of the QEMU process (psutil){where}"}
            except psutil.AccessDenied:  # QEMU runs as root in the container; PSS needs root
                if self.container is None:
                    raise
        if self.container is None:
            raise RuntimeError("The VM is not running.")
        return {"memory_mib": container_memory_mib(self.container), "pss_mib": None,
                "rss_mib": None, "source": "the container's memory from the engine's stats API "
                                           "(docker stats): QEMU's process is not readable here"}

    def figures(self) -> dict:
        """What this boot measured and how: accelerator, where QEMU ran, boot time, memory."""
        running = self.started_at is not None and not self.exited.is_set()
        return {"accelerator": self.accel, "qemu_ran": self.kit.where,
                "qemu_ran_label": self.kit.where_label, "image": self.kit.image or None,
                "qemu_version": self.kit.qemu_version, "kernel_version": self.kit.kernel_version,
                "boot_s": (self.ready_at - self.started_at) if self.ready_at else None,
                "memory": self.memory() if running else None}

    def stop(self) -> None:
        """Power the VM off (QEMU is killed: the guest keeps nothing worth saving)."""
        if self.container is not None:
            self._remove_container()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.exited.wait(2)
            self.proc.stdout.close()

    def _remove_container(self, timeout: float = 10) -> None:
        """`docker rm -f`, then wait until the engine has really removed it (--rm races us)."""
        try:
            self.container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: the engine is removing it already
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.container.reload()
            except NotFound:
                break
            time.sleep(0.05)
        self.exited.wait(2)

    def reboot(self, timeout: float = 120) -> float:
        """A VM restarted after a failure: power off, boot again; seconds to ready again."""
        began = time.perf_counter()
        self.stop()
        self.lines, self.ready, self.done, self.exited = [], threading.Event(), \
            threading.Event(), threading.Event()
        self.ready_at = self.done_at = None
        self.start()
        self.wait_ready(timeout)
        return self.ready_at - began

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


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


def boot_seconds(accel: str | None = None, argv: list | None = None, timeout: float = 120) -> float:
    """Boot once to the ready marker, then power off; seconds."""
    with VM(accel=accel, argv=argv) as vm:
        return vm.wait_ready(timeout)


# ---------------------------------------------------------------- the accelerator

@dataclass
class Accelerator:
    name: str           # "kvm" or "tcg"
    reason: str

    @property
    def label(self) -> str:
        return "KVM (hardware virtualisation)" if self.name == "kvm" else \
            "TCG (QEMU software emulation, no KVM)"


_ACCEL: Accelerator | None = None


def probe_kvm(watchdog_seconds: float = 10) -> tuple[bool, str]:
    """Boot a probe guest with KVM; it must print the ready marker before the watchdog fires."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm on this machine"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not usable by this user (join the kvm group)"
    try:
        seconds = boot_seconds("kvm", timeout=watchdog_seconds)
    except TimeoutError:
        return False, (f"/dev/kvm exists but a KVM guest did not boot within "
                       f"{watchdog_seconds:.0f} s (nested virtualisation that hangs)")
    except RuntimeError as exc:
        return False, f"QEMU refused KVM: {str(exc).splitlines()[-1][:120]}"
    return True, f"a KVM guest booted in {seconds:.2f} s"


def accelerator(refresh: bool = False) -> Accelerator:
    """KVM if it really boots a guest here, else TCG; the probe's answer is cached on disk."""
    global _ACCEL
    forced = os.environ.get("DOCKERCOURSE_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return Accelerator(forced, "set by DOCKERCOURSE_ACCEL")
    if _ACCEL and not refresh:
        return _ACCEL
    k = kit()
    key = f"{platform.release()}|{k.qemu_version}|{k.kernel_version}|{MACHINE}"
    if k.where == "image":
        key += f"|{k.image}"
    # One answer per side, so that switching DOCKERCOURSE_VM does not re-probe every time.
    cache = VM_CACHE / ("accelerator.json" if k.where == "host" else "accelerator-image.json")
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key and not refresh:
            _ACCEL = Accelerator(saved["name"], saved["reason"])
            return _ACCEL
    except (OSError, ValueError, KeyError):
        pass
    ok, reason = probe_kvm()
    _ACCEL = Accelerator("kvm" if ok else "tcg", reason)
    VM_CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "name": _ACCEL.name, "reason": reason}))
    return _ACCEL


# ---------------------------------------------------------------- a virtual disk

def disk_image(size_mib: int = 256, directory: Path | None = None) -> Path:
    """A raw disk image file for the VM's virtio disk (sparse; delete it when done)."""
    directory = Path(directory or tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="dockercourse-disk-", suffix=".img", dir=directory)
    os.ftruncate(fd, size_mib * 2**20)
    os.close(fd)
    return Path(name)
