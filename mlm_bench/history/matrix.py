"""Matrix: the releases compared check by check. A test's outcome on each release (pass, fail, known defect, skip),
a fingerprint field marked where its value differs from the release before, and with benchmarks each one's time per
call over releases with its interval and the steps, where the gate calls a neighbour slower or faster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlm_bench.gate.compare import Thresholds, compare, short_name
from mlm_bench.gate.inputs import BenchmarkRun, load_run, pooled
from mlm_bench.gate.statistics import level_interval

# A test's junit outcome as the page names it.
SHOWN = {"passed": "pass", "failed": "fail", "error": "fail", "xfailed": "known defect", "skipped": "skip"}


@dataclass(frozen=True)
class Cell:
    """One check on one release: what the page shows, and the detail its link opens."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class Row:
    """One check over the releases."""

    check: str
    kind: str  # "test" or "fingerprint"
    cells: list[Cell]


def test_rows(records: list[dict]) -> tuple[list[Row], int]:
    """A row per test whose outcome is not a pass on every release that ran, and how many passed everywhere."""
    ran = [r for r in records if "error" not in r]
    names = sorted({test for r in ran for test in r["tests"]})
    rows, steady = [], 0
    for name in names:
        cells = [_test_cell(r, name) for r in records]
        if all(c.status == "pass" for c, r in zip(cells, records, strict=True) if "error" not in r):
            steady += 1
        else:
            rows.append(Row(name, "test", cells))
    return rows, steady


def _test_cell(record: dict, name: str) -> Cell:
    if "error" in record:
        return Cell("cannot build", record["error"])
    if name not in record["tests"]:
        return Cell("absent", "not collected on this release")
    outcome = record["tests"][name]
    return Cell(SHOWN.get(outcome, outcome), record["reasons"].get(name, ""))


def fingerprint_rows(records: list[dict]) -> list[Row]:
    """A row per fingerprint field whose value differs between two neighbouring releases that ran."""
    fields = sorted({f for r in records for f in r.get("fingerprint", {})})
    rows = []
    for field in fields:
        cells, before = [], None
        for record in records:
            if "error" in record or not record.get("fingerprint"):
                cells.append(Cell("cannot build" if "error" in record else "absent", record.get("error", "")))
                continue
            value = json.dumps(record["fingerprint"].get(field, "<absent>"), sort_keys=True)
            changed = before is not None and value != before
            cells.append(Cell("changed" if changed else "same", f"{before} -> {value}" if changed else value))
            before = value
        if any(c.status == "changed" for c in cells):
            rows.append(Row(field, "fingerprint", cells))
    return rows


def benchmark_series(records: list[dict], out: Path, thresholds: Thresholds) -> dict[str, list[dict]]:
    """Each benchmark's time per call (the gate's statistic) on each release with its interval over processes, and
    the gate's verdict against the release before (a step where it is slower or faster)."""
    runs = [_pooled(record, out) for record in records]
    series: dict[str, list[dict]] = {}
    previous: BenchmarkRun | None = None
    for record, run in zip(records, runs, strict=True):
        if run is None:
            continue
        verdicts = compare(previous, run, thresholds).speed if previous else {}
        for name, entry in run.benchmarks.items():
            low, high = level_interval(run.processes[name], thresholds.stat, thresholds.confidence)
            step = verdicts.get(name)
            series.setdefault(short_name(name), []).append({
                "release": record["release"], "time": entry["stats"][thresholds.stat], "low": low,
                "high": high, "step": step.verdict if step else None, "change": step.change if step else None,
            })  # fmt: skip
        previous = run
    return series


def _pooled(record: dict, out: Path) -> BenchmarkRun | None:
    """A release's benchmark processes pooled, or None where it ran none."""
    if "error" in record or not record.get("benchmarks"):
        return None
    folder = out / "releases" / record["release"]
    return pooled([load_run(folder / file) for file in record["benchmarks"]], folder / "benchmarks")
