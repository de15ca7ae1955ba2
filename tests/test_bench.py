"""Container vs VM on equal terms: the ladder, the CPU bill, memory in parts, named results in
their units, the instructors' JSON, and the published and reference figures."""
import json

import pytest

from helpers.measure import bench
from helpers.measure import comparison
from helpers.measure import vm
from helpers.course.settings import DATA

needs_vm = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())
SMALL = {"containers": 2, "vms": 1, "memory_containers": 2, "memory_vms": 1, "warmup": 1}


@pytest.fixture(scope="module")
def result(lesson, kit):
    return bench.container_vs_vm(lesson, quick=True, counts=SMALL)


@needs_vm
def test_ladder_climbs_from_process_to_container_to_vm(result):
    L = result.startup
    assert L.process_s.median < L.container_bridge_s.median < L.vm_ready_s.median
    assert L.container_no_network_s.n == L.container_bridge_s.n == 2 and L.vm_ready_s.n == 1
    # The VM's three parts are its boot, split by the guest's own clock.
    assert L.vm_qemu_s.median + L.vm_kernel_s.median + L.vm_user_space_s.median == \
        pytest.approx(L.vm_ready_s.median)
    for s in (L.process_s, L.container_bridge_s, L.vm_ready_s):
        assert s.low_95 <= s.median <= s.high_95 and len(s.load_1m) == s.n


@needs_vm
def test_the_container_shares_the_hosts_boot_and_the_vm_has_its_own(result):
    ids, up = result.boot_ids, result.uptimes_s
    assert ids["container"] == ids["process"] == ids["host"]
    assert ids["vm"] not in (ids["host"], "?")
    assert float(up["vm"]) < float(up["container"])          # the VM booted seconds ago
    kernels = {side: bench.said(result.outputs[side], "kernel") for side in result.outputs}
    assert kernels["vm"] == result.machine.guest_kernel


@needs_vm
def test_cpu_bill_counts_the_engine_shim_runc_and_cgroup(result):
    c, v = result.cpu_container, result.cpu_vm
    assert result.machine.engine_visible                     # a Linux engine on this machine
    parts = [c.dockerd_cpu_s, c.containerd_cpu_s, c.shim_cpu_s, c.runc_cpu_s, c.cgroup_cpu_s]
    assert all(p is not None for p in parts)
    assert c.runc_cpu_s.median > 0 and c.cgroup_cpu_s.median > 0
    assert c.total_cpu_s.median == pytest.approx(sum(p.median for p in parts), rel=0.05)
    assert v.qemu_cpu_s.median > 0 and v.engine_cpu_s is None   # host QEMU: no engine behind
    assert result.headline.cpu_ratio == pytest.approx(
        v.total_cpu_s.median / c.total_cpu_s.median)


@needs_vm
def test_memory_in_disjoint_parts_with_units_and_na_not_zero(result):
    c, v = result.memory_container, result.memory_vm
    assert 0 < c.cgroup_mib < 64 and c.shim_mib > 0 and c.engine_share_mib is not None
    assert c.kernel_mib is not None and c.kernel_mib >= 0
    assert c.total_mib == pytest.approx(c.cgroup_mib + c.shim_mib + c.engine_share_mib +
                                        c.kernel_mib)
    assert 16 < v.guest_ram_mib <= vm.MEMORY_MIB
    assert v.guest_reported_used_mib < v.guest_ram_mib      # shown inside guest RAM
    tcg = result.machine.accelerator == "tcg"
    assert (v.tcg_code_cache_mib is not None) == tcg
    assert v.shim_mib is None and v.engine_share_mib is None  # host QEMU has none: n/a
    assert v.total_mib - v.kernel_mib == pytest.approx(v.measured_pss_mib)   # QEMU's PSS
    text = bench.report(result)
    assert "shim n/a" in text and "engine share n/a" in text   # never "0.0" for a missing part
    assert {a.against for a in result.agreements} == {"measured PSS", "MemAvailable drop"}
    assert result.failures == []                             # quick: printed, not enforced


@needs_vm
def test_quick_run_says_so(result):
    assert result.quick and result.counts["containers"] == 2
    assert result.notes[0].startswith("Quick run: 2 container starts and 1 VM boots")
    full = bench.ContainerVsVm(**{**result.__dict__, "quick": False})
    bad = [a for a in full.agreements if not a.ok]
    assert len(full.failures) == len(bad)      # the full run fails on every part that is off


@needs_vm
def test_json_has_every_documented_key_and_the_outputs(result, tmp_path):
    written = bench.write_outputs(result, tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    for key in data:
        assert key in bench.KEYS, f"{key} is not documented in --help"
    for key in ("startup", "cpu_container", "cpu_vm", "memory_container", "memory_vm",
                "headline", "agreements", "machine", "conditions_before", "date", "commit"):
        assert key in data
    assert data["startup"]["vm_ready_s"]["median"] > data["startup"]["process_s"]["median"]
    assert data["memory_vm"]["shim_mib"] is None and "low_95" in data["startup"]["process_s"]
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".csv" for p in written)
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert rows[0] == "what,figure,value,load_1m,steal_percent" and len(rows) > 5


@needs_vm
def test_notebook_part_is_one_call_with_a_figure(result, lesson, monkeypatch):
    monkeypatch.setattr(bench, "container_vs_vm", lambda lesson, quick, side: result)
    shown = comparison.container_vs_vm(lesson)
    assert shown.figure is not None and not shown.problem
    html = shown._repr_html_()
    assert "<img" in html and "guest RAM" in html


def test_without_a_vm_each_part_is_one_grey_line(lesson, monkeypatch):
    monkeypatch.setattr(bench, "vm_side",
                        lambda lesson=None: bench.VmSide(None, None, "QEMU is missing here"))
    shown = comparison.disk(lesson)
    assert shown.figure is None and "QEMU is missing here" in shown.problem
    assert "●" in shown._repr_html_() and "Traceback" not in shown._repr_html_()


@needs_vm
def test_disk_footprint_is_one_call(lesson):
    shown = comparison.disk(lesson, copies=4)
    d = shown.result
    assert shown.figure is not None and d.vm_kernel_mib > 1 and d.vm_initramfs_mib > 0.5
    assert d.vms_total_mib == pytest.approx(4 * (d.vm_kernel_mib + d.vm_initramfs_mib))
    assert d.containers_total_mib == pytest.approx(d.base_image_mib)   # no app: the base once


@needs_vm
def test_sampler_costs_under_one_percent_of_a_core(lesson):
    cost = bench.sampler_cost(lesson, bench.vm_side(lesson), hz=10, seconds=4)
    assert cost.watched == 2 and 8 <= cost.rate_hz <= 11
    assert cost.overhead_percent_of_core <= 1.0


def test_older_callers_still_label_with_their_notebook():
    class Owner:
        recorded = []

        def record(self, thing, tags=None, kind=None, nn=None):
            self.recorded.append((thing, kind, nn))

    class Client:
        lesson = Owner()

    labelled = bench.as_lesson(client=Client(), nn=5)
    assert labelled.labels == {"dockercourse.notebook": "05"}
    labelled.record("abc", kind="containers")
    assert Client.lesson.recorded == [("abc", "containers", "05")]
    with pytest.raises(TypeError, match="lesson="):
        bench.as_lesson()


def test_published_figures_state_sources_and_conditions():
    figures = {f["id"]: f for f in bench.published()["published"]["figures"]}
    for item in figures.values():
        assert item["source"] and item["unit"] and item["conditions"] and item["url"]
    linpack = figures["felter-linpack-kvm"]
    assert linpack["value"] == -17 and "without tuning" in linpack["what"]
    boot = figures["firecracker-boot"]
    assert boot["bound"] == "upper" and "KVM" in boot["conditions"]
    assert "Firecracker-tuned kernel" in boot["quote"]


def test_reference_run_records_when_where_and_how_busy():
    data = json.loads((DATA / "bench" / "reference.json").read_text())
    assert data["date"][:4] >= "2025" and data["commit"]
    assert data["machine"]["engine_version"] and data["machine"]["accelerator"] in ("kvm", "tcg")
    assert data["conditions_before"]["load_1m"] is not None
    assert data["headline"]["vm_ready_median_s"] > data["headline"]["container_start_median_s"]
    assert data["startup"]["container_bridge_s"]["n"] >= 5


@needs_vm
def test_instructors_command_writes_json(tmp_path, lesson, kit, capsys):
    assert bench.main(["--quick", "--json", str(tmp_path / "b.json")], lesson=lesson) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["headline"]["vm_ready_median_s"] > data["headline"]["container_start_median_s"]
    assert (tmp_path / "dashboard.png").exists()
    out = capsys.readouterr().out
    assert "start-up, median [95% interval]" in out and "Quick run" in out


@needs_vm
def test_density_stops_at_the_budget_and_leaves_nothing(lesson):
    d = bench.density(lesson, bench.vm_side(lesson), budget_mib=40, limit_s=20)
    assert d.budget_mib == 40 and d.ksm_on in (True, False, None)
    for count, why in ((d.containers, d.containers_stopped_by), (d.vms, d.vms_stopped_by)):
        assert why in ("the 40 MiB budget", "20 s") or why.startswith("a refusal")
    assert d.containers >= 1 and d.vms <= 2     # a VM alone takes far more than 40 MiB
    density_cmd = f"echo {vm.READY}; echo {vm.DONE}; exec sleep 3600"
    left = lesson.client.containers.list(all=True, filters={"label": "dockercourse.notebook=99"})
    assert not [c for c in left if c.attrs["Config"]["Cmd"][-1] == density_cmd]
