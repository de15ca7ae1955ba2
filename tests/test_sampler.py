"""The sampler, /proc and cgroup readers, the engine's stats read the CLI way, start latency."""
import os
import time

import pytest

from docker.errors import NotFound

from helpers.measure import sampler as measure
from helpers.course import record

# A QEMU memory map cut down to the kinds of mapping it has (sizes and PSS in kB).
SMAPS = """\
5600aa000000-5600aa59b000 r-xp 00000000 fe:01 123  /usr/bin/qemu-system-x86_64
Rss:                5136 kB
Pss:                5136 kB
5600ab000000-5600ab690000 rw-p 00000000 00:00 0    [heap]
Rss:                3736 kB
Pss:                3736 kB
7f0000000000-7f0008000000 rw-p 00000000 00:00 0
Rss:              100352 kB
Pss:              100352 kB
7f0010000000-7f004ffff000 rwxp 00000000 00:00 0
Rss:               36864 kB
Pss:               36864 kB
7f0050000000-7f00507d9000 rw-p 00000000 00:00 0
Rss:                8036 kB
Pss:                8036 kB
7f0060000000-7f00601c7000 r--p 00000000 fe:01 456  /usr/lib/x86_64-linux-gnu/libcapstone.so.4
Rss:                1820 kB
Pss:                 910 kB
"""


def test_qemu_map_splits_into_disjoint_parts_that_add_up():
    q = measure.split_smaps(SMAPS, guest_memory_mib=128)
    assert q.guest_ram_mib == 98.0                       # the 128 MiB anonymous mapping
    assert q.tcg_code_cache_mib == 36.0                  # the executable anonymous one
    assert q.binary_mib == pytest.approx((5136 + 910) / 1024)
    assert q.heap_mib == pytest.approx((3736 + 8036) / 1024)
    assert q.guest_ram_mib + q.tcg_code_cache_mib + q.heap_mib + q.binary_mib == \
        pytest.approx(q.pss_mib)


def test_without_tcg_the_code_cache_is_absent_not_zero():
    kvm = SMAPS.replace("rwxp", "rw-p")
    q = measure.split_smaps(kvm, guest_memory_mib=128)
    assert q.tcg_code_cache_mib is None
    assert measure.split_smaps(SMAPS, guest_memory_mib=256).guest_ram_mib == 0   # no such map


def test_sampler_samples_at_its_rate_and_stops():
    with measure.Sampler(hz=10) as s:
        s.watch("self", pid=os.getpid())
        time.sleep(1.5)
    assert not s.running
    assert 10 <= len(s.samples) <= 20
    assert 7 <= s.rate_hz <= 13
    t, rss = s.series("self", "memory_mib")
    assert len(t) == len(rss) and min(rss) > 1
    assert all(b > a for a, b in zip(t, t[1:]))
    assert 0 <= s.overhead_percent < 100
    count = len(s.samples)
    time.sleep(0.3)
    assert len(s.samples) == count


def test_pss_and_cpu_of_this_process():
    assert 1 < measure.pss_mib(os.getpid()) < 4096
    assert measure.process_cpu_s(os.getpid()) > 0
    assert measure.mem_available_mib() > 0


def test_memory_is_usage_minus_inactive_file_like_docker_stats():
    v1 = {"memory_stats": {"usage": 10 * 2**20, "stats": {"total_inactive_file": 4 * 2**20}}}
    v2 = {"memory_stats": {"usage": 10 * 2**20, "stats": {"inactive_file": 2 * 2**20}}}
    assert measure.memory_mib_from_stats(v1) == 6
    assert measure.memory_mib_from_stats(v2) == 8
    assert measure.memory_mib_from_stats({"memory_stats": {}}) == 0


def test_cpu_percent_from_deltas_like_docker_stats():
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000,
                           "online_cpus": 2},
             "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000}}
    assert measure.cpu_percent_from_stats(stats) == 40.0


def test_a_plain_process_is_the_floor():
    seconds, lines = measure.process_workload("echo first; echo END", "END")
    assert lines == ["first"] and 0 < seconds < 5


def test_container_start_cgroup_shim_and_engine(lesson, kit):
    run = measure.container_workload(kit["busybox"],
                                     "echo hi; dd if=/dev/zero bs=1M count=4 2>/dev/null | "
                                     "md5sum >/dev/null; echo END; exec sleep 60", "END",
                                     keep=True, lesson=lesson)
    try:
        assert run.lines == ["hi"] and run.start_s > 0
        pid = measure.visible_pid(run.container)
        assert pid and measure.shim_of(pid)             # the engine runs on this machine
        group = measure.Cgroup.of(pid)
        # The cgroup's files agree with the engine's stats API, which reads the same files.
        assert group.memory_mib() == pytest.approx(
            measure.container_memory_mib(run.container), abs=0.5)
        assert group.cpu_s() > 0 and pid in group.pids()
        assert 0 < group.memory_mib() < 64
        engine = measure.engine_processes()
        assert engine and engine.pss_mib() > 10 and engine.cpu_s() > 0
    finally:
        run.container.remove(force=True)
    with pytest.raises(NotFound):
        lesson.client.containers.get(run.container.id)
    # Kept, so written into the record under the label's lesson (clean-up trusts the record).
    assert run.container.id in record.entries(lesson.client, "containers", lesson.nn)
    record.forget(lesson.client, "containers", [run.container.id])
