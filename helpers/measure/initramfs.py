"""The guest's whole user space (taught in 07): a newc cpio archive the kernel unpacks into its
first root file system, holding the same static busybox the `busybox:1.35` image holds, an
`init` script, and the virtio disk modules a VM with a disk loads.

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
from pathlib import Path

READY = "DOCKERCOURSE-READY"
DONE = "DOCKERCOURSE-DONE"
UPTIME = "DOCKERCOURSE-UPTIME"   # init's first line: the guest's uptime when init started

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
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two notebooks building at once never mix their bytes.
    part = out.with_name(f"{out.name}.{os.getpid()}.part")
    part.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    part.replace(out)
    return out
