"""Two runs' results.json compared: what a training run of one configuration learned in each environment (losses,
context gain, accuracy at [MASK], the resolved optimizer and tokenizer), under the gate's tolerances.

Runs of other settings or other data are refused: their figures differ for reasons no upgrade caused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlm_bench.errors import UsageError
from mlm_bench.gate.compare import QualityChange, Thresholds, compare_quality

# What must be equal for two runs to be compared: everything that defines the run but the environment.
SAME = ("settings", "corpus.fingerprint")


def load_run(path: Path) -> dict[str, Any]:
    """A results.json, checked to be one `mlm-bench run` wrote (of any schema version this gate reads)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        reason = f"cannot read run results {path} ({err})"
        raise UsageError(f"{reason}: pass the results.json `mlm-bench run` wrote") from err
    missing = [key for key in ("schema_version", "settings", "train", "eval", "versions") if key not in found]
    if not isinstance(found, dict) or missing:
        raise UsageError(f"{path} is not a finished run's results.json (no {', '.join(missing)}): pass the "
                         "results.json `mlm-bench run` wrote")  # fmt: skip
    return found


def _field(record: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        record = record.get(part, {}) if isinstance(record, dict) else {}
    return record


def _extra(record: dict[str, Any]) -> dict[str, Any]:
    """A run's figures in the shape of a benchmark's extra_info, so the gate's tolerances apply as they do there."""
    evaluated = record["eval"]
    return {
        "losses": {"train": record["train"].get("train_loss"), "eval_at_mask": evaluated.get("loss")},
        "metrics": {"context_gain": evaluated.get("context_gain"), "accuracy_at_mask": evaluated.get("accuracy")},
        "exact": {"optimizer": record["train"].get("optimizer"), "special_tokens": record.get("special_tokens"),
                  "vocab_size": record.get("vocab_size"), "steps": record["train"].get("steps")},
    }  # fmt: skip


def compare_runs(base: dict[str, Any], new: dict[str, Any], thresholds: Thresholds) -> list[QualityChange]:
    """Each figure of the two runs, `changed` beyond the gate's tolerance; refused when they are not one config."""
    differ = [key for key in SAME if _field(base, key) != _field(new, key)]
    if differ:
        raise UsageError(f"the two runs differ in {', '.join(differ)}, so their figures differ for reasons no "
                         "upgrade caused: compare two runs of one --config on the same data")  # fmt: skip
    return compare_quality("run", {"extra_info": _extra(base)}, {"extra_info": _extra(new)}, thresholds)
