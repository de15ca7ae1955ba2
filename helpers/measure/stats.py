"""Medians with bootstrap 95% intervals, and the load every run ran under (taught in 07).

A benchmark on a shared laptop is noisy: one figure alone says little. `summarize(values)` gives
the median of repeated runs and a 95% interval for it (the percentile bootstrap: resample the
runs with replacement, take each resample's median, keep the middle 95%). `Conditions` says how
busy the machine was while a run ran: the load average and the CPU time stolen by a hypervisor
(on a cloud VM, other tenants take it).
"""
from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

RESAMPLES = 2000


def bootstrap_median_interval(values, level: float = 0.95, resamples: int = RESAMPLES,
                              seed: int = 0) -> tuple[float, float]:
    """(low, high) of the median's `level` interval, by the percentile bootstrap.

    Seeded, so the same runs always give the same interval. One run gives (value, value).
    """
    values = list(values)
    if not values:
        raise ValueError("No runs to summarize.")
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    low = medians[int(tail * (resamples - 1))]
    high = medians[int(round((1 - tail) * (resamples - 1)))]
    return low, high


@dataclass(frozen=True)
class Conditions:
    """How busy the machine was during one run."""
    load_1m: float          # the 1-minute load average at the end of the run
    steal_percent: float    # CPU time stolen by the hypervisor below, % of all CPU time


def _cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies from /proc/stat ((0, 0) where there is no /proc)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    numbers = [int(x) for x in fields[:8]]   # user nice system idle iowait irq softirq steal
    return (numbers[7] if len(numbers) > 7 else 0), sum(numbers)


class ConditionMeter:
    """`meter = ConditionMeter()` before a run, `meter.read()` after it: its Conditions."""

    def __init__(self):
        self._steal, self._total = _cpu_ticks()

    def read(self) -> Conditions:
        steal, total = _cpu_ticks()
        spent = total - self._total
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = float("nan")
        return Conditions(round(load, 2),
                          round(100.0 * (steal - self._steal) / spent, 2) if spent > 0 else 0.0)


def conditions_now() -> Conditions:
    """The load now, and the steal over the last half second."""
    meter = ConditionMeter()
    time.sleep(0.5)
    return meter.read()


@dataclass(frozen=True)
class Summary:
    """Repeated runs of one figure: median, its 95% interval, every run and its conditions.

    The unit is in the name of the field that holds a Summary (`start_s`, `pss_mib`).
    """
    n: int
    median: float
    low_95: float
    high_95: float
    min: float
    max: float
    samples: tuple
    load_1m: tuple = ()          # per run, in the order of `samples`
    steal_percent: tuple = ()

    def text(self, unit: str, digits: int = 3) -> str:
        """'0.201 s [0.195–0.210, n=20]': median, interval, count."""
        f = f"{{:.{digits}f}}"
        return (f"{f.format(self.median)} {unit} [{f.format(self.low_95)}–"
                f"{f.format(self.high_95)}, n={self.n}]")


def summarize(values, conditions=(), seed: int = 0) -> Summary:
    """Median, bootstrap 95% interval, min and max of repeated runs (their order kept)."""
    values = [float(v) for v in values]
    low, high = bootstrap_median_interval(values, seed=seed)
    conditions = list(conditions)
    return Summary(len(values), statistics.median(values), low, high, min(values), max(values),
                   tuple(values), tuple(c.load_1m for c in conditions),
                   tuple(c.steal_percent for c in conditions))


@dataclass
class Runs:
    """Collects runs of one figure with the conditions of each; `.summary()` when done."""
    values: list = field(default_factory=list)
    conditions: list = field(default_factory=list)

    def add(self, value: float, conditions: Conditions) -> None:
        self.values.append(value)
        self.conditions.append(conditions)

    def summary(self) -> Summary:
        return summarize(self.values, self.conditions)
