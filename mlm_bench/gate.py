"""Gate: compare two pytest-benchmark JSON files (old and new environment) and say whether speed or learning changed.

Speed: the relative change of a timing statistic (median by default) with a seeded bootstrap confidence interval
over the rounds pytest-benchmark recorded (`stats.data`). Slower only when the whole interval lies above the
threshold; the same when it lies within it; inconclusive when it straddles it (too noisy to say: listed, and
exit 3 with fail_inconclusive).
Learning is compared through the `losses` and `metrics` each benchmark stores in `extra_info`: with the same seed
and data, a difference beyond tolerance means the computation changed.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlm_bench import defects
from mlm_bench.accepted import field_changes, is_accepted, version_set_key
from mlm_bench.errors import UsageError
from mlm_bench.results import flatten

STATS = ("median", "min", "mean")
EXIT_OK, EXIT_REGRESSION, EXIT_INCONCLUSIVE = 0, 1, 3
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Thresholds:
    """When a difference counts: a slowdown whose confidence interval clears the threshold, a loss or metric change
    beyond tolerance (README, "Calibration", has the measurements behind each default)."""

    # results/calibration: at 7% on the median, 0 of 20 same-environment pairs flagged idle and 0 of 20 beside a
    # CPU hog, while planted 20% collator and 10% forward slowdowns were caught 5 of 5 times each.
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
class BenchmarkRun:
    """One pytest-benchmark JSON file: its benchmarks by full name, and the versions they recorded."""

    path: Path
    benchmarks: dict[str, dict[str, Any]]
    machine: dict[str, Any]

    @property
    def versions(self) -> dict[str, str]:
        for bench in self.benchmarks.values():
            found = bench.get("extra_info", {}).get("versions")
            if found:
                return found
        return {}

    @property
    def label(self) -> str:
        found = self.versions
        if "transformers" in found:
            return f"transformers {found['transformers']} / datasets {found.get('datasets', '?')}"
        return self.path.stem


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UsageError(f"{what} {path} does not exist: pass an existing file") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{what} {path} is not JSON ({err}): pass the file {what} names") from err


def load_run(path: Path) -> BenchmarkRun:
    """Read a `pytest --benchmark-json` file, refusing anything without per-benchmark stats."""
    data = _read_json(path, "benchmark file")
    hint = "pass the file written by `pytest benchmarks/ --benchmark-json FILE`"
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UsageError(f"{path} has no 'benchmarks' list, so it is not pytest-benchmark JSON: {hint}")
    benchmarks: dict[str, dict[str, Any]] = {}
    for entry in data["benchmarks"]:
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if (
            not isinstance(stats, dict)
            or not all(k in stats for k in (*STATS, "iqr", "rounds"))
            or "fullname" not in entry
        ):
            raise UsageError(
                f"{path} has a benchmark without fullname and stats (median, min, mean, iqr, rounds): {hint}"
            )
        benchmarks[entry["fullname"]] = entry
    return BenchmarkRun(Path(path), benchmarks, data.get("machine_info", {}))


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

    @property
    def change(self) -> float:
        """Relative change in time per call: +0.2 is 20% slower."""
        return self.new / self.base - 1.0

    @property
    def verdict(self) -> str:
        if self.rounds < self.min_rounds or math.isnan(self.low):
            return "not gated"
        if self.low > self.threshold:
            return "slower"
        if self.high < -self.threshold:
            return "faster"
        if -self.threshold <= self.low and self.high <= self.threshold:
            return "same"
        return "inconclusive"


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


def compare_speed(base: dict[str, Any], new: dict[str, Any], thresholds: Thresholds) -> SpeedChange:
    """Compare one benchmark's timing in two runs: the change at the chosen statistic and its interval (NaN where a
    file holds no per-round data)."""
    b, n = base["stats"], new["stats"]
    rounds = min(b.get("rounds", 0), n.get("rounds", 0))
    if b.get("data") and n.get("data") and rounds >= 2:
        low, high = change_interval(b["data"], n["data"], thresholds.stat, thresholds.confidence)
    else:
        low = high = math.nan
    return SpeedChange(
        base=b[thresholds.stat],
        new=n[thresholds.stat],
        low=low,
        high=high,
        base_noise=b["iqr"] / b["median"],
        new_noise=n["iqr"] / n["median"],
        threshold=thresholds.slowdown,
        rounds=rounds,
        min_rounds=thresholds.min_rounds,
        base_throughput=base.get("extra_info", {}).get("samples_per_second"),
        new_throughput=new.get("extra_info", {}).get("samples_per_second"),
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


def _values(extra: dict[str, Any], group: str) -> dict[str, float]:
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
        b, n = _values(base_extra, group), _values(new_extra, group)
        for key in sorted(set(b) | set(n), key=_natural):
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


def _natural(key: str) -> tuple[int, str]:
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
    each marked accepted when an entry covers it between the two version sets."""
    keys = (version_set_key(base.get("versions", {})), version_set_key(new.get("versions", {})))
    strip = [{k: v for k, v in side.items() if k != "versions"} for side in (base, new)]
    return [
        FingerprintDiff(
            c.field,
            None if c.stored == "<absent>" else c.stored,
            None if c.current == "<absent>" else c.current,
            is_accepted(c, keys, list(entries)),
        )
        for c in field_changes(*strip)
    ]


def load_fingerprint(path: Path) -> dict[str, Any]:
    """A fingerprint JSON object (e.g. results/fingerprints/*.json); any keys are accepted."""
    data = _read_json(path, "fingerprint file")
    if not isinstance(data, dict):
        raise UsageError(f"fingerprint file {path} holds a {type(data).__name__}, not an object: pass a JSON object")
    return data


@dataclass(frozen=True)
class TestOutcome:
    """Counts from one junit XML file (pytest --junitxml)."""

    source: str
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0 and self.errors == 0


def junit_outcome(path: Path) -> TestOutcome:
    """Sum the testsuite counts of a junit XML file."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as err:
        raise UsageError(f"junit file {path} does not exist: pass the file `pytest --junitxml FILE` wrote") from err
    except ET.ParseError as err:
        raise UsageError(f"junit file {path} is not XML ({err}): pass the file `pytest --junitxml FILE` wrote") from err
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        raise UsageError(f"junit file {path} has no <testsuite>: pass the file `pytest --junitxml FILE` wrote")
    counts = [sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")]
    return TestOutcome(str(path), *counts)


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
        reasons = [
            f"{short_name(name)}: {speed.change:+.1%} time per call ({speed.low:+.1%} to {speed.high:+.1%}, above the "
            f"{speed.threshold:.0%} threshold)"
            for name, speed in self.speed.items()
            if speed.verdict == "slower"
        ]
        reasons += [
            f"{short_name(q.benchmark)}: {q.key} {_fmt(q.base)} -> {_fmt(q.new)}" for q in self.quality if q.changed
        ]
        reasons += [
            f"{short_name(name)}: same eval texts and settings, other masked inputs (the tokenizer or collator changed)"
            for name in self.eval_inputs_changed
        ]
        reasons += [
            f"fingerprint {d.key}: {_cell(d.base)} -> {_cell(d.new)} (not in the accept file)"
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


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
    speed = {name: compare_speed(base.benchmarks[name], new.benchmarks[name], thresholds) for name in common}
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


def render_markdown(result: GateResult) -> str:
    """The verdict as markdown: one row per benchmark, then the learning, fingerprint and test details."""
    sections = (_speed_section, _learning_section, _fingerprint_section, _defects_section, _tests_section)
    lines = [line for section in sections for line in section(result)]
    lines += ["", "## Verdict", ""]
    lines += [f"- {reason}" for reason in result.regressions] or ["No regression."]
    if result.inconclusive:
        lines.append(
            f"- inconclusive speed (too noisy to call; exit {EXIT_INCONCLUSIVE} with --fail-inconclusive): "
            f"{', '.join(result.inconclusive)}; rerun both environments on a quiet machine, or interleaved"
        )
    return "\n".join(lines) + "\n"


def _speed_section(result: GateResult) -> list[str]:
    """The title, the rules the verdicts follow, and one row per benchmark."""
    th = result.thresholds
    verdict = "REGRESSION" if result.regressions else ("INCONCLUSIVE speed" if result.inconclusive else "no regression")
    lines = [
        f"# Upgrade gate: {verdict}",
        "",
        f"- base: `{result.base.path}` ({result.base.label})",
        f"- new: `{result.new.path}` ({result.new.label})",
        f"- speed: change of the **{th.stat}** time per call, with its {th.confidence:.0%} bootstrap interval over "
        f"the rounds; slower when the interval lies wholly above +{th.slowdown:.0%}, same when wholly within "
        f"±{th.slowdown:.0%}, inconclusive (too noisy to say) when it straddles the threshold; noise is IQR/median; "
        f"benchmarks with fewer than {th.min_rounds} rounds are shown but not gated",
        f"- learning: losses within relative {th.loss_rtol:g}, context gains within {th.gain_atol:g} nats, other "
        f"metrics within absolute {th.metric_atol:g}, resolved settings exactly",
        "",
        "| benchmark | base s/call | new s/call | change | interval | noise base / new | samples/s (median) "
        "base -> new | speed | learning | verdict |",
        "|---|---:|---:|---:|---|---|---:|---|---|---|",
    ]
    lines += [_speed_row(result, name, change) for name, change in result.speed.items()]
    for title, names in (("Only in base", result.only_base), ("Only in new", result.only_new)):
        if names:
            lines += ["", f"{title} (not compared): " + ", ".join(short_name(n) for n in names)]
    return lines


def _speed_row(result: GateResult, name: str, s: SpeedChange) -> str:
    changed = result.learning_changes(name)
    compared = [q for q in result.quality if q.benchmark == name]
    learning = (
        f"CHANGED ({len(changed)}/{len(compared)})" if changed else (f"same ({len(compared)})" if compared else "-")
    )
    row_verdict = "REGRESSION" if s.verdict == "slower" or changed else s.verdict if s.verdict != "same" else "ok"
    throughput = (
        f"{s.base_throughput:.4g} -> {s.new_throughput:.4g}"
        if s.base_throughput is not None and s.new_throughput is not None
        else "-"
    )
    interval = "-" if math.isnan(s.low) else f"{s.low:+.1%} to {s.high:+.1%}"
    return (
        f"| {short_name(name)} | {s.base:.4g} | {s.new:.4g} | {s.change:+.1%} | {interval} | "
        f"{s.base_noise:.0%} / {s.new_noise:.0%} | {throughput} | {s.verdict} | {learning} | {row_verdict} |"
    )


def _learning_section(result: GateResult) -> list[str]:
    if not result.quality:
        return []
    lines = [
        "",
        "## Learning",
        "",
        "| benchmark | value | base | new | change | tolerance | |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for q in result.quality:
        numeric = isinstance(q.base, (int, float)) and isinstance(q.new, (int, float))
        delta = f"{q.new - q.base:+.4g}" if numeric else "-"
        flag = "CHANGED" if q.changed else "same"
        cells = [short_name(q.benchmark), q.key, _fmt(q.base), _fmt(q.new), delta, q.tolerance, flag]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fingerprint_section(result: GateResult) -> list[str]:
    lines = ["", "## Fingerprints", ""]
    if result.fingerprints is None:
        return [*lines, "Not compared: pass `--fingerprints BASE.json NEW.json` (or store them in extra_info)."]
    if not result.fingerprints:
        return [*lines, "Identical."]
    lines += ["| key | base | new | |", "|---|---|---|---|"]
    return lines + [
        f"| {d.key} | {_cell(d.base)} | {_cell(d.new)} | {'accepted' if d.accepted else 'NOT ACCEPTED'} |"
        for d in result.fingerprints
    ]


def _defects_section(result: GateResult) -> list[str]:
    lines = ["", "## Known upstream defects", ""]
    for side, run in (("base", result.base), ("new", result.new)):
        found = defects.active(run.versions) if run.versions else []
        named = "; ".join(f"{d.key} ({d.upstream or 'no upstream issue'}): {d.breaks}" for d in found)
        lines.append(f"- {side}: {named or 'none registered for these versions'}")
    return lines


def _tests_section(result: GateResult) -> list[str]:
    lines = ["", "## Contract tests", ""]
    if not result.tests and result.tests_exit_code is None:
        lines.append("Not given: pass `--junit BASE.xml NEW.xml` or `--tests-exit-code N`.")
    for side, t in result.tests:
        state = "passed" if t.passed else "FAILED"
        lines.append(
            f"- {side}: {state}: {t.tests} tests, {t.failures} failures, {t.errors} errors, {t.skipped} skipped "
            f"(`{t.source}`)"
        )
    if result.tests_exit_code is not None:
        lines.append(f"- new: pytest exit code {result.tests_exit_code}")
    return lines


def _cell(value: Any) -> str:
    return "(absent)" if value is None else str(value).replace("|", "\\|")


def write_report(result: GateResult, directory: Path) -> list[Path]:
    """report.md plus throughput.png and loss_curves.png (matplotlib, the `gate` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as err:
        raise UsageError(
            "--report draws plots with matplotlib, which is not installed: pip install 'mlm-bench[gate]'"
        ) from err
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.md"]
    written[0].write_text(render_markdown(result), encoding="utf-8")
    labels = (f"base: {result.base.label}", f"new: {result.new.label}")

    names = list(result.speed)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5))
    ys = range(len(names))
    for offset, side, label in ((-0.2, "base", labels[0]), (0.2, "new", labels[1])):
        values = [_throughput(result, name, side) for name in names]
        ax.barh([y + offset for y in ys], values, height=0.4, label=label)
    ax.set_yticks(list(ys), [short_name(n) for n in names])
    ax.set_xscale("log")
    ax.set_xlabel(f"samples/s at the {result.thresholds.stat} time per call (log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    written.append(directory / "throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    with_losses = [n for n in names if _values(result.base.benchmarks[n].get("extra_info", {}), "losses")]
    if with_losses:
        fig, axes = plt.subplots(1, len(with_losses), figsize=(4.5 * len(with_losses), 3.5), squeeze=False)
        for ax, name in zip(axes[0], with_losses, strict=True):
            for run, label, style in ((result.base, labels[0], "o-"), (result.new, labels[1], "x--")):
                losses = _values(run.benchmarks[name].get("extra_info", {}), "losses")
                keys = sorted(losses, key=_natural)
                steps = [_natural(k)[0] for k in keys]
                ax.plot(steps, [losses[k] for k in keys], style, label=label)
            ax.set_title(short_name(name), fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("train loss")
            ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(directory / "loss_curves.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def _throughput(result: GateResult, name: str, side: str) -> float:
    run = result.base if side == "base" else result.new
    bench = run.benchmarks[name]
    samples = bench.get("extra_info", {}).get("samples_per_call", 1)
    return samples / bench["stats"][result.thresholds.stat]
