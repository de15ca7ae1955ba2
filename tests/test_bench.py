"""Container vs VM figures: right units, sane order, and the instructors' JSON."""
import json

import pytest

from helpers import bench, vm

pytestmark = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())


@pytest.fixture(scope="module")
def result(client, kit):
    return bench.container_vs_vm(client, runs=2, vm_runs=1, warmup=1)


def test_container_starts_faster_than_the_vm_boots(result):
    assert 0 < result["container_start_median_s"] < result["vm_boot_median_s"]
    assert result["accelerator"] in ("kvm", "tcg")


def test_memory_each_side_in_mib(result):
    assert 0 < result["container_memory_mib"] < 64        # a shell and a sleep
    assert 16 < result["vm_memory_mib"] < 4096             # QEMU with a 128 MiB guest
    assert result["container"]["start_s"]["n"] == 2


def test_same_workload_sees_different_kernels(result):
    c_kernel = [l for l in result["container"]["output"] if l.startswith("kernel:")]
    v_kernel = [l for l in result["vm"]["output"] if l.startswith("kernel:")]
    assert c_kernel and v_kernel
    assert c_kernel[0] != v_kernel[0] or vm.kit().kernel_version in c_kernel[0]


def test_outputs_have_the_promised_fields(result, tmp_path):
    written = bench.write_outputs(result, tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    for key in ("container_start_median_s", "vm_boot_median_s", "accelerator",
                "container_memory_mib", "vm_memory_mib"):
        assert key in data
    for key in ("cpu_model", "cores", "memory_gib", "os", "engine_version", "accelerator"):
        assert key in data["machine"]
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".csv" for p in written)


def test_published_figures_cite_their_sources():
    for item in bench.published()["published"]["figures"]:
        assert item["source"] and item["unit"] and item["value"] > 0


def test_instructors_command_writes_json(tmp_path, client, kit):
    assert bench.main(["--quick", "--json", str(tmp_path / "b.json")]) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["vm_boot_median_s"] > data["container_start_median_s"] > 0
    assert (tmp_path / "dashboard.png").exists()
