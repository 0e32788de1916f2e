"""Benchmark files as pytest-benchmark writes them, for the gate's tests (tests/test_gate*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlm_bench.gate import compare as gate
from mlm_bench.gate import inputs as gate_inputs

LOSSES = {"5": 8.0, "10": 7.0}


def bench(
    name: str, median: float, noise: float = 0.01, losses: dict | None = None, rounds: int = 10, **extra: Any
) -> dict[str, Any]:
    """One benchmark entry shaped as pytest-benchmark 5 writes it: per-round times spread evenly over
    median x (1 ± noise), the stats the gate reads, and extra_info."""
    data = [median * (1 + noise * (2 * i / (rounds - 1) - 1)) for i in range(rounds)] if rounds > 1 else [median]
    ordered = sorted(data)
    stats = {"min": ordered[0], "mean": sum(data) / len(data), "median": median, "rounds": rounds, "data": data}
    stats["iqr"] = ordered[(3 * rounds) // 4] - ordered[rounds // 4] if rounds > 1 else 0.0
    return {
        "name": name,
        "fullname": f"benchmarks/test_cpu.py::{name}",
        "stats": stats,
        "extra_info": {"losses": losses or {}, "metrics": {}, "samples_per_call": 32, **extra},
    }


def write(path: Path, *benchmarks: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": list(benchmarks)}), encoding="utf-8")
    return path


def runs(
    tmp_path: Path, base: list[dict], new: list[dict], **thresholds: Any
) -> tuple[gate_inputs.BenchmarkRun, gate_inputs.BenchmarkRun, gate.Thresholds]:
    """gate.compare's first three arguments: the two sides written as files and read back, and the thresholds."""
    a, b = write(tmp_path / "a.json", *base), write(tmp_path / "b.json", *new)
    return gate_inputs.load_run(a), gate_inputs.load_run(b), gate.Thresholds(**thresholds)


def verdict(tmp_path: Path, base: list[dict], new: list[dict], **thresholds: Any) -> gate.GateResult:
    return gate.compare(*runs(tmp_path, base, new, **thresholds))
