"""Notebook 07's live panel: both sides at once, a chart, and a table whose boot IDs show the
shared kernel; the prediction widget reads its result."""
import pytest

from helpers.measure import bench, machine
from helpers.labs import live_panel
from helpers.measure import vm
from helpers.exercises.nb07 import prediction

needs_vm = pytest.mark.skipif(not vm.available(), reason=vm.missing_advice())


@needs_vm
@pytest.mark.vm
def test_run_both_shows_whose_kernel_each_side_booted(lesson):
    panel = live_panel.LivePanel(lesson=lesson)
    guess = prediction(panel)
    assert guess.reveal() is None                      # nothing measured yet
    result = panel.run()
    assert result is not None, panel.status.value
    assert result.vm_ready_s > result.container_start_s > 0
    table = panel.table.value
    assert table.count("(the host&#x27;s)") == 1 and table.count("(its own)") == 1
    assert bench.said(result.container_output, "boot_id") == result.host_boot_id
    assert result.vm_memory.total_mib > 16
    assert bytes(panel.picture.value).startswith(b"\x89PNG")
    assert guess.reveal() == pytest.approx(result.ratio)


def test_without_a_vm_the_panel_says_so_in_grey(lesson, monkeypatch):
    monkeypatch.setattr(live_panel, "vm_side",
                        lambda lesson=None: machine.VmSide(None, None, "QEMU is missing here"))
    panel = live_panel.LivePanel(lesson=lesson)
    assert panel.run() is None
    assert "QEMU is missing here" in panel.status.value and "●" in panel.status.value
