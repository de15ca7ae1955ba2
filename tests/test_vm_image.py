"""The VM side from the course's VM image: QEMU, kernel and busybox come from a container.

The first test to need it builds dockercourse/vmkit:1 offline (mmdebstrap from Debian's packages:
about 2 minutes and 250 MB on a fresh machine); like every kit image it then stays. The VM boots
under TCG with DOCKERCOURSE_VM=image, so QEMU runs in the container even where the host has it.
"""
import time

import pytest
from docker.errors import NotFound

from helpers.measure import bench
from helpers.measure import charts
from helpers.measure import comparison
from helpers.course import images
from helpers.course import record
from helpers.measure import vm
from helpers.measure import vmkit
from helpers.measure import guest as guestlib
from helpers.course.images import KIT_LABEL, catalogue, ensure_images
from helpers.course.labels import LABEL
from helpers.labs.preflight import check_images

pytestmark = [pytest.mark.vm_image, pytest.mark.vm]


@pytest.fixture(scope="module")
def vmkit_image(client):
    """The VM image's tag, built offline here if it is not present."""
    began = time.perf_counter()
    how = ensure_images(client, names=["vmkit"], allow_pull=False)
    image = catalogue(optional=True)["vmkit"].ref
    print(f"\n{image}: {how[image]} in {time.perf_counter() - began:.1f} s, "
          f"{client.images.get(image).attrs['Size'] / 2**20:.0f} MiB")
    return image


@pytest.fixture
def image_side(monkeypatch, vmkit_image):
    monkeypatch.setenv("DOCKERCOURSE_VM", "image")
    return vmkit_image


def test_the_vm_image_is_optional_and_skipped_by_default(client, kit, monkeypatch):
    built = []
    monkeypatch.setattr(images, "build_offline", lambda c, img, **kw: built.append(img.name))
    monkeypatch.setattr(images, "pull", lambda c, img: built.append(img.name))
    entry = catalogue(optional=True)["vmkit"]
    assert entry.optional and entry.own and "vmkit" not in catalogue()
    report = ensure_images(client)
    assert entry.ref not in report and built == []
    assert "vmkit" not in check_images(client).text


def test_the_vm_image_is_the_course_own_and_carries_qemu(client, vmkit_image):
    labels = client.images.get(vmkit_image).labels
    assert labels[KIT_LABEL] == "vmkit"
    assert "the course's own image" in labels[f"{KIT_LABEL}.stands-for"]
    out = client.containers.run(vmkit_image, ["sh", "-c", "qemu-system-x86_64 --version; "
                                        "cat /vmkit/kernel-version; ls /vmkit/vmlinuz"],
                                remove=True, network_mode="none",
                                labels={LABEL: "07"}).decode()
    assert catalogue(optional=True)["vmkit"].version_expect in out
    assert client.images.get(vmkit_image).attrs["Size"] < 400 * 2**20
    assert images.main(["ensure", "--offline", "--name", "vmkit"]) == 0


def test_vm_boots_from_the_image_under_tcg(lesson, image_side):
    k = vm.kit(lesson=lesson)
    assert (k.where, k.image) == ("image", image_side)
    image_kernel = lesson.client.containers.run(image_side, ["cat", "/vmkit/kernel-version"],
                                                remove=True, network_mode="none",
                                                labels=lesson.labels).decode().strip()
    with vm.VM(f"echo {vm.READY}; uname -r; hostname", lesson=lesson, kit=k,
               accel="tcg") as guest:
        seconds = guest.wait_ready()
        guest.wait_done()
        memory = guest.memory()
        container = guest.container
        container.reload()
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and not host.get("Devices")
        # The lesson that asked, and the kit it belongs to; written into the lesson's record.
        assert container.labels[LABEL] == lesson.nn and container.labels[KIT_LABEL] == "vmkit"
        assert container.id in record.entries(lesson.client, "containers", lesson.nn)
    assert 0 < seconds < guest.deadline_s
    assert image_kernel in guest.output and "dockercourse-vm" in guest.output
    # Every figure through the VM: QEMU's map split, and the shim of its container beside it.
    assert memory.guest_ram_mib > 8 and memory.shim_mib > 0 and memory.pss_mib > 16
    with pytest.raises(NotFound):
        lesson.client.containers.get(container.id)


def test_container_vs_vm_on_the_image_side(lesson, image_side):
    small = {"containers": 1, "vms": 1, "memory_containers": 1, "memory_vms": 1, "warmup": 0}
    result = bench.container_vs_vm(quick=True, counts=small, lesson=lesson)
    m, v, c = result.machine, result.memory_vm, result.cpu_vm
    assert (m.qemu_ran, m.qemu_image) == ("image", image_side)
    assert v.guest_ram_mib > 8 and v.shim_mib > 0 and v.engine_share_mib is not None
    assert v.total_mib - v.kernel_mib == pytest.approx(v.measured_pss_mib)  # PSS+shim+share
    assert c.engine_cpu_s is not None and c.total_cpu_s.median > c.qemu_cpu_s.median
    assert result.boot_ids["vm"] != result.boot_ids["host"]
    text = bench.report(result)
    assert "in dockercourse/vmkit:1" in text and "shim n/a" not in text.split("VM ")[-1]
    shown = comparison.Shown(result, charts.dashboard(result), text.splitlines())
    assert "<img" in shown._repr_html_()


def test_without_qemu_or_the_image_both_ways_out_are_named(monkeypatch, lesson):
    monkeypatch.delenv("DOCKERCOURSE_VM", raising=False)
    monkeypatch.setattr(vmkit, "find_qemu", lambda: None)
    monkeypatch.setattr(vmkit, "ref", lambda name: "dockercourse/no-such-vmkit:0")
    with pytest.raises(vm.VmUnavailable) as err:
        vm.kit(lesson=lesson)
    message = str(err.value)
    assert "apt-get install qemu-system-x86" in message
    assert "python -m helpers.images ensure --name vmkit" in message
    assert not vm.available()


def test_console_lines_survive_any_chunking():
    chunks = [b"[ 0.1] boot", b"ing\r\nDOCKERCOURSE-", b"READY\r\n", b"\n", b"tail"]
    assert list(guestlib._split_lines(chunks)) == [b"[ 0.1] booting\r\n",
                                                b"DOCKERCOURSE-READY\r\n", b"\n", b"tail"]
