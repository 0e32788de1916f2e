"""Gate: compare two pytest-benchmark JSON files (old and new environment) and say whether speed or learning changed.

Speed: the relative change of a timing statistic (median by default) with a seeded bootstrap confidence interval
over the rounds pytest-benchmark recorded (`stats.data`), both computed by gate.statistics. Slower only when the
whole interval lies above the threshold; the same when it lies within it; inconclusive when it straddles it (too
noisy to say: listed, and exit 3 with fail_inconclusive).
Learning is compared through the `losses` and `metrics` each benchmark stores in `extra_info`: with the same seed
and data, a difference beyond tolerance means the computation changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlm_bench.contract.accepted import field_changes, is_accepted
from mlm_bench.errors import UsageError
from mlm_bench.gate.inputs import STATS, BenchmarkRun, TestOutcome
from mlm_bench.gate.statistics import change_interval, interval_verdict, noise, process_interval, relative_change
from mlm_bench.runs.results import flatten

EXIT_OK, EXIT_REGRESSION, EXIT_INCONCLUSIVE = 0, 1, 3


@dataclass(frozen=True)
class Thresholds:
    """When a difference counts: a slowdown whose confidence interval clears the threshold, a loss or metric change
    beyond tolerance (docs/gate.md, "What the gate's defaults rest on", has the measurements behind each default)."""

    # results/calibration: at 7% on the median, 0 of 20 same-environment pairs flagged idle and 0 of 20 beside a
    # CPU hog, while planted 20% collator and 10% forward slowdowns were caught 5 of 5 times each.
    # (Over 3 processes per side, `upgrade` gates at 5%: results/upgrade-calibration, upgrade.run.SLOWDOWN.)
    slowdown: float = 0.07
    stat: str = "median"
    # Two-sided confidence of the bootstrap interval of the change.
    confidence: float = 0.99
    # Fewer rounds than this give no interval worth the name (a 2-round median is a mean): shown, not gated.
    min_rounds: int = 5
    # Relative: reruns of one version at one seed agreed within 0.08% (results/calibration); 1% is >10x that.
    loss_rtol: float = 0.01
    # Absolute, for accuracies and scores in [0, 1].
    metric_atol: float = 0.01
    # Absolute nats, for context gains (a difference of two losses): 4.57 and 5.x runs of the 20-step model differ by
    # 0.013 (their inits differ), seeds of the default run by 0.05; broken attention loses over 1 nat.
    gain_atol: float = 0.05

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise UsageError(f"unknown statistic {self.stat!r}: pass --stat one of {list(STATS)}")
        for name in ("slowdown", "loss_rtol", "metric_atol", "gain_atol", "min_rounds"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}: pass a non-negative value")
        if not 0 < self.confidence < 1:
            raise UsageError(f"confidence must be in (0, 1), got {self.confidence}: pass e.g. 0.99")


@dataclass(frozen=True)
class SpeedChange:
    """Time per call at one statistic in both runs, the change's confidence interval, and the verdict."""

    base: float
    new: float
    low: float  # confidence interval of the relative change (new / base - 1)
    high: float
    base_noise: float  # IQR / median of the rounds
    new_noise: float
    threshold: float
    rounds: int
    min_rounds: int
    base_throughput: float | None
    new_throughput: float | None
    # Processes per side the interval is over (the fewer side's): 1 leaves out the noise between processes.
    processes: int = 1

    @property
    def change(self) -> float:
        """Relative change in time per call: +0.2 is 20% slower."""
        return relative_change(self.base, self.new)

    @property
    def verdict(self) -> str:
        """What the interval says against the threshold; "not gated" with too few rounds or no interval."""
        if self.rounds < self.min_rounds or math.isnan(self.low):
            return "not gated"
        return interval_verdict(self.low, self.high, self.threshold)


def compare_speed(
    base: dict[str, Any],
    new: dict[str, Any],
    thresholds: Thresholds,
    processes: tuple[list[list[float]], list[list[float]]] = ([], []),
) -> SpeedChange:
    """Compare one benchmark's timing in two runs: the change at the chosen statistic and its interval, over
    processes where both sides ran in several, else over rounds (NaN where a file holds no per-round data)."""
    b, n = base["stats"], new["stats"]
    rounds = min(b.get("rounds", 0), n.get("rounds", 0))
    count = min(len(processes[0]), len(processes[1]))
    if count >= 2:
        low, high = process_interval(*processes, thresholds.stat, thresholds.confidence)
    elif b.get("data") and n.get("data") and rounds >= 2:
        low, high = change_interval(b["data"], n["data"], thresholds.stat, thresholds.confidence)
    else:
        low = high = math.nan
    return SpeedChange(
        base=b[thresholds.stat],
        new=n[thresholds.stat],
        low=low,
        high=high,
        base_noise=noise(b["iqr"], b["median"]),
        new_noise=noise(n["iqr"], n["median"]),
        threshold=thresholds.slowdown,
        rounds=rounds,
        min_rounds=thresholds.min_rounds,
        base_throughput=base.get("extra_info", {}).get("samples_per_second"),
        new_throughput=new.get("extra_info", {}).get("samples_per_second"),
        processes=max(count, 1),
    )


@dataclass(frozen=True)
class QualityChange:
    """One loss or metric value in both runs; `changed` when it moved beyond tolerance or exists on one side only."""

    benchmark: str
    key: str
    base: Any
    new: Any
    tolerance: str
    changed: bool


def extra_values(extra: dict[str, Any], group: str) -> dict[str, float]:
    values = extra.get(group) or {}
    return {str(k): float(v) for k, v in values.items() if isinstance(v, (int, float))}


def compare_quality(
    name: str, base: dict[str, Any], new: dict[str, Any], thresholds: Thresholds
) -> list[QualityChange]:
    """Every loss (relative tolerance) and metric (absolute; relative when its name says loss, in nats when it says
    gain) in either run."""
    out = []
    base_extra, new_extra = base.get("extra_info", {}), new.get("extra_info", {})
    for group, prefix in (("losses", "loss@"), ("metrics", "")):
        b, n = extra_values(base_extra, group), extra_values(new_extra, group)
        for key in sorted(set(b) | set(n), key=natural_key):
            old, now = b.get(key), n.get(key)
            if group == "losses" or "loss" in key:
                tolerance = f"rel {thresholds.loss_rtol:g}"
                moved = old is not None and now is not None and abs(now - old) > thresholds.loss_rtol * abs(old)
            elif "gain" in key:
                tolerance = f"abs {thresholds.gain_atol:g} nats"
                moved = old is not None and now is not None and abs(now - old) > thresholds.gain_atol
            else:
                tolerance = f"abs {thresholds.metric_atol:g}"
                moved = old is not None and now is not None and abs(now - old) > thresholds.metric_atol
            missing = old is None or now is None or math.isnan(old) != math.isnan(now)
            out.append(QualityChange(name, prefix + key, old, now, tolerance, moved or missing))
    # Resolved settings (optimizer, schedule, tokenizer size): any difference is a changed default.
    b, n = flatten(base_extra.get("exact") or {}), flatten(new_extra.get("exact") or {})
    for key in sorted(set(b) | set(n)):
        out.append(QualityChange(name, key, b.get(key), n.get(key), "exact", b.get(key) != n.get(key)))
    return out


def natural_key(key: str) -> tuple[int, str]:
    digits = "".join(c for c in key if c.isdigit())
    return (int(digits) if digits else -1, key)


@dataclass(frozen=True)
class FingerprintDiff:
    """A fingerprint field whose value differs (None on a side where it is absent), and whether a reviewed entry
    of the accept file covers the change."""

    key: str
    base: Any
    new: Any
    accepted: bool = False


def diff_fingerprints(
    base: dict[str, Any], new: dict[str, Any], entries: list[dict[str, Any]] = ()
) -> list[FingerprintDiff]:
    """Fields added, removed or changed between two fingerprint objects of any shape (their `versions` aside),
    each marked accepted when an entry of the accept file names that change."""
    strip = [{k: v for k, v in side.items() if k != "versions"} for side in (base, new)]
    return [
        FingerprintDiff(
            c.field,
            None if c.stored == "<absent>" else c.stored,
            None if c.current == "<absent>" else c.current,
            is_accepted(c, list(entries)),
        )
        for c in field_changes(*strip)
    ]


@dataclass(frozen=True)
class GateResult:
    """Everything the verdict rests on, per benchmark and overall."""

    base: BenchmarkRun
    new: BenchmarkRun
    thresholds: Thresholds
    speed: dict[str, SpeedChange]
    quality: list[QualityChange]
    only_base: list[str]
    only_new: list[str]
    fingerprints: list[FingerprintDiff] | None = None
    tests: list[tuple[str, TestOutcome]] = field(default_factory=list)
    tests_exit_code: int | None = None
    # Benchmarks scored on the same texts and eval settings whose masked inputs differ: the tokenizer or the
    # collator changed what the model is scored on.
    eval_inputs_changed: list[str] = field(default_factory=list)
    # Exit EXIT_INCONCLUSIVE, not EXIT_OK, when no regression but a speed change too noisy to call.
    fail_inconclusive: bool = False

    def learning_changes(self, name: str) -> list[QualityChange]:
        return [q for q in self.quality if q.benchmark == name and q.changed]

    @property
    def regressions(self) -> list[str]:
        """One line per reason to fail the gate; empty means no regression."""
        reasons = self.benchmark_regressions
        reasons += [
            f"fingerprint {d.key}: {table_cell(d.base)} -> {table_cell(d.new)} (not in the accept file)"
            for d in self.fingerprints or []
            if not d.accepted
        ]
        reasons += [
            f"contract tests ({side}) failed: {t.source}" for side, t in self.tests if side == "new" and not t.passed
        ]
        if self.tests_exit_code:
            reasons.append(f"contract tests exited {self.tests_exit_code}")
        return reasons

    @property
    def benchmark_regressions(self) -> list[str]:
        """The reasons the benchmarks themselves give (speed, learning, masked inputs), without the fingerprint's
        and the tests', which `upgrade` states in its own words."""
        reasons = [
            f"{short_name(name)}: {speed.change:+.1%} time per call ({speed.low:+.1%} to {speed.high:+.1%}, above the "
            f"{speed.threshold:.0%} threshold)"
            for name, speed in self.speed.items()
            if speed.verdict == "slower"
        ]
        reasons += [
            f"{short_name(q.benchmark)}: {q.key} {format_value(q.base)} -> {format_value(q.new)}"
            for q in self.quality
            if q.changed
        ]
        reasons += [
            f"{short_name(name)}: same eval texts and settings, other masked inputs (the tokenizer or collator changed)"
            for name in self.eval_inputs_changed
        ]
        return reasons

    @property
    def inconclusive(self) -> list[str]:
        """Benchmarks whose speed change the noise leaves undecided."""
        return [short_name(name) for name, speed in self.speed.items() if speed.verdict == "inconclusive"]

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_INCONCLUSIVE if self.inconclusive and self.fail_inconclusive else EXIT_OK


def short_name(fullname: str) -> str:
    return fullname.rsplit("::", 1)[-1]


def compare(
    base: BenchmarkRun,
    new: BenchmarkRun,
    thresholds: Thresholds,
    fingerprints: tuple[dict[str, Any], dict[str, Any]] | None = None,
    accepted_entries: list[dict[str, Any]] = (),
    junit: Iterable[tuple[str, TestOutcome]] = (),
    tests_exit_code: int | None = None,
    fail_inconclusive: bool = False,
) -> GateResult:
    """Compare every benchmark the two runs share; fingerprints come from the arguments or from extra_info."""
    common = [name for name in base.benchmarks if name in new.benchmarks]
    if not common:
        raise UsageError(
            f"{base.path} and {new.path} share no benchmark name: "
            "run the same `pytest benchmarks/` in both environments"
        )
    eval_inputs_changed = [name for name in common if _eval_inputs_differ(name, base, new)]
    speed = {
        name: compare_speed(
            base.benchmarks[name],
            new.benchmarks[name],
            thresholds,
            (base.processes.get(name, []), new.processes.get(name, [])),
        )
        for name in common
    }
    quality = [
        q for name in common for q in compare_quality(name, base.benchmarks[name], new.benchmarks[name], thresholds)
    ]
    if fingerprints is None:
        found = [_extra_fingerprint(run) for run in (base, new)]
        fingerprints = (found[0], found[1]) if found[0] is not None and found[1] is not None else None
    return GateResult(
        base=base,
        new=new,
        thresholds=thresholds,
        speed=speed,
        quality=quality,
        only_base=sorted(set(base.benchmarks) - set(new.benchmarks)),
        only_new=sorted(set(new.benchmarks) - set(base.benchmarks)),
        fingerprints=None if fingerprints is None else diff_fingerprints(*fingerprints, accepted_entries),
        tests=list(junit),
        tests_exit_code=tests_exit_code,
        eval_inputs_changed=eval_inputs_changed,
        fail_inconclusive=fail_inconclusive,
    )


def _eval_inputs_differ(name: str, base: BenchmarkRun, new: BenchmarkRun) -> bool:
    """Whether one benchmark's two runs scored other masked inputs; runs scored on other eval sets are refused."""
    sets = [run.benchmarks[name].get("extra_info", {}).get("eval_set") for run in (base, new)]
    if sets[0] is None and sets[1] is None:
        return False
    if sets[0] is None or sets[1] is None or sets[0].get("id") != sets[1].get("id"):
        described = [_describe_eval_set(found) for found in sets]
        raise UsageError(
            f"{short_name(name)} was scored on different evaluation sets (base: {described[0]}; new: "
            f"{described[1]}), so its figures do not compare: run both environments with the same eval settings "
            "and held-out texts"
        )
    return sets[0].get("inputs_sha256") != sets[1].get("inputs_sha256")


def _describe_eval_set(found: dict[str, Any] | None) -> str:
    """The eval set's identifying fields, for the refusal message."""
    if found is None:
        return "none recorded"
    keys = ("id", "texts", "texts_sha256", "max_length", "mlm_probability", "seed", "mask")
    return ", ".join(f"{key} {found.get(key)}" for key in keys)


def _extra_fingerprint(run: BenchmarkRun) -> dict[str, Any] | None:
    for bench in run.benchmarks.values():
        found = bench.get("extra_info", {}).get("fingerprints")
        if isinstance(found, dict):
            return found
    return None


def format_value(value: Any) -> str:
    """A compared value as a report shows it: floats to 4 significant digits."""
    if value is None:
        return "missing"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table_cell(value: Any) -> str:
    """A value as a Markdown table cell."""
    return "(absent)" if value is None else str(value).replace("|", "\\|")
