"""What boots the course's VM (taught in 07): QEMU, a Linux kernel, a static busybox, and the
accelerator QEMU may use.

Each piece comes from this machine where it has it (`./course start` unpacks Debian's kernel
package into the course's cache: nothing is installed as the host's kernel), otherwise from the
course's VM image (`python -m helpers.images ensure --name vmkit`), whose QEMU then runs in a
container. DOCKERCOURSE_VM=image (or =host) chooses instead. `kit()` says which, once.

The accelerator is KVM where a probe guest really boots within a watchdog, otherwise TCG, QEMU's
software emulation. Where this machine can tell without a probe why KVM cannot work (no
/dev/kvm, no permission, or a nested hypervisor whose /dev/kvm runs only its own kind of guest),
it says so at once: `kvm_unusable_reason()`.
"""
from __future__ import annotations

import glob
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helpers.measure import initramfs
from helpers.course import settings
from helpers.course.images import KIT_LABEL, ref

VM_CACHE = settings.cache_dir() / "vm"
KERNEL_CACHE = VM_CACHE / "kernel"   # Debian's kernel package, unpacked (never installed)
MEMORY_MIB = 128
VM_IMAGE = "vmkit"  # the catalogue's name for the course's VM image
# Where the image side finds its pieces inside the container (see data/images/vmkit/setup.sh).
IMAGE_QEMU = "/usr/bin/qemu-system-x86_64"
IMAGE_KERNEL = "/vmkit/vmlinuz"
# microvm without ACPI: with ACPI, a TCG guest on a busy host often waits forever for its first
# timer tick (jiffies never advance), while acpi=off boots every time.
MACHINE = "microvm,acpi=off"
IMAGE_WAY_OUT = (f"`python -m helpers.images ensure --name {VM_IMAGE}` builds the course's VM "
                 "image, which carries QEMU, a kernel and busybox (Docker is all it needs)")


class VmUnavailable(RuntimeError):
    """QEMU or a kernel is missing, and so is the VM image; the message says both ways out."""


def mode() -> str:
    """'host' or 'image' when DOCKERCOURSE_VM forces one, else '' (host if it can, else image)."""
    chosen = settings.vm_where()
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


def _depends(module: Path) -> list[str]:
    found = re.search(rb"depends=([^\0]*)\0", module.read_bytes())
    return [d for d in (found.group(1).decode().split(",") if found else []) if d]


def _keep_disk_modules(moddir: Path) -> None:
    """Keep the disk modules and what they depend on; write their modules.dep; drop the rest."""
    files = {p.name.split(".ko")[0].replace("-", "_"): p for p in moddir.rglob("*.ko*")}
    keep, todo = {}, list(initramfs.DISK_MODULES)
    while todo:
        name = todo.pop()
        if name in keep or name not in files:
            continue   # built into the kernel, or already taken
        keep[name] = files[name]
        todo += _depends(files[name])
    rel = lambda p: str(p.relative_to(moddir))
    lines = [f"{rel(path)}: {' '.join(rel(keep[d]) for d in _depends(path) if d in keep)}".rstrip()
             for path in keep.values()]
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


# ---------------------------------------------------------------- the kit

@dataclass(frozen=True)
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

    @property
    def initrd_mib(self) -> float:
        return self.initrd.stat().st_size / 2**20

    @property
    def kernel_mib(self) -> float:
        return self.kernel_bytes / 2**20


def kit_labels(lesson) -> dict:
    """Labels for a container the kit runs: the lesson that asked, and the kit it belongs to."""
    if lesson is None:
        raise VmUnavailable("The VM image's QEMU runs in a container, which needs a lesson to "
                            "label and record it: pass lesson= (e.g. Lesson(7)).")
    return {**lesson.labels, KIT_LABEL: VM_IMAGE}


def build_initramfs(kernel: Path | None = None, busybox: Path | None = None,
                    directory: Path | None = None) -> Path:
    """The guest's initramfs for this machine's kernel, built once and cached (with
    `directory`, always built afresh there: to time provisioning from nothing)."""
    kernel, busybox = kernel or find_kernel(), busybox or find_busybox()
    if not kernel or not busybox:
        raise VmUnavailable(missing_advice())
    return initramfs.build(kernel_version(kernel), kernel_modules(kernel), busybox,
                           initramfs.applets(busybox), Path(directory or VM_CACHE),
                           cached=directory is None)


def image_initramfs(image: str, *, lesson) -> Path:
    """A guest made of `image`'s own files (07: the same image on the engine and in a VM): they
    are copied out as `docker create` + `docker export` do, from a container that never
    starts, once per image ID. Pass it to `VM(..., initrd=...)`."""
    client = lesson.client
    image_id = client.images.get(image).id

    def export() -> bytes:
        container = client.containers.create(image_id, ["true"], labels=lesson.labels,
                                             network_mode="none")
        try:
            return b"".join(container.export())
        finally:
            container.remove(force=True)

    return initramfs.from_image_files(export, VM_CACHE, f"from-{image_id.split(':')[-1][:12]}")


_HOST_KITS: dict = {}


def host_kit() -> VmKit:
    """QEMU, kernel and initramfs from this machine, or VmUnavailable saying what to install."""
    qemu, kernel = find_qemu(), find_kernel()
    if not qemu or not kernel or not find_busybox():
        raise VmUnavailable(missing_advice())
    key = (qemu, str(kernel), kernel.stat().st_mtime)
    found = _HOST_KITS.get(key)
    if found is None or not found.initrd.exists():   # the cache may have been emptied
        found = _HOST_KITS[key] = VmKit(qemu, kernel, build_initramfs(kernel),
                                        kernel_version(kernel), qemu_version(qemu),
                                        kernel_bytes=kernel.stat().st_size)
    return found


_IMAGE_KITS: dict[str, VmKit] = {}


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


def _extract(lesson, image_ref: str, folder: Path) -> None:
    """Copy what the initramfs needs out of the image (as `docker cp`, from a container that
    never starts): busybox, its applet list, the kernel's version and its virtio modules."""
    container = lesson.client.containers.create(image_ref, ["true"], labels=kit_labels(lesson),
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


def image_kit(*, lesson) -> VmKit:
    """QEMU and kernel from the course's VM image; the initramfs is built here from its
    busybox. The first use per image copies the pieces out through a container of `lesson`."""
    from docker.errors import DockerException, ImageNotFound

    from helpers.course.engine import EngineUnavailable, connect
    image_ref = ref(VM_IMAGE)
    try:
        # Reading needs no lesson; copying the pieces out does (kit_labels says so).
        client = lesson.client if lesson is not None else connect(timeout=60)
        image = client.images.get(image_ref)
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
            _extract(lesson, image_ref, folder)
        except (DockerException, OSError, KeyError) as exc:
            raise VmUnavailable(f"Could not read QEMU's kernel and busybox from {image_ref} "
                                f"({exc}); rebuild it: {IMAGE_WAY_OUT}.") from None
    version = (folder / "kernel-version").read_text().strip()
    applets = (folder / "busybox-applets").read_text().split()
    # The image side's initramfs is named apart, so that it never stands in for the host's.
    initrd = initramfs.build(version, folder / "modules" / version, folder / "busybox", applets,
                             VM_CACHE, name="image-")
    qemu_text = (folder / "qemu-version").read_text()
    m = re.search(r"version ([0-9.]+)", qemu_text)
    found = VmKit(IMAGE_QEMU, Path(IMAGE_KERNEL), initrd, version,
                  m.group(1) if m else qemu_text.strip()[:40], "image", image_ref,
                  int((folder / "kernel-bytes").read_text()))
    _IMAGE_KITS[image.id] = found
    return found


def kit(*, lesson) -> VmKit:
    """QEMU, kernel and initramfs: from this machine where it has them, else from the course's
    VM image; VmUnavailable (saying both ways out) when neither is there. `lesson` labels and
    records the container that copies the image's pieces out, the first time only."""
    chosen = mode()
    if chosen == "host" or (chosen == "" and find_qemu() and find_kernel() and find_busybox()):
        return host_kit()
    return image_kit(lesson=lesson)


def available() -> bool:
    """Whether a VM can be had here, asked without making anything: QEMU, a kernel and busybox
    on this machine, else the course's VM image on the engine (as `kit()` would choose)."""
    try:
        chosen = mode()
    except VmUnavailable:
        return False
    if chosen != "image" and find_qemu() and find_kernel() and find_busybox():
        return True
    if chosen == "host":
        return False
    from helpers.course.engine import connect
    try:
        client = connect(timeout=10)
    except Exception:   # no engine: no VM image either
        return False
    try:
        client.images.get(ref(VM_IMAGE))
        return True
    except Exception:
        return False
    finally:
        client.close()


# ---------------------------------------------------------------- the accelerator

@dataclass(frozen=True)
class Accelerator:
    name: str           # "kvm" or "tcg"
    reason: str

    @property
    def label(self) -> str:
        return "KVM (hardware virtualisation)" if self.name == "kvm" else \
            "TCG (QEMU software emulation, no KVM)"


PROBE_WATCHDOG_S = 10


def kvm_unusable_reason(dev: Path = Path("/dev/kvm"),
                        modules: Path = Path("/sys/module")) -> str:
    """Why KVM cannot run the course's guest here, when this machine can tell without booting
    one ('' when it cannot tell: then only a probe guest answers). The preflight shows it."""
    if not dev.exists():
        return ("no /dev/kvm on this machine (virtualisation is off in the firmware, or this "
                "is a VM without nested virtualisation)")
    if not os.access(dev, os.R_OK | os.W_OK):
        return "/dev/kvm is not usable by this user (join the kvm group)"
    if (modules / "kvm_pvm").exists() and not any(
            (modules / m).exists() for m in ("kvm_intel", "kvm_amd")):
        return ("this machine is itself a VM whose /dev/kvm comes from a nested hypervisor "
                "(kvm_pvm), which runs only guest kernels built for it, not an ordinary one")
    return ""


def probe_kvm(k: VmKit | None = None, *, lesson,
              watchdog_s: float = PROBE_WATCHDOG_S) -> tuple[bool, str]:
    """Boot a probe guest with KVM; it must print the ready marker before the watchdog fires."""
    from helpers.measure.guest import VM
    reason = kvm_unusable_reason()
    if reason:
        return False, reason
    try:
        with VM(lesson=lesson, kit=k or kit(lesson=lesson), accel="kvm", retry=False,
                ready_deadline_s=watchdog_s) as probe:
            seconds = probe.wait_ready()
    except TimeoutError:
        return False, (f"/dev/kvm exists but a KVM guest did not boot within {watchdog_s:.0f} s "
                       "(nested virtualisation that hangs)")
    except RuntimeError as exc:
        return False, f"QEMU refused KVM: {str(exc).splitlines()[-1][:120]}"
    return True, f"a KVM guest booted in {seconds:.2f} s"


_ACCEL: dict[str, Accelerator] = {}


def accelerator(k: VmKit | None = None, *, lesson, refresh: bool = False) -> Accelerator:
    """KVM if it really boots a guest here, else TCG, with the reason. Asked once per kit: the
    answer is kept on disk, and where the machine itself says why KVM cannot work no guest is
    booted at all. On the image side a probe runs in a container of `lesson`."""
    forced = settings.accelerator()
    if forced in ("kvm", "tcg"):
        return Accelerator(forced, "set by DOCKERCOURSE_ACCEL")
    reason = kvm_unusable_reason()
    if reason:
        return Accelerator("tcg", reason)
    k = k or kit(lesson=lesson)
    key = f"{platform.release()}|{k.qemu_version}|{k.kernel_version}|{MACHINE}|{k.where}|{k.image}"
    if key in _ACCEL and not refresh:
        return _ACCEL[key]
    # One answer per side, so that switching DOCKERCOURSE_VM does not probe every time.
    cache = VM_CACHE / ("accelerator.json" if k.where == "host" else "accelerator-image.json")
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key and not refresh:
            _ACCEL[key] = Accelerator(saved["name"], saved["reason"])
            return _ACCEL[key]
    except (OSError, ValueError, KeyError):
        pass
    ok, why = probe_kvm(k, lesson=lesson)
    _ACCEL[key] = Accelerator("kvm" if ok else "tcg", why)
    VM_CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "name": _ACCEL[key].name, "reason": why}))
    return _ACCEL[key]
