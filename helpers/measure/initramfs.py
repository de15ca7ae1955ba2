"""The guest's whole user space (taught in 07): a newc cpio archive the kernel unpacks into its
first root file system, holding the same static busybox the `busybox:1.35` image holds, an
`init` script, and the virtio disk modules a VM with a disk loads.

`from_image_files` makes one of an image's own files instead, so that the guest runs that image's
programs on its own kernel.

`init` prints the guest's /proc/uptime as soon as /proc is mounted (the kernel's own boot time,
by the guest's clock), then runs the workload passed on the kernel command line, then stays up.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Callable

READY = "DOCKERCOURSE-READY"
DONE = "DOCKERCOURSE-DONE"
UPTIME = "DOCKERCOURSE-UPTIME"   # init's first line: the guest's uptime when init started

# An image whose files become a guest's initramfs is unpacked into the guest's 128 MiB of RAM.
MAX_IMAGE_BYTES = 64 * 2**20

# The modules a VM with a virtio-pci disk loads (Debian's kernel builds them as modules).
DISK_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                "virtio_pci", "virtio_blk")

INIT = r"""#!/bin/sh
# The guest's whole user space: mount the kernel's file systems, run the workload, stay up.
mount -t proc proc /proc
echo "DOCKERCOURSE-UPTIME $(cat /proc/uptime)"
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


def _write(cpio: _Cpio, out: Path) -> Path:
    """The archive, gzipped, written to `out` whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two notebooks building at once never mix their bytes.
    part = out.with_name(f"{out.name}.{os.getpid()}.part")
    part.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    part.replace(out)
    return out


def applets(busybox: Path) -> list[str]:
    """Every applet path busybox provides (`busybox --list-full`)."""
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def build(version: str, moddir: Path, busybox: Path, applet_paths: list[str], folder: Path,
          name: str = "", cached: bool = True) -> Path:
    """The gzipped initramfs for kernel `version`, in `folder`; reused while busybox, init and
    the kernel are the same (unless `cached` is False: then always made afresh)."""
    dep = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path = line.split(":")[0]
        dep[Path(path).name.removesuffix(".ko")] = moddir / path
    blob = busybox.read_bytes()
    key = hashlib.sha256(blob + INIT.encode() + version.encode() +
                         ",".join(DISK_MODULES).encode()).hexdigest()[:12]
    out = Path(folder) / f"initramfs-{name}{version}-{key}.cpio.gz"
    if out.exists() and cached:
        return out
    cpio = _Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc",
              "root", "lib", "lib/modules", "mnt"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)  # init needs a console before devtmpfs is mounted
    cpio.file("bin/busybox", blob)
    for applet in applet_paths:
        if applet != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    cpio.file("init", INIT.encode())
    cpio.file("etc/hostname", b"dockercourse-vm\n", 0o644)
    for module in DISK_MODULES:
        if module in dep:
            cpio.file(f"lib/modules/{module}.ko", dep[module].read_bytes(), 0o644)
    return _write(cpio, out)


def from_image_files(export: Callable[[], bytes], folder: Path, name: str) -> Path:
    """The gzipped initramfs made of an image's own files (`export()` returns them as the tar
    `docker export` writes), with the course's `init` and a console added: the guest then runs
    that image's programs on its own kernel. Hard links become symbolic links; what the engine
    adds to every container (/.dockerenv, /dev) is left out. Reused while `name` and init are
    the same. The image needs a static `/bin/sh` (busybox is one)."""
    key = hashlib.sha256(INIT.encode()).hexdigest()[:12]
    out = Path(folder) / f"initramfs-{name}-{key}.cpio.gz"
    if out.exists():
        return out
    data = export()
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"The image's files take {len(data) / 2**20:.0f} MiB; the guest unpacks "
                         f"them into its RAM, which fits {MAX_IMAGE_BYTES // 2**20} MiB at most.")
    cpio, made = _Cpio(), set()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            path = member.name.removeprefix("./").strip("/")
            if not path or ".." in path.split("/") or path in (".dockerenv", "init", "dev") \
                    or path.startswith("dev/"):
                continue
            mode = member.mode & 0o7777
            if member.isdir():
                cpio._entry(path, stat.S_IFDIR | mode)
            elif member.isreg():
                cpio._entry(path, stat.S_IFREG | mode, tar.extractfile(member).read())
            elif member.issym():
                cpio.symlink(path, member.linkname)
            elif member.islnk():
                cpio.symlink(path, "/" + member.linkname.removeprefix("./").lstrip("/"))
            else:
                continue
            made.add(path)
    if "bin/sh" not in made:
        raise ValueError("The image has no /bin/sh, which the guest's init needs.")
    for d in ("dev", "proc", "sys", "tmp"):
        if d not in made:
            cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", INIT.encode())
    return _write(cpio, out)
