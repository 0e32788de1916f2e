"""Gate statistics: every number the gate derives from timing rounds, in one place so the gate, the interleaved runs
and the calibration compute them alike.

The relative change of a timing statistic and its seeded percentile-bootstrap interval, the speed verdict that
interval gives against a threshold, the noise of a run, and the statistics of rounds pooled from several runs.
Pure functions over numbers: no files, nothing of mlm_bench.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def relative_change(base: float, new: float) -> float:
    """The relative change from base to new (+0.2 is 20% more time), the quantity every speed verdict is about."""
    return new / base - 1.0


def change_interval(
    base: list[float], new: list[float], stat: str, confidence: float, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of stat(new) / stat(base) - 1 over the rounds (seeded: the same files give
    the same verdict)."""
    reduce = {"median": np.median, "min": np.min, "mean": np.mean}[stat]
    rng = np.random.default_rng(seed)
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    base_stats = reduce(b[rng.integers(0, len(b), (BOOTSTRAP_RESAMPLES, len(b)))], axis=1)
    new_stats = reduce(n[rng.integers(0, len(n), (BOOTSTRAP_RESAMPLES, len(n)))], axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(new_stats / base_stats - 1, [tail, 1 - tail])
    return float(low), float(high)


def process_interval(
    base: list[list[float]], new: list[list[float]], stat: str, confidence: float, seed: int = 0
) -> tuple[float, float]:
    """Hierarchical bootstrap interval of stat(new) / stat(base) - 1 over processes, each a list of its rounds:
    processes resampled, then rounds within each, so the interval holds the noise between processes (warm-up, page
    cache, CPU frequency) that rounds of one process leave out (seeded: the same files give the same verdict)."""
    rng = np.random.default_rng(seed)
    base_stats, new_stats = (_process_resamples(side, stat, rng) for side in (base, new))
    tail = (1 - confidence) / 2
    low, high = np.quantile(new_stats / base_stats - 1, [tail, 1 - tail])
    return float(low), float(high)


def level_interval(processes: list[list[float]], stat: str, confidence: float, seed: int = 0) -> tuple[float, float]:
    """Hierarchical bootstrap interval of one side's statistic itself (seconds per call), processes then rounds
    resampled as in process_interval: a release's level on the history page (seeded)."""
    values = _process_resamples(processes, stat, np.random.default_rng(seed))
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _process_resamples(processes: list[list[float]], stat: str, rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP_RESAMPLES values of the statistic over the rounds of processes drawn with replacement, each
    process's rounds drawn with replacement in turn."""
    reduce = {"median": np.median, "min": np.min, "mean": np.mean}[stat]
    arrays = [np.asarray(rounds, dtype=float) for rounds in processes]
    out = np.empty(BOOTSTRAP_RESAMPLES)
    for i in range(BOOTSTRAP_RESAMPLES):
        drawn = [arrays[p] for p in rng.integers(0, len(arrays), len(arrays))]
        out[i] = reduce(np.concatenate([rounds[rng.integers(0, len(rounds), len(rounds))] for rounds in drawn]))
    return out


def interval_verdict(low: float, high: float, threshold: float) -> str:
    """Slower, faster or same only when the whole interval of the change says so; inconclusive when it straddles
    ±threshold, since the rounds are then too noisy to call."""
    if low > threshold:
        return "slower"
    if high < -threshold:
        return "faster"
    if -threshold <= low and high <= threshold:
        return "same"
    return "inconclusive"


def noise(iqr: float, median: float) -> float:
    """A run's spread relative to its level (IQR / median), printed beside each change to show how far to trust it."""
    return iqr / median


def pooled_stats(data: list[float]) -> dict[str, Any]:
    """The statistics pytest-benchmark records, recomputed over rounds pooled from several runs (quartiles of a
    single round are that round)."""
    quartiles = statistics.quantiles(data, n=4) if len(data) > 1 else [data[0]] * 3
    return {
        "data": data,
        "rounds": len(data),
        "min": min(data),
        "max": max(data),
        "mean": statistics.fmean(data),
        "median": statistics.median(data),
        "q1": quartiles[0],
        "q3": quartiles[2],
        "iqr": quartiles[2] - quartiles[0],
    }


def rate_at(rate: float, measured_median: float, median: float) -> float:
    """A per-second rate measured at one median time per call, restated at another (rates scale inversely with
    time)."""
    return rate * (measured_median / median)
