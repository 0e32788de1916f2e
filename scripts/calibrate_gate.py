"""Calibrate `mlm-bench gate`: its false-alarm rate over reruns of one environment, and planted faults it must catch.

Runs the CPU benchmarks N times unchanged, once with the collator made 20% slower (--plant-slowdown) and once
with the learning rate halved (--plant-lr-factor), then gates every ordered pair of clean runs (a flag there is a
false alarm) and every clean run against each planted run (a miss there is a failure to detect), for several
thresholds.

    python scripts/calibrate_gate.py --runs 5 --out results/calibration
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlm_bench.gate import BenchmarkRun, Thresholds, compare, load_run, short_name  # noqa: E402

PLANTS = {
    "slowdown": ["--plant-slowdown", "0.2"],  # the collator takes 20% longer per call
    "loss": ["--plant-lr-factor", "0.5"],  # half the learning rate: the same seed learns less in 30 steps
}
PLANTED_STAGE = "test_collate"


def run_benchmarks(python: str, out: Path, extra: list[str]) -> Path:
    """One `pytest benchmarks/test_cpu.py` run into out (skipped when out already exists, so analysis can be redone)."""
    if out.exists():
        return out
    cmd = [python, "-m", "pytest", "benchmarks/test_cpu.py", "-q", f"--benchmark-json={out}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print("$", " ".join(cmd + extra), flush=True)
    subprocess.run(cmd + extra, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return out


def flagged(base: BenchmarkRun, new: BenchmarkRun, thresholds: Thresholds) -> dict[str, list[str]]:
    """Benchmarks the gate calls slower, and those whose learning it calls changed."""
    result = compare(base, new, thresholds)
    return {
        "slower": [short_name(n) for n, s in result.speed.items() if s.verdict == "slower"],
        "learning": sorted({short_name(q.benchmark) for q in result.quality if q.changed}),
    }


def analyse(clean: list[BenchmarkRun], planted: dict[str, BenchmarkRun], grid: list[Thresholds]) -> list[dict]:
    """False alarms over clean pairs and detections of each plant, per threshold setting."""
    rows = []
    # Both orders: load on a shared machine drifts over time, so one order alone would hide alarms.
    pairs = list(itertools.permutations(clean, 2))
    for th in grid:
        alarms = [flagged(a, b, th) for a, b in pairs]
        alarm_pairs = sum(bool(f["slower"] or f["learning"]) for f in alarms)
        per_bench: dict[str, int] = {}
        for f in alarms:
            for name in f["slower"]:
                per_bench[name] = per_bench.get(name, 0) + 1
        slow = [flagged(c, planted["slowdown"], th) for c in clean]
        loss = [flagged(c, planted["loss"], th) for c in clean]
        rows.append(
            {
                "stat": th.stat,
                "threshold": th.slowdown,
                "noise_factor": th.noise_factor,
                "min_rounds": th.min_rounds,
                "pairs": len(pairs),
                "false_alarm_pairs": alarm_pairs,
                "false_alarms_by_benchmark": per_bench,
                "slowdown_detected": sum(any(n.startswith(PLANTED_STAGE) for n in f["slower"]) for f in slow),
                "slowdown_flags": [f["slower"] for f in slow],
                "loss_detected": sum(bool(f["learning"]) for f in loss),
                "comparisons": len(clean),
            }
        )
    return rows


def collate_changes(clean: list[BenchmarkRun], planted: BenchmarkRun, stat: str) -> list[str]:
    """The planted stage's measured change against each clean run, to show the plant really costs ~20%."""
    out = []
    for name, bench in planted.benchmarks.items():
        if short_name(name).startswith(PLANTED_STAGE):
            changes = [bench["stats"][stat] / c.benchmarks[name]["stats"][stat] - 1 for c in clean]
            out.append(f"{short_name(name)}: " + ", ".join(f"{x:+.1%}" for x in changes))
    return out


def render(rows: list[dict], clean: list[BenchmarkRun], planted: dict[str, BenchmarkRun], note: str) -> str:
    lines = [
        "# Gate calibration",
        "",
        note,
        "",
        f"{len(clean)} clean runs -> {rows[0]['pairs']} ordered pairs (false alarm: the gate flags any benchmark of a "
        "pair); "
        f"each planted run is gated against all {len(clean)} clean runs.",
        "",
        "| stat | threshold | noise factor | false alarms (pairs) | rate | planted 20% collate slowdown caught "
        "| planted loss change caught | false alarms by benchmark |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        by_bench = ", ".join(f"{k} {v}" for k, v in sorted(r["false_alarms_by_benchmark"].items())) or "-"
        lines.append(
            f"| {r['stat']} | {r['threshold']:.0%} | {r['noise_factor']:g} | {r['false_alarm_pairs']}/{r['pairs']} | "
            f"{r['false_alarm_pairs'] / r['pairs']:.0%} | {r['slowdown_detected']}/{r['comparisons']} | "
            f"{r['loss_detected']}/{r['comparisons']} | {by_bench} |"
        )
    for stat in sorted({r["stat"] for r in rows}):
        lines += ["", f"Planted slowdown, measured change of the collate stage ({stat}) vs each clean run:"]
        lines += [f"- {line}" for line in collate_changes(clean, planted["slowdown"], stat)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Clean reruns of the same environment (>= 2).")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "calibration")
    parser.add_argument("--python", default=sys.executable, help="Interpreter of the environment to calibrate.")
    parser.add_argument("--thresholds", default="0.05,0.1,0.15,0.2", help="Comma-separated slowdown thresholds.")
    parser.add_argument("--stats", default="median,min", help="Comma-separated timing statistics.")
    parser.add_argument("--noise-factors", default="0,1", help="Comma-separated IQR multipliers.")
    parser.add_argument("--min-rounds", type=int, default=5, help="Gate speed only with this many rounds.")
    parser.add_argument("--note", default="", help="Machine conditions to print in the summary.")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: false alarms are counted over pairs of clean runs")
    args.out.mkdir(parents=True, exist_ok=True)
    clean = [load_run(run_benchmarks(args.python, args.out / f"clean-{i}.json", [])) for i in range(args.runs)]
    planted = {k: load_run(run_benchmarks(args.python, args.out / f"planted-{k}.json", v)) for k, v in PLANTS.items()}
    grid = [
        Thresholds(slowdown=float(t), stat=s, noise_factor=float(f), min_rounds=args.min_rounds)
        for s in args.stats.split(",")
        for f in args.noise_factors.split(",")
        for t in args.thresholds.split(",")
    ]
    rows = analyse(clean, planted, grid)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    text = render(rows, clean, planted, args.note)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
