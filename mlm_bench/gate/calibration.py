"""Calibrate `mlm-bench gate`: false alarms between reruns of one environment, idle and beside a CPU hog, and the
planted faults it must catch on an idle machine.

Runs the CPU benchmarks N times unchanged on an idle machine, each followed at once by a run with the collator
made 20% slower and one with the model's forward made 10% slower; then N times unchanged while `--hogs`
busy-looping processes run beside them, and once with the learning rate halved. Then it gates every ordered pair
of clean runs of each set (any slower or learning verdict is a false alarm; inconclusive is not) and clean run i
against planted run i (a miss is a failure to detect), for each setting in the grid.

    python -m mlm_bench.gate.calibration --runs 5 --out results/calibration    # from a checkout
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mlm_bench.gate.compare import Thresholds, compare, short_name
from mlm_bench.gate.inputs import BenchmarkRun, load_run
from mlm_bench.gate.interleave import BENCHMARKS, merged
from mlm_bench.gate.statistics import relative_change

# Planted faults and the benchmark each must be caught on (by its name's start).
PLANTS = {
    "collate": (["--plant-slowdown", "0.2"], "test_collate"),  # the collator takes 20% longer per call
    "forward": (["--plant-forward-slowdown", "0.1"], "test_forward"),  # the model's forward 10% longer
}
LOSS_PLANT = ["--plant-lr-factor", "0.5"]  # half the learning rate: the same seed learns less
HOG = "while True: pass"


def run_benchmarks(python: str, out: Path, extra: list[str], select: str) -> Path:
    """One `pytest benchmarks/test_cpu.py` run into out (skipped when out already exists, so analysis can be redone)."""
    if out.exists():
        return out
    cmd = [python, "-m", "pytest", str(BENCHMARKS), "-q", f"--benchmark-json={out}", *extra]
    if select:
        cmd += ["-k", select]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True, stdout=subprocess.DEVNULL)
    return out


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """`count` busy-looping processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def verdicts(base: BenchmarkRun, new: BenchmarkRun, thresholds: Thresholds) -> dict[str, list[str]]:
    """Benchmarks the gate calls slower or inconclusive, and those whose learning it calls changed."""
    result = compare(base, new, thresholds)
    return {
        "slower": [short_name(n) for n, s in result.speed.items() if s.verdict == "slower"],
        "inconclusive": result.inconclusive,
        "learning": sorted({short_name(q.benchmark) for q in result.quality if q.changed}),
    }


def alarms(runs: list[BenchmarkRun], thresholds: Thresholds) -> dict:
    """Over every ordered pair of clean runs: pairs with a false alarm, by benchmark, and inconclusive pairs."""
    found = [verdicts(a, b, thresholds) for a, b in itertools.permutations(runs, 2)]
    by_bench: dict[str, int] = {}
    for f in found:
        for name in f["slower"] + f["learning"]:
            by_bench[name] = by_bench.get(name, 0) + 1
    return {
        "pairs": len(found),
        "false_alarm_pairs": sum(bool(f["slower"] or f["learning"]) for f in found),
        "inconclusive_pairs": sum(bool(f["inconclusive"]) for f in found),
        "by_benchmark": by_bench,
    }


def analyse(runs: dict[str, list[BenchmarkRun]], loss: BenchmarkRun, grid: list[Thresholds]) -> list[dict]:
    rows = []
    for th in grid:
        row = {"stat": th.stat, "threshold": th.slowdown, "confidence": th.confidence}
        row["idle"] = alarms(runs["idle"], th)
        row["loaded"] = alarms(runs["loaded"], th)
        for plant, (_, stage) in PLANTS.items():
            found = [verdicts(c, p, th) for c, p in zip(runs["idle"], runs[plant], strict=True)]
            row[plant] = {
                "caught": sum(any(n.startswith(stage) for n in f["slower"]) for f in found),
                "comparisons": len(found),
            }
        row["loss_caught"] = sum(bool(verdicts(c, loss, th)["learning"]) for c in runs["idle"])
        rows.append(row)
    return rows


def measured_changes(runs: dict[str, list[BenchmarkRun]], plant: str, stat: str) -> list[str]:
    """The planted stage's change against its clean run, to show what each plant really costs."""
    stage, out = PLANTS[plant][1], []
    for clean, planted in zip(runs["idle"], runs[plant], strict=True):
        for name, bench in planted.benchmarks.items():
            if short_name(name).startswith(stage):
                change = relative_change(clean.benchmarks[name]["stats"][stat], bench["stats"][stat])
                out.append(f"{short_name(name)} {change:+.1%}")
    return out


def render(rows: list[dict], runs: dict[str, list[BenchmarkRun]], note: str) -> str:
    n = len(runs["idle"])
    lines = [
        "# Gate calibration",
        "",
        note,
        "",
        f"{n} clean runs idle and {n} beside the CPU hog -> {rows[0]['idle']['pairs']} ordered pairs each (a false "
        "alarm: any slower or changed-learning verdict in a pair; inconclusive is reported, not an alarm); each "
        f"planted run i is gated against clean idle run i ({n} comparisons per plant).",
        "",
        "| stat | threshold | confidence | false alarms idle | inconclusive idle | false alarms under load "
        "| inconclusive under load | 20% collate slowdown caught | 10% forward slowdown caught | loss change caught |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["stat"], f"{r['threshold']:.0%}", f"{r['confidence']:.0%}"]
        for where in ("idle", "loaded"):
            pairs = r[where]["pairs"]
            cells += [f"{r[where]['false_alarm_pairs']}/{pairs}", f"{r[where]['inconclusive_pairs']}/{pairs}"]
        cells += [f"{r[plant]['caught']}/{r[plant]['comparisons']}" for plant in PLANTS]
        lines.append("| " + " | ".join([*cells, f"{r['loss_caught']}/{n}"]) + " |")
    for r in rows:
        for where in ("idle", "loaded"):
            if r[where]["by_benchmark"]:
                named = ", ".join(f"{k} {v}" for k, v in sorted(r[where]["by_benchmark"].items()))
                lines.append(f"\nFalse alarms {where}, {r['stat']} at {r['threshold']:.0%}: {named}")
    for stat in sorted({r["stat"] for r in rows}):
        for plant in PLANTS:
            lines.append(
                f"\nPlanted {plant}, measured change ({stat}): " + ", ".join(measured_changes(runs, plant, stat))
            )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per set (>= 2).")
    parser.add_argument("--hogs", type=int, default=1, help="Busy-looping processes beside the loaded runs.")
    parser.add_argument("--out", type=Path, default=Path("runs") / "calibration")  # results/ only by hand
    parser.add_argument("--python", default=sys.executable, help="Interpreter of the environment to calibrate.")
    parser.add_argument("--thresholds", default="0.03,0.05,0.1", help="Comma-separated slowdown thresholds.")
    parser.add_argument("--stats", default="median,min", help="Comma-separated timing statistics.")
    parser.add_argument("--confidence", type=float, default=0.99, help="Confidence of the change's interval.")
    parser.add_argument(
        "--select", default="not train_run and not context_run", help="pytest -k of the benchmarks to run "
        "(the default leaves out the two-round training runs, which are shown but never gated)."
    )  # fmt: skip
    parser.add_argument(
        "--pool", type=int, default=1, help="Processes per run, alternated and merged (as the interleave module does)."
    )
    parser.add_argument("--note", default="", help="Machine conditions to print in the summary.")
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    if not BENCHMARKS.is_file():
        parser.error(f"{BENCHMARKS} not found here: run from a checkout of mlm-bench")
    if args.runs < 2:
        parser.error("--runs must be at least 2: false alarms are counted over pairs of clean runs")
    args.out.mkdir(parents=True, exist_ok=True)

    def run_set(name: str, i: int, extra: list[str], j: int) -> None:
        path = args.out / (f"{name}-{i}.json" if args.pool == 1 else f"{name}-{i}.{j}.json")
        run_benchmarks(args.python, path, extra, args.select)

    def pooled(name: str, i: int) -> BenchmarkRun:
        """Run i of a set: one process, or --pool processes with their rounds merged as interleave.py merges."""
        path = args.out / f"{name}-{i}.json"
        if args.pool > 1:
            parts = [args.out / f"{name}-{i}.{j}.json" for j in range(args.pool)]
            path.write_text(json.dumps(merged(parts)), encoding="utf-8")
        return load_run(path)

    # Clean run i and its planted runs back to back (process by process when pooled), so a plant is measured
    # against the minute it ran in, as interleaved environments are, while clean runs minutes apart still see
    # the machine drift.
    kinds = [("idle", []), *((f"planted-{plant}", extra) for plant, (extra, _) in PLANTS.items())]
    runs: dict[str, list[BenchmarkRun]] = {"idle": [], **{plant: [] for plant in PLANTS}}
    for i in range(args.runs):
        for j in range(args.pool):
            for name, extra in kinds:
                run_set(name, i, extra, j)
        runs["idle"].append(pooled("idle", i))
        for plant in PLANTS:
            runs[plant].append(pooled(f"planted-{plant}", i))
    with hogs(args.hogs):
        for i in range(args.runs):
            for j in range(args.pool):
                run_set("loaded", i, [], j)
        runs["loaded"] = [pooled("loaded", i) for i in range(args.runs)]
    loss = load_run(run_benchmarks(args.python, args.out / "planted-loss.json", LOSS_PLANT, args.select))
    grid = [
        Thresholds(slowdown=float(t), stat=s, confidence=args.confidence)
        for s in args.stats.split(",")
        for t in args.thresholds.split(",")
    ]
    rows = analyse(runs, loss, grid)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    text = render(rows, runs, args.note)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
