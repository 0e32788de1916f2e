"""The gate's statistics (mlm_bench/gate/statistics.py) on known answers, and the committed gate results they made."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from mlm_bench.gate import compare as gate
from mlm_bench.gate import report as gate_report
from mlm_bench.gate import statistics as stats
from mlm_bench.gate.inputs import load_run
from mlm_bench.gate.interleave import merged

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Ten rounds spread 1.00..1.09, and the same rounds 20% slower: a change of exactly +0.2 at every statistic.
BASE = [1.0 + 0.01 * i for i in range(10)]
SLOWER = [1.2 * x for x in BASE]


def test_relative_change_is_new_over_base_minus_one() -> None:
    assert stats.relative_change(2.0, 3.0) == 0.5
    assert stats.relative_change(4.0, 3.0) == -0.25


def test_change_interval_brackets_the_true_change() -> None:
    low, high = stats.change_interval(BASE, SLOWER, "median", 0.99)
    assert low < 0.2 < high


def test_change_interval_is_seeded() -> None:
    """The same rounds and seed give the same interval, pinned to the one the gate has always given (a changed
    resample count, seed or tail would move it); another seed gives another."""
    found = stats.change_interval(BASE, SLOWER, "median", 0.99)
    assert found == stats.change_interval(BASE, SLOWER, "median", 0.99)
    assert found == pytest.approx((0.14881516587677712, 0.2591147636931179), rel=1e-12)
    assert stats.change_interval(BASE, SLOWER, "median", 0.99, seed=1) != found


def test_higher_confidence_gives_a_wider_interval() -> None:
    narrow = stats.change_interval(BASE, SLOWER, "median", 0.9)
    wide = stats.change_interval(BASE, SLOWER, "median", 0.99)
    assert wide[0] < narrow[0] < 0.2 < narrow[1] < wide[1]


def test_one_round_gives_a_point_interval() -> None:
    """Every resample of one round is that round, so the interval is the change itself."""
    assert stats.change_interval([2.0], [3.0], "mean", 0.99) == (0.5, 0.5)


def test_change_interval_reduces_by_the_chosen_statistic() -> None:
    """One outlying round moves the mean and, when low, the min; the median ignores both."""
    high_outlier = ([1.0] * 9 + [10.0], [1.0] * 9 + [100.0])
    low_outlier = ([2.0] * 9 + [1.0], [2.0] * 9 + [1.5])
    assert stats.change_interval(*high_outlier, "median", 0.99) == (0.0, 0.0)
    assert stats.change_interval(*high_outlier, "mean", 0.99)[1] > 1.0
    assert stats.change_interval(*low_outlier, "median", 0.99) == (0.0, 0.0)
    assert stats.change_interval(*low_outlier, "min", 0.99)[1] > 0.4


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.08, 0.2, "slower"),
        (-0.2, -0.08, "faster"),
        (-0.05, 0.05, "same"),
        (-0.07, 0.07, "same"),  # the threshold itself is within
        (0.07, 0.2, "inconclusive"),  # slower only when the whole interval clears it
        (0.0, 0.1, "inconclusive"),
        (-0.1, 0.1, "inconclusive"),
    ],
)
def test_interval_verdict(low: float, high: float, expected: str) -> None:
    assert stats.interval_verdict(low, high, 0.07) == expected


def test_noise_is_iqr_over_median() -> None:
    assert stats.noise(0.1, 2.0) == 0.05


def test_pooled_stats_of_known_rounds() -> None:
    """Quartiles by statistics.quantiles' default (exclusive) method, as the committed pooled files have them."""
    assert stats.pooled_stats([4.0, 1.0, 10.0, 3.0, 2.0]) == {
        "data": [4.0, 1.0, 10.0, 3.0, 2.0],
        "rounds": 5,
        "min": 1.0,
        "max": 10.0,
        "mean": 4.0,
        "median": 3.0,
        "q1": 1.5,
        "q3": 7.0,
        "iqr": 5.5,
    }


def test_pooled_stats_of_one_round() -> None:
    found = stats.pooled_stats([7.0])
    assert (found["rounds"], found["median"], found["q1"], found["q3"], found["iqr"]) == (1, 7.0, 7.0, 7.0, 0.0)


def test_rate_at_scales_inversely_with_time() -> None:
    assert stats.rate_at(100.0, 2.0, 4.0) == 50.0


def test_statistics_imports_only_numpy_and_the_standard_library() -> None:
    tree = ast.parse(Path(stats.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names - set(sys.stdlib_module_names) == {"numpy"}


def test_committed_gate_results_reproduce() -> None:
    """The pooled files of results/interleaved/ and the benchmark rows of both committed gate reports."""
    for side in ("base", "new"):
        parts = [RESULTS / "interleaved" / f"{side}-{i}.json" for i in range(3)]
        assert merged(parts) == json.loads((RESULTS / "interleaved" / f"{side}.json").read_text(encoding="utf-8"))
    for base, new, report in (
        ("tf4.json", "tf5.json", "gate/report.md"),
        ("interleaved/base.json", "interleaved/new.json", "interleaved/gate/report.md"),
    ):
        result = gate.compare(load_run(RESULTS / base), load_run(RESULTS / new), gate.Thresholds())
        rows = [line for line in gate_report.render_markdown(result).splitlines() if line.startswith("| test_")]
        stored = (RESULTS / report).read_text(encoding="utf-8").splitlines()
        assert rows == [line for line in stored if line.startswith("| test_")]


def _processes(*levels: float) -> list[list[float]]:
    """One process per level: ten rounds within ±1% of it."""
    return [[level * (1 + 0.002 * (i - 5)) for i in range(10)] for level in levels]


def test_process_interval_holds_the_noise_between_processes() -> None:
    """One slow process on each side (the issue's back-to-back runs: 3.65 against 1.77 ms): pooled rounds call
    +30% with certainty; over processes the interval straddles the threshold, too noisy to call."""
    base, new = _processes(1.0, 1.0, 1.0, 1.3), _processes(1.3, 1.3, 1.3, 1.0)
    pooled = stats.change_interval([x for p in base for x in p], [x for p in new for x in p], "median", 0.99)
    assert stats.interval_verdict(*pooled, 0.07) == "slower"
    assert stats.interval_verdict(*stats.process_interval(base, new, "median", 0.99), 0.07) == "inconclusive"


def test_process_interval_calls_a_slowdown_every_process_shows() -> None:
    low, high = stats.process_interval(_processes(1.0, 1.01, 0.99), _processes(1.2, 1.21, 1.19), "median", 0.99)
    assert 0.15 < low < 0.2 < high < 0.25
    assert stats.process_interval(_processes(1, 1.1), _processes(1, 1.2), "min", 0.9, seed=3) == (
        stats.process_interval(_processes(1, 1.1), _processes(1, 1.2), "min", 0.9, seed=3)
    )
