"""The course's VM: a real kernel boots the busybox initramfs and says it is ready, no wait
lasts minutes, and every figure is read through the VM."""
import gzip
import os
import signal
import time

import psutil
import pytest

from helpers.measure import guest as guestlib
from helpers.measure import vm
from helpers.measure import vmkit

needs_vm = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())


@needs_vm
def test_initramfs_is_a_newc_archive_with_init_and_busybox():
    data = gzip.decompress(vm.build_initramfs().read_bytes())
    assert data.startswith(b"070701")
    assert b"init\0" in data and b"bin/busybox\0" in data and b"TRAILER!!!" in data
    assert b"DOCKERCOURSE-UPTIME" in data      # init reports the guest's uptime first


def test_kvm_reasons_are_named_without_booting(tmp_path):
    dev, modules = tmp_path / "kvm", tmp_path / "module"
    modules.mkdir()
    assert "no /dev/kvm" in vmkit.kvm_unusable_reason(dev, modules)
    dev.write_text("")
    assert vmkit.kvm_unusable_reason(dev, modules) == ""            # only a probe can tell
    (modules / "kvm_pvm").mkdir()
    assert "nested hypervisor (kvm_pvm)" in vmkit.kvm_unusable_reason(dev, modules)
    (modules / "kvm_amd").mkdir()
    assert vmkit.kvm_unusable_reason(dev, modules) == ""


def test_deadline_grows_with_guests_at_once_and_stays_in_a_cell(monkeypatch):
    monkeypatch.setattr(guestlib, "measured_boot_s", lambda accel, where: 2.0)
    assert guestlib.deadline_for("tcg", "host", 1) == 10.0       # never below 10 s
    assert guestlib.deadline_for("tcg", "host", 3) == 18.0       # 3 × 2 s × 3 guests
    monkeypatch.setattr(guestlib, "measured_boot_s", lambda accel, where: 30.0)
    assert guestlib.deadline_for("tcg", "host", 1) == 25.0       # two tries fit 60 s


@needs_vm
def test_accelerator_is_named_with_a_reason(lesson):
    accel = vm.accelerator(lesson=lesson)
    assert accel.name in ("kvm", "tcg") and accel.reason
    assert accel.name.upper() in accel.label
    if vmkit.kvm_unusable_reason():       # this machine says why at once: no probe guest
        assert accel.reason == vmkit.kvm_unusable_reason()


@needs_vm
@pytest.mark.vm
def test_vm_boots_under_tcg_and_every_figure_comes_through_it():
    with vm.VM(f"echo {vm.READY}; uname -r; hostname", lesson=None, accel="tcg") as guest:
        seconds = guest.wait_ready()
        guest.wait_done()
        pid = guest.pid
        memory, cpu = guest.memory(), guest.cpu_s()
        boot = guest.boot_times()
    assert 0 < seconds < guest.deadline_s
    assert guest.kernel_version in guest.output and "dockercourse-vm" in guest.output
    assert memory.guest_ram_mib > 8 and memory.tcg_code_cache_mib > 0 and memory.shim_mib is None
    assert memory.total_mib == pytest.approx(memory.pss_mib)
    assert cpu > 0.5                              # TCG emulates every instruction of the boot
    assert boot.qemu_s + boot.kernel_s + boot.user_space_s == pytest.approx(seconds)
    assert boot.kernel_s > 0.1
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@needs_vm
@pytest.mark.vm
def test_a_guest_killed_before_its_ready_marker_is_started_once_more():
    guest = vm.VM(f"echo {vm.READY}", lesson=None, accel="tcg").start()
    try:
        first = guest.pid
        os.kill(first, signal.SIGKILL)         # dies before it could print anything
        seconds = guest.wait_ready()
        assert guest.pid != first and 0 < seconds < guest.deadline_s
        assert guest.notes == ["VM (TCG): QEMU stopped before the guest's ready marker; it was "
                               "killed and started once more."]
    finally:
        guest.stop()


@needs_vm
@pytest.mark.vm
def test_a_silent_guest_is_killed_twice_then_a_clear_message():
    began = time.monotonic()
    guest = vm.VM(f"echo {vm.READY}", lesson=None, accel="tcg", ready_deadline_s=0.5).start()
    with pytest.raises(vm.GuestTimeout) as err:
        guest.wait_ready()
    assert time.monotonic() - began < 10            # two short tries, not minutes
    message = str(err.value)
    assert "no ready marker within 0.5 s, twice" in message     # the deadline, as set
    assert "did not boot" in message and "twice" in message and "run the cell again" in message
    assert len(guest.notes) == 1 and "started once more" in guest.notes[0]
    assert not psutil.pid_exists(guest.pid) or \
        psutil.Process(guest.pid).status() == psutil.STATUS_ZOMBIE


@needs_vm
@pytest.mark.vm
def test_qemu_memory_unreadable_gives_its_resident_set_said_so(monkeypatch):
    def denied(pid, mib):
        raise psutil.AccessDenied(pid)
    monkeypatch.setattr(guestlib, "qemu_memory", denied)    # as for QEMU of another user
    with vm.VM(f"echo {vm.READY}", lesson=None, accel="tcg") as guest:
        guest.wait_ready()
        memory = guest.memory()
    assert memory.guest_ram_mib is None and memory.pss_mib is None
    assert memory.unsplit_mib > 16 and "not split" in memory.source
    assert memory.total_mib == memory.unsplit_mib


@needs_vm
def test_bare_qemu_command_is_microvm_with_the_same_kernel_and_initramfs(lesson):
    k = vm.kit(lesson=lesson)
    bare, course = vm.bare_command(k), vm.command(k, "tcg")
    assert bare[bare.index("-M") + 1].startswith("microvm")
    for flag in ("-kernel", "-initrd", "-M"):
        assert bare[bare.index(flag) + 1] == course[course.index(flag) + 1]
