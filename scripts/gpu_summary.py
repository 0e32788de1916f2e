"""benchmarks/test_gpu.py's --benchmark-json as the record results/gpu/ keeps: machine, versions, command, and per
variant non-pad tokens/s, MFU against the datasheet and a measured peak, warm-up and recompiles; then the fast path
against the recipe as written, and each of issue 13's targets met or not.

Usage: python scripts/gpu_summary.py gpu-bench.json gpu-summary.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlm_bench.config import flat_fields
from mlm_bench.runs.results import write_json_atomic

# Issue 13's targets for the fast path on seed-shape (H100 or H200).
TARGET_MFU, TARGET_SPEEDUP, TARGET_WARMUP_S = 0.40, 10.0, 15.0
FIELDS = (
    "nonpad_tokens_per_second_all_rounds",
    "mfu_vs_datasheet",
    "mfu_vs_measured_peak",
    "warmup_seconds",
    "graphs_compiled_in_warmup",
    "graphs_compiled_after_warmup",
    "graph_breaks",
    "compiled",
    "pad_fraction",
)
SETTINGS = (
    "packing",
    "flatten",
    "sparse_head",
    "sparse_capacity",
    "attn_implementation",
    "bf16",
    "tf32",
    "torch_compile",
)
HEADER = "| variant | non-pad tokens/s | step (median) | MFU datasheet | MFU measured peak | warm-up | graphs after |"


def summarise(bench: dict[str, Any]) -> dict[str, Any]:
    """The results/gpu/ record of one benchmarks/test_gpu.py run."""
    variants, first = {}, None
    for entry in bench["benchmarks"]:
        extra = entry["extra_info"]
        first = first or extra
        row = {key: extra.get(key) for key in FIELDS}
        row["nonpad_tokens_per_second"] = row.pop("nonpad_tokens_per_second_all_rounds")
        row["step_seconds_median"] = entry["stats"]["median"]
        settings = flat_fields(extra["settings"])  # grouped since 7 Dec 2026, flat before
        row["settings"] = {key: settings[key] for key in SETTINGS}
        variants[extra["variant"]] = row
    if first is None:
        raise SystemExit("no benchmark in the file: did benchmarks/test_gpu.py skip (no CUDA, no --gpu-dry-run)?")
    summary: dict[str, Any] = {
        "dry_run": first["dry_run"],
        "machine": first["device"],
        # machine_info since 7 Dec 2026; each benchmark's extra_info in earlier files.
        "versions": bench.get("machine_info", {}).get("versions", first.get("versions")),
        "command": bench.get("machine_info", {}).get("command", first.get("command")),
        # gpu_check.sh's COMMIT: the device's copy of .git may name an older commit than the tree it ran.
        "commit": os.environ.get("COMMIT") or bench.get("commit_info", {}).get("id"),
        "datetime": bench.get("datetime"),
        "measured_peak": first["measured_peak"],
        "datasheet_bf16_flops_per_second": first["datasheet_bf16_flops_per_second"],
        "parameters": first["parameters"],
        "variants": variants,
    }
    if {"fast", "recipe"} <= set(variants):
        fast = variants["fast"]
        summary["fast_vs_recipe_speedup"] = (
            fast["nonpad_tokens_per_second"] / variants["recipe"]["nonpad_tokens_per_second"]
        )
        summary["targets"] = {
            f"fast mfu_vs_datasheet >= {TARGET_MFU}": (fast["mfu_vs_datasheet"] or 0) >= TARGET_MFU,
            f"fast_vs_recipe_speedup >= {TARGET_SPEEDUP}": summary["fast_vs_recipe_speedup"] >= TARGET_SPEEDUP,
            f"fast warmup_seconds <= {TARGET_WARMUP_S}": fast["warmup_seconds"] <= TARGET_WARMUP_S,
            "fast compiles nothing after warm-up": fast["graphs_compiled_after_warmup"] == 0,
        }
    return summary


def table(summary: dict[str, Any]) -> str:
    """The variants as a Markdown table."""
    lines = [HEADER, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in summary["variants"].items():
        datasheet = "n/a" if row["mfu_vs_datasheet"] is None else f"{row['mfu_vs_datasheet']:.1%}"
        lines.append(
            f"| {name} | {row['nonpad_tokens_per_second']:,.0f} | {row['step_seconds_median'] * 1e3:.1f} ms | "
            f"{datasheet} | {row['mfu_vs_measured_peak']:.1%} | {row['warmup_seconds']:.1f} s | "
            f"{row['graphs_compiled_after_warmup']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", type=Path)
    parser.add_argument("out_json", type=Path)
    args = parser.parse_args(argv)
    summary = summarise(json.loads(args.bench_json.read_text(encoding="utf-8")))
    write_json_atomic(args.out_json, summary)
    print(table(summary))
    for target, met in summary.get("targets", {}).items():
        print(f"{'met' if met else 'NOT MET'}: {target}")
    print(f"written: {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
