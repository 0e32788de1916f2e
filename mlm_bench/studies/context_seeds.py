"""Seed spread of the context workload: the measurement behind tests/test_context.py's thresholds.

Run `python -m mlm_bench.studies.context_seeds --seeds 0-9` in each environment of the version matrix; it prints one
Markdown row per seed ([MASK] loss, padded loss, accuracy, padding shift) and the worst of each.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mlm_bench.contract.context import WORKLOAD, load_workload, train_workload
from mlm_bench.runs.results import versions


def seed_range(text: str) -> list[int]:
    """Seeds from "A-B" (inclusive) or "A"."""
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-9"), help="e.g. 0-9")
    args = parser.parse_args(argv)
    # The tests' thread count: the same summation order as the suite.
    torch.set_num_threads(1)
    found = versions()
    print(f"transformers {found['transformers']}, torch {found['torch']}, {WORKLOAD.training.max_steps} steps per seed")
    print("| seed | [MASK] loss | padded loss | accuracy | padding shift |\n|---:|---:|---:|---:|---:|")
    workload = load_workload()
    worst = [0.0, 0.0, 1.0, 0.0]
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            _, _, score = train_workload(workload, Path(scratch), WORKLOAD.replace(seed=seed))
            row = [score.loss, score.padded_loss, score.accuracy, score.padding_shift]
            worst = [max(worst[0], row[0]), max(worst[1], row[1]), min(worst[2], row[2]), max(worst[3], row[3])]
            print(f"| {seed} | {row[0]:.4f} | {row[1]:.4f} | {row[2]:.3f} | {row[3]:.1e} |", flush=True)
    print(f"| worst | {worst[0]:.4f} | {worst[1]:.4f} | {worst[2]:.3f} | {worst[3]:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
