"""Container vs VM on equal terms: the ladder, the CPU bill, memory in parts, named results in
their units, the instructors' JSON, and the published and reference figures."""
import json

import pytest

from helpers.course.settings import DATA
from helpers.measure import bench, charts, comparison, machine, reference, report, results, vm
from helpers.measure.stats import Conditions, summarize

needs_vm = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())
SMALL = {"containers": 2, "vms": 1, "memory_containers": 2, "memory_vms": 1, "warmup": 1}


@pytest.fixture(scope="module")
def result(lesson, kit):
    return bench.container_vs_vm(quick=True, counts=SMALL, lesson=lesson)


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
    text = report.report(result)
    assert "shim n/a" in text and "engine share n/a" in text   # never "0.0" for a missing part
    assert {a.against for a in result.agreements} == {"measured PSS", "MemAvailable drop"}
    assert result.failures == []                             # quick: printed, not enforced


@needs_vm
def test_quick_run_says_so(result):
    assert result.quick and result.counts.containers == 2
    assert result.notes[0].startswith("Quick run: 2 container starts and 1 VM boots")
    full = results.ContainerVsVm(**{**result.__dict__, "quick": False})
    bad = [a for a in full.agreements if not a.ok]
    assert len(full.failures) == len(bad)      # the full run fails on every part that is off


@needs_vm
def test_json_has_every_documented_key_and_the_outputs(result, tmp_path):
    written = report.write_outputs(result, tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    for key in data:
        assert key in report.KEYS, f"{key} is not documented in --help"
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
    shown = comparison.container_vs_vm(lesson=lesson)
    assert shown.figure is not None and not shown.problem
    html = shown._repr_html_()
    assert "<img" in html and "guest RAM" in html


def test_without_a_vm_each_part_is_one_grey_line(lesson, monkeypatch):
    monkeypatch.setattr(comparison, "vm_side",
                        lambda lesson=None: machine.VmSide(None, None, "QEMU is missing here"))
    shown = comparison.disk(lesson=lesson)
    assert shown.figure is None and "QEMU is missing here" in shown.problem
    assert "●" in shown._repr_html_() and "Traceback" not in shown._repr_html_()


@needs_vm
def test_disk_footprint_is_one_call(lesson):
    shown = comparison.disk(copies=4, lesson=lesson)
    d = shown.result
    assert shown.figure is not None and d.vm_kernel_mib > 1 and d.vm_initramfs_mib > 0.5
    assert d.vms_total_mib == pytest.approx(4 * (d.vm_kernel_mib + d.vm_initramfs_mib))
    assert d.containers_total_mib == pytest.approx(d.base_image_mib)   # no app: the base once


@needs_vm
def test_sampler_costs_under_one_percent_of_a_core(lesson):
    cost = bench.sampler_cost(machine.vm_side(lesson=lesson), hz=10, seconds=4, lesson=lesson)
    assert cost.watched == 2 and 8 <= cost.rate_hz <= 11
    assert cost.overhead_percent_of_core <= 1.0


def test_published_figures_state_sources_and_conditions():
    figures = {f["id"]: f for f in reference.published()["figures"]}
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
    d = bench.density(machine.vm_side(lesson=lesson), budget_mib=40, limit_s=20, lesson=lesson)
    assert d.budget_mib == 40 and d.ksm_on in (True, False, None)
    for count, why in ((d.containers, d.containers_stopped_by), (d.vms, d.vms_stopped_by)):
        assert why in ("the 40 MiB budget", "20 s") or why.startswith("a refusal")
    assert d.containers >= 1 and d.vms <= 2     # a VM alone takes far more than 40 MiB
    density_cmd = f"echo {vm.READY}; echo {vm.DONE}; exec sleep 3600"
    left = lesson.client.containers.list(all=True, filters={"label": "dockercourse.notebook=99"})
    assert not [c for c in left if c.attrs["Config"]["Cmd"][-1] == density_cmd]


# ---------------------------------------------------------------- fast tier: fixed figures

CALM = Conditions(load_1m=0.5, steal_percent=0.0)


def _summary(*values):
    return summarize(values, [CALM] * len(values))


def _machine(accel: str = "kvm", qemu_ran: str = "host") -> machine.Machine:
    return machine.Machine("AMD EPYC 7B13", 2, 7.8, "Debian GNU/Linux 12 (bookworm)", "6.1.0",
                           "26.1.5", "classic", "3.11.7", accel, "a reason", "7.2.22",
                           "6.1.0-56-amd64", qemu_ran, "", False, True)


def _container_memory(shim=4.75, share=0.5, kernel=0.25, processes=0.5):
    return results.ContainerMemory.of_parts(3, 0.5, shim, share, kernel, processes, 6.0, -2.0,
                                            "fixed")


def _vm_memory(tcg=38.0, shim=None, share=None, pss=None, drop=160.0):
    """One VM's parts; QEMU's PSS is its four parts added, as its map splits it."""
    pss = 98.0 + (tcg or 0.0) + 20.0 + 8.0 if pss is None else pss
    return results.VmMemoryParts.of_parts(1, 98.0, 20.5, tcg, 20.0, 8.0, None, shim, share,
                                          1.0, pss, drop, 3.0, "fixed")


def _result(accel: str = "kvm", quick: bool = True, **memory) -> results.ContainerVsVm:
    """A whole comparison from fixed figures, as `bench.container_vs_vm` would return it."""
    ladder = results.Ladder(_summary(0.002, 0.003), _summary(0.20, 0.22), _summary(0.30, 0.32),
                            _summary(5.0, 5.4), _summary(0.5, 0.6), _summary(2.5, 2.6),
                            _summary(2.0, 2.2))
    cc = results.ContainerCpu(_summary(0.05, 0.06), _summary(0.02, 0.03), _summary(0.01, 0.01),
                              _summary(0.02, 0.02), _summary(0.01, 0.01), _summary(0.11, 0.13),
                              "fixed")
    vc = results.VmCpu(_summary(5.0, 5.5), None, _summary(5.0, 5.5), "fixed")
    cm = _container_memory()
    vmem = _vm_memory(tcg=None if accel == "kvm" else 38.0, **memory)
    return results.ContainerVsVm(
        quick, results.QUICK, _machine(accel), CALM, CALM, ladder, cc, vc, cm, vmem,
        results.agreements(cm, vmem), results.headline(ladder, cc, vc, cm, vmem),
        {"host": "aaaa", "process": "aaaa", "container": "aaaa", "vm": "bbbb"},
        {"host": "100.0", "process": "100.0", "container": "100.0", "vm": "3.1"},
        {"process": [], "container": [], "vm": []}, ["a note"], published={"figures": []},
        date="2025-01-01T00:00:00+00:00", commit="abc1234")


def test_container_memory_adds_the_parts_that_exist_and_keeps_na():
    m = _container_memory()
    assert m.total_mib == pytest.approx(0.5 + 4.75 + 0.5 + 0.25)
    assert m.measured_pss_mib == pytest.approx(0.5 + 4.75 + 0.5)    # processes + shim + share
    # Docker Desktop: no shim, no daemons, no kernel part in sight. They stay None (n/a), the
    # total is the cgroup alone, and there is no PSS to check against.
    hidden = _container_memory(shim=None, share=None, kernel=None, processes=None)
    assert (hidden.shim_mib, hidden.engine_share_mib, hidden.kernel_mib) == (None, None, None)
    assert hidden.total_mib == 0.5 and hidden.measured_pss_mib is None


def test_vm_memory_parts_add_up_on_every_side_and_accelerator():
    host_kvm = _vm_memory(tcg=None)
    assert host_kvm.tcg_code_cache_mib is None                  # KVM has no TCG code cache
    assert host_kvm.total_mib == pytest.approx(98 + 20 + 8 + 1.0)   # QEMU's parts + kernel
    assert host_kvm.measured_pss_mib == pytest.approx(126.0)
    tcg = _vm_memory(tcg=38.0)
    assert tcg.total_mib == pytest.approx(98 + 38 + 20 + 8 + 1.0)
    image = _vm_memory(shim=5.0, share=2.0)                     # QEMU in a container
    assert image.total_mib == pytest.approx(164.0 + 5.0 + 2.0 + 1.0)
    assert image.measured_pss_mib == pytest.approx(164.0 + 5.0 + 2.0)
    # With several VMs the parts are medians: the total is what the chart stacks, and the
    # check against the median PSS is a real one.
    spread = _vm_memory(tcg=38.0, pss=170.0)
    assert spread.total_mib == pytest.approx(165.0) and spread.measured_pss_mib == 170.0
    # QEMU's map unreadable: its memory unsplit, the four parts n/a, no PSS to check against.
    blind = results.VmMemoryParts.of_parts(1, None, None, None, None, None, 150.0, None, None,
                                           1.0, None, 160.0, 0.0, "its resident set")
    assert blind.total_mib == pytest.approx(151.0) and blind.measured_pss_mib is None
    # The guest's own reported use lies inside guest RAM: it is never added.
    assert host_kvm.guest_reported_used_mib < host_kvm.guest_ram_mib
    assert _vm_memory(tcg=None).total_mib == host_kvm.total_mib


def test_agreements_leave_the_kernel_out_of_pss_and_fail_far_parts():
    found = {(a.side, a.against): a for a in
             results.agreements(_container_memory(), _vm_memory(tcg=None))}
    pss = found[("container", "measured PSS")]
    assert pss.parts_mib == pytest.approx(5.75) and pss.measured_mib == pytest.approx(5.75)
    assert pss.ok and pss.off_percent == 0
    drop = found[("container", "MemAvailable drop")]            # 6.0 parts vs 6.0 lost
    assert drop.ok and drop.parts_mib == pytest.approx(6.0)
    vm_drop = found[("VM", "MemAvailable drop")]                # 127 parts vs 160 lost
    assert vm_drop.off_percent == pytest.approx(20.6) and not vm_drop.ok
    near = results.agreements(_container_memory(), _vm_memory(tcg=38.0))
    assert all(a.ok for a in near if a.side == "VM")             # 165 vs 160: 3.1% off
    far = results.agreements(_container_memory(shim=20.0), _vm_memory())
    assert not next(a for a in far if a.side == "container" and a.against.startswith("Mem")).ok
    # No PSS to check against (Docker Desktop): that check is left out, not passed.
    hidden = results.agreements(_container_memory(shim=None, processes=None), _vm_memory())
    assert ("container", "measured PSS") not in {(a.side, a.against) for a in hidden}


def test_full_run_fails_on_every_part_that_is_off():
    full = _result(quick=False, drop=300.0)                     # parts far from the drop
    off = [a for a in full.agreements if not a.ok]
    assert off and len(full.failures) == len(off)
    assert "VM parts" in full.failures[0] and "% off" in full.failures[0]
    assert _result(quick=True, drop=300.0).failures == []       # quick: printed, not enforced


def test_headline_compares_like_with_like_and_says_na_for_nothing():
    r = _result()
    assert r.headline.memory_ratio == pytest.approx(r.memory_vm.total_mib /
                                                    r.memory_container.total_mib)
    assert r.headline.start_ratio == pytest.approx(5.2 / 0.31)
    zero = results.headline(r.startup, r.cpu_container, r.cpu_vm,
                            results.ContainerMemory.of_parts(1, 0.0, None, None, None, None,
                                                             0.0, 0.0, "x"), r.memory_vm)
    assert zero.memory_ratio != zero.memory_ratio                 # nan: no ratio to a zero
    assert "memory (all parts) n/a" in report.report(
        results.ContainerVsVm(**{**r.__dict__, "headline": zero}))


def test_report_names_every_part_with_na_never_zero():
    text = report.report(_result("kvm"))
    memory = text.split("memory per instance (MiB, 3 containers / 1 VMs running):")[1]
    assert "container  6.0 = cgroup 0.50 + shim 4.8 + engine share 0.5 + kernel 0.2" in memory
    vm_line = next(l for l in memory.splitlines() if l.startswith("  VM "))
    assert "TCG code n/a" in vm_line and "shim n/a" in vm_line and "engine share n/a" in vm_line
    assert "guest RAM 98.0 (guest says 20.5 used)" in vm_line and " 0.0 " not in vm_line
    assert "TCG code 38.0" in report.report(_result("tcg"))
    assert "accelerator  kvm (a reason)" in text and "AMD EPYC 7B13, 2 cores" in text
    assert "run          quick: {'containers': 5, 'vms': 2" in text


def test_json_keys_are_documented_and_missing_parts_are_null(tmp_path):
    data = report.to_json(_result("kvm"))
    for key in data:
        assert key in report.KEYS, f"{key} is not documented in --help"
    for key in data["memory_vm"]:
        assert key in report.KEYS, f"memory_vm.{key} is not documented in --help"
    assert data["memory_vm"]["tcg_code_cache_mib"] is None and data["schema"] == 2
    assert data["counts"] == {"containers": 5, "vms": 2, "memory_containers": 3,
                              "memory_vms": 1, "warmup": 1, "sampler_s": 0}
    assert json.loads(json.dumps(data))["startup"]["vm_ready_s"]["n"] == 2


def test_caption_says_which_machine_and_accelerator_with_units():
    text = charts.caption(_machine("tcg"))
    assert "AMD EPYC 7B13, 2 cores, 7.8 GiB, Debian GNU/Linux 12" in text
    assert "Docker Engine 26.1.5" in text and "QEMU 7.2.22 microvm" in text
    assert "TCG software emulation (no KVM)" in text
    assert "KVM" in charts.caption(_machine("kvm")) and "emulation" not in \
        charts.caption(_machine("kvm"))
    image = charts.caption(machine.Machine(**{**_machine("tcg").__dict__, "qemu_ran": "image",
                                              "qemu_image": "dockercourse/vmkit:1"}))
    assert "in a container of dockercourse/vmkit:1" in image
    # The reference run's machine (a dict from reference.json) captions the same way.
    assert charts.caption(reference.reference_run()["machine"]).startswith("Measured on ")
    fig, _ = charts.figure("t", _machine("kvm"))
    assert text.replace("TCG software emulation (no KVM)", "KVM") in \
        [t.get_text() for t in fig.texts]


def test_memory_chart_lists_every_part_and_na_parts_are_not_drawn():
    fig, ax = charts.figure("memory", _machine("kvm"))
    r = _result("kvm")
    charts.memory_parts(ax, r.memory_container, r.memory_vm, "KVM")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for part in ("container: its cgroup (docker stats)", "container: its containerd shim (PSS)",
                 "container: engine daemons' growth ÷ N (PSS)",
                 "container: kernel memory outside its cgroup", "VM: guest RAM QEMU touched",
                 "VM: QEMU heap and stacks", "VM: QEMU binary and libraries",
                 "VM: kernel memory for it (page tables, stacks)"):
        assert part in legend
    for missing in ("VM: TCG code cache (KVM has none): n/a",
                    "VM: its container's shim (PSS): n/a",
                    "VM: engine daemons' growth ÷ N (PSS): n/a"):
        assert missing in legend
    assert "host lost (MemAvailable drop ÷ N)" in legend
    assert ax.get_ylabel() == "MiB per instance"
    # The stacked bars hold only parts that exist: the VM's top is its total, not a zero part.
    tops = sorted(round(p.get_y() + p.get_height(), 3) for p in ax.patches
                  if p.get_height() > 0 and p.get_fill())
    assert round(r.memory_vm.total_mib, 3) in tops and round(r.memory_container.total_mib, 3) in tops


def test_dashboard_and_notebook_lines_from_fixed_figures():
    r = _result("tcg")
    fig = charts.dashboard(r, reference=reference.reference_run())
    assert charts.png(fig).startswith(b"\x89PNG")
    lines = comparison._memory_lines(r.memory_container, r.memory_vm)
    assert lines[0].startswith("memory per container, MiB (3 running): 6.0 = cgroup 0.50")
    assert "kernel 0.2" in lines[0] and "TCG code 38.0" in lines[1] and "shim n/a" in lines[1]


def test_charts_and_writers_stand_apart_from_the_scenarios():
    from pathlib import Path
    import re
    folder = Path(bench.__file__).parent
    for name in ("charts", "report", "results", "machine", "reference", "comparison"):
        text = (folder / f"{name}.py").read_text()
        imports_bench = re.search(r"^from helpers\.measure\.bench import|"
                                  r"^from helpers\.measure import .*\bbench\b", text, re.M)
        assert (name == "comparison") == bool(imports_bench), name
