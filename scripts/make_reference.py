"""Condense a `pytest benchmarks/ --benchmark-json` file into a reference baseline under results/reference/.

Keeps what a reader needs to compare against: machine, versions, the command, and per benchmark the timing
statistics, throughput, losses and metrics.

    python scripts/make_reference.py results/tf5.json results/reference/cpu-tf5.json --command "tox -e tf5"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlm_bench.gate.compare import short_name  # noqa: E402
from mlm_bench.gate.inputs import load_run  # noqa: E402
from mlm_bench.runs.results import write_json_atomic  # noqa: E402

KEPT_STATS = ("min", "median", "iqr", "mean", "rounds")
KEPT_EXTRA = (
    "samples_per_second",
    "tokens_per_second",
    "nonpad_tokens_per_second",
    "pad_fraction",
    "losses",
    "metrics",
)
KEPT_MACHINE = ("node", "processor", "machine", "python_version", "system", "release", "cpu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark_json", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--command", required=True, help="The command that produced benchmark_json.")
    parser.add_argument("--note", default="", help="Conditions worth knowing (load, shared machine, ...).")
    args = parser.parse_args()
    run = load_run(args.benchmark_json)
    machine = {k: run.machine[k] for k in KEPT_MACHINE if k in run.machine}
    if isinstance(machine.get("cpu"), dict):
        machine["cpu"] = {k: machine["cpu"].get(k) for k in ("brand_raw", "count", "arch") if k in machine["cpu"]}
    first = next(iter(run.benchmarks.values()))
    reference = {
        "source": str(args.benchmark_json),
        "command": args.command,
        "note": args.note,
        "machine": machine,
        "device": first.get("extra_info", {}).get("device"),
        "versions": run.versions,
        "benchmarks": {
            short_name(name): {
                "stats_seconds": {k: bench["stats"][k] for k in KEPT_STATS},
                **{k: bench["extra_info"][k] for k in KEPT_EXTRA if k in bench.get("extra_info", {})},
            }
            for name, bench in run.benchmarks.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, reference)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
