"""The sampler, the engine's stats read the CLI way, and container start latency."""
import os
import time

from helpers import measure
from helpers.labels import label_filter


def test_sampler_samples_at_its_rate_and_stops():
    with measure.Sampler(hz=10) as s:
        s.watch("self", os.getpid())
        time.sleep(1.5)
    assert not s.running
    assert 10 <= len(s.samples) <= 20
    assert 7 <= s.rate_hz <= 13
    t, rss = s.series("self", "rss_mib")
    assert len(t) == len(rss) and min(rss) > 1
    assert all(b > a for a, b in zip(t, t[1:]))
    assert 0 <= s.overhead_percent < 100
    count = len(s.samples)
    time.sleep(0.3)
    assert len(s.samples) == count


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


def test_container_start_and_stats(client, kit):
    seconds = measure.container_start_seconds(client, kit["busybox"], 7)
    assert 0 < seconds < 30
    run = measure.container_workload(client, kit["busybox"], "echo hi; echo END; sleep 60", 7,
                                     "END", keep=True)
    try:
        assert run.lines == ["hi"] and run.start_seconds > 0
        assert 0 < measure.container_memory_mib(run.container) < 64
        assert measure.container_pid(run.container) > 0
    finally:
        run.container.remove(force=True)
    assert not client.containers.list(all=True, filters=label_filter(7))


def test_summary_gives_median_and_spread():
    s = measure.summary([3.0, 1.0, 2.0, 10.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 10.0 and s["n"] == 4
