"""Run the CPU benchmarks of two environments interleaved (A, B, A, B, ...) and merge each one's rounds.

Interleaving spreads whatever else the machine does over both environments alike, so a slowdown the gate sees is
the environments', not the minute's. Each environment's runs are merged into one pytest-benchmark JSON: per
benchmark, the per-round times of all its runs pooled and the statistics the gate reads recomputed; the learning
values come from the first run (they are fixed by the seed).

    python -m mlm_bench.gate.interleave .tox/tf4/bin/python .tox/tf5/bin/python --repeat 3 --out runs/matrix/interleaved
    mlm-bench gate runs/matrix/interleaved/base.json runs/matrix/interleaved/new.json

Every call measures afresh: an --out that already holds runs is refused, so nothing earlier is merged as new.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from mlm_bench.gate.inputs import load_run, pooled

# Run from a checkout: the benchmarks are the checkout's, not the package's.
BENCHMARKS = Path("benchmarks") / "test_cpu.py"


def merged(paths: list[Path]) -> dict:
    """The first file, with each benchmark's rounds pooled over all files and its statistics recomputed."""
    out = json.loads(paths[0].read_text(encoding="utf-8"))
    side = pooled([load_run(path) for path in paths], paths[0])
    out["benchmarks"] = [side.benchmarks[bench["fullname"]] for bench in out["benchmarks"]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_python", help="Interpreter of the old environment.")
    parser.add_argument("new_python", help="Interpreter of the new environment.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per environment, alternating.")
    parser.add_argument("--out", type=Path, default=Path("runs") / "matrix" / "interleaved")
    parser.add_argument("--select", default="", help="pytest -k of the benchmarks to run.")
    args = parser.parse_args()
    if not BENCHMARKS.is_file():
        parser.error(f"{BENCHMARKS} not found here: run from a checkout of mlm-bench")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} already holds files: remove it, or pass an empty --out")
    args.out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"base": [], "new": []}
    for i in range(args.repeat):
        for side, python in (("base", args.base_python), ("new", args.new_python)):
            path = args.out / f"{side}-{i}.json"
            files[side].append(path)
            cmd = [python, "-m", "pytest", str(BENCHMARKS), "-q", f"--benchmark-json={path}"]
            cmd += ["-k", args.select] if args.select else []
            print("$", " ".join(cmd), flush=True)
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    for side, paths in files.items():
        (args.out / f"{side}.json").write_text(json.dumps(merged(paths)), encoding="utf-8")
        print(f"wrote {args.out / f'{side}.json'} ({len(paths)} runs merged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
