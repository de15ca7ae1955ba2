"""The course's VM: a real kernel boots the busybox initramfs and says it is ready."""
import gzip
import os

import pytest

from helpers import vm

pytestmark = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())


def test_initramfs_is_a_newc_archive_with_init_and_busybox():
    data = gzip.decompress(vm.build_initramfs().read_bytes())
    assert data.startswith(b"070701")
    assert b"init\0" in data and b"bin/busybox\0" in data and b"TRAILER!!!" in data


def test_vm_boots_under_tcg_and_runs_the_workload():
    with vm.VM(f"echo {vm.READY}; uname -r; hostname", accel="tcg") as guest:
        seconds = guest.wait_ready(180)
        guest.wait_done(60)
        pid = guest.pid
        assert guest.process().memory_full_info().rss > 16 * 2**20
    assert 0 < seconds < 180
    assert vm.kit().kernel_version in guest.output
    assert "dockercourse-vm" in guest.output
    assert not os.path.exists(f"/proc/{pid}") or guest.proc.poll() is not None


def test_accelerator_is_named_with_a_reason():
    accel = vm.accelerator()
    assert accel.name in ("kvm", "tcg") and accel.reason
    assert accel.name.upper() in accel.label


def test_bare_qemu_command_is_microvm_with_the_same_kernel_and_initramfs():
    k = vm.kit()
    bare, course = vm.bare_command(k), vm.command(k, "tcg")
    assert bare[bare.index("-M") + 1].startswith("microvm")
    for flag in ("-kernel", "-initrd", "-M"):
        assert bare[bare.index(flag) + 1] == course[course.index(flag) + 1]
