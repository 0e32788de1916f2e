"""Calibrate the speed verdict of `mlm-bench upgrade`: trials whose two sides are one environment must give no
regression verdict, idle or beside a CPU hog, and trials whose candidate has a planted slowdown must be caught.

Each trial runs the CPU benchmarks as `upgrade` runs them (upgrade.stages.run_benchmarks, --processes per side,
alternating base and candidate) into <out>/<condition>/trial-<k>/{base,candidate}/benchmarks, the layout of an
upgrade's output, so a same-set upgrade's folder can stand as an idle trial. A trial whose files are all there is
not rerun. The gate then compares each trial: same-environment trials in both orders, planted ones base ->
candidate, at each threshold and number of processes of the grid.

    python -m mlm_bench.studies.upgrade_calibration --trials 5 --out runs/upgrade-calibration
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from mlm_bench.gate.calibration import hogs
from mlm_bench.gate.compare import Thresholds, compare, short_name
from mlm_bench.gate.inputs import BenchmarkRun, load_run, pooled
from mlm_bench.runs.results import write_json_atomic
from mlm_bench.upgrade import stages

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Condition:
    """One kind of trial: the candidate's planted slowdown (none: the same environment on both sides), the
    benchmarks run (pytest -k, both sides alike) and the one a plant must be caught on, and the hogs beside it."""

    plant: tuple[str, ...] = ()
    select: str | None = None
    target: str | None = None
    hogs: bool = False


CONDITIONS = {
    "idle": Condition(),
    "loaded": Condition(hogs=True),
    "collate": Condition(("--plant-slowdown", "0.2"), "collate", "test_collate"),  # the collator 20% slower
    "forward": Condition(("--plant-forward-slowdown", "0.1"), "forward", "test_forward"),  # BERT's forward 10%
}
SIDES = ("base", "candidate")


def run_trial(folder: Path, condition: Condition, python: Path, processes: int) -> None:
    """One trial's benchmark processes, alternating the sides as `upgrade` does; those already written are kept."""
    sides = [stages.Side(name, python, folder / name) for name in SIDES]
    for process in range(processes):
        for side in sides:
            if (side.out / "benchmarks" / f"process-{process}.json").is_file():
                continue
            side.out.mkdir(parents=True, exist_ok=True)
            plant = condition.plant if side.name == "candidate" else ()
            stages.run_benchmarks(side, ROOT, process, condition.select, plant)


def load_trial(folder: Path, processes: int) -> tuple[BenchmarkRun, BenchmarkRun]:
    """A trial's two sides, each its first `processes` processes pooled as `upgrade` pools them."""
    sides = []
    for name in SIDES:
        files = [folder / name / "benchmarks" / f"process-{p}.json" for p in range(processes)]
        sides.append(pooled([load_run(file) for file in files], folder / name / "benchmarks"))
    return sides[0], sides[1]


def verdicts(base: BenchmarkRun, new: BenchmarkRun, thresholds: Thresholds) -> dict[str, dict]:
    """Each benchmark's speed verdict, change and interval when the gate compares new with base."""
    found = compare(base, new, thresholds).speed
    return {short_name(n): {"verdict": s.verdict, "change": s.change, "low": s.low, "high": s.high}
            for n, s in found.items()}  # fmt: skip


def tally(name: str, trials: list[tuple[BenchmarkRun, BenchmarkRun]], thresholds: Thresholds) -> dict:
    """A condition's verdicts over its trials: false alarms and inconclusive benchmarks of same-environment pairs
    (both orders), or planted slowdowns caught."""
    condition = CONDITIONS[name]
    pairs = trials if condition.plant else [p for b, c in trials for p in ((b, c), (c, b))]
    found = [verdicts(b, c, thresholds) for b, c in pairs]
    row = {"pairs": len(found), "comparisons": sum(len(f) for f in found)}
    if condition.plant:
        row["caught"] = sum(
            all(v["verdict"] == "slower" for n, v in f.items() if n.startswith(condition.target)) for f in found
        )
        row["changes"] = [round(v["change"], 4) for f in found for n, v in f.items() if n.startswith(condition.target)]
        return row
    row["alarm_pairs"] = sum(any(v["verdict"] == "slower" for v in f.values()) for f in found)
    row["excluding_zero"] = sum(v["low"] > 0 or v["high"] < 0 for f in found for v in f.values())
    for verdict in ("same", "inconclusive", "slower", "faster"):
        row[verdict] = sorted(n for f in found for n, v in f.items() if v["verdict"] == verdict)
    return row


def analyse(out: Path, summary: dict) -> list[dict]:
    """Every condition's tally over its trials (as many as the summary counts) at each number of processes (2 up to
    the summary's) and each threshold."""
    rows = []
    for processes in range(2, summary["processes"] + 1):
        for slowdown in summary["thresholds"]:
            thresholds = Thresholds(slowdown=slowdown, confidence=summary["confidence"])
            row: dict = {"processes": processes, "threshold": slowdown, "confidence": summary["confidence"]}
            for name, trials in summary["trials"].items():
                found = [load_trial(out / name / f"trial-{k}", processes) for k in range(trials)]
                row[name] = tally(name, found, thresholds)
            rows.append(row)
    return rows


def render(rows: list[dict], note: str) -> str:
    """The summary table, then each row's inconclusive benchmarks and the plants' measured changes."""
    lines = ["# Calibration of `mlm-bench upgrade`'s speed verdict", "", note, "",
             "| processes per side | threshold | confidence | regression verdicts idle | intervals excluding 0 idle "
             "| inconclusive idle | regression verdicts under load | intervals excluding 0 under load "
             "| inconclusive under load | 20% collate slowdown caught | 10% forward slowdown caught |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        cells = [str(r["processes"]), f"{r['threshold']:.0%}", f"{r['confidence']:.0%}"]
        for where in ("idle", "loaded"):
            t = r[where]
            cells += [f"{t['alarm_pairs']}/{t['pairs']} pairs", f"{t['excluding_zero']}/{t['comparisons']}",
                      f"{len(t['inconclusive'])}/{t['comparisons']}"]  # fmt: skip
        cells += [f"{r[p]['caught']}/{r[p]['pairs']}" for p in ("collate", "forward")]
        lines.append("| " + " | ".join(cells) + " |")
    for r in rows:
        for where in ("idle", "loaded"):
            names = r[where]["inconclusive"]
            counted = ", ".join(f"{n} {names.count(n)}" for n in sorted(set(names))) or "none"
            lines.append(f"\nInconclusive {where}, {r['processes']} processes at {r['threshold']:.0%}: {counted}")
    last = rows[-1]
    for plant in ("collate", "forward"):
        changes = ", ".join(f"{c:+.1%}" for c in last[plant]["changes"])
        lines.append(f"\nPlanted {plant}, measured change ({last['processes']} processes): {changes}")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="Trials per condition (each gives 2 ordered pairs).")
    parser.add_argument("--processes", type=int, default=3, help="Benchmark processes per side, as upgrade runs.")
    parser.add_argument("--hogs", type=int, default=1, help="Busy-looping processes beside the loaded trials.")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="The environment's interpreter.")
    parser.add_argument("--out", type=Path, default=Path("runs") / "upgrade-calibration")  # results/ by hand
    parser.add_argument("--thresholds", default="0.05,0.07", help="Comma-separated slowdown thresholds.")
    parser.add_argument("--confidence", type=float, default=0.99, help="Confidence of the change's interval.")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS),
                        help="The order to run the conditions' trials in (all are analysed).")  # fmt: skip
    parser.add_argument("--note", default="", help="Machine conditions and provenance to print in the summary.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.trials < 1 or args.processes < 2:
        parser.error("pass --trials >= 1 and --processes >= 2: the interval is over processes")
    for name in args.conditions:
        condition = CONDITIONS[name]
        for k in range(args.trials):
            print(f"{name}: trial {k + 1}/{args.trials}", flush=True)
            with hogs(args.hogs if condition.hogs else 0):
                run_trial(args.out / name / f"trial-{k}", condition, args.python, args.processes)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    trials = {name: len(list((args.out / name).glob("trial-*"))) for name in CONDITIONS}  # all trials run so far
    summary = {"trials": trials, "processes": args.processes, "hogs": args.hogs, "thresholds": thresholds,
               "confidence": args.confidence, "note": args.note}  # fmt: skip
    summary["rows"] = analyse(args.out, summary)
    write_json_atomic(args.out / "summary.json", summary)
    text = render(summary["rows"], args.note)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
