"""Checkpoints: which of a run's Trainer checkpoints are whole, so only those are resumed from or kept."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

CHECKPOINTS = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Trainer._save_checkpoint (4.57 and 5.x) writes these straight into checkpoint-N, trainer_state.json last,
# with no temp dir and no fsync: a kill mid-save leaves a directory that looks like a checkpoint but is not one.
_TORCH_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth")
_STATE_FILE = "trainer_state.json"
_WEIGHTS = "model.safetensors"
_WEIGHTS_INDEX = "model.safetensors.index.json"


def checkpoint_step(path: Path) -> int | None:
    """The step of a `checkpoint-N` directory name, None for anything else."""
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def _safetensors_complete(path: Path) -> bool:
    # safetensors refuses a file whose header does not cover exactly the bytes that follow it.
    try:
        with safe_open(str(path), "pt"):
            return True
    except (OSError, SafetensorError):
        return False


def _weights_complete(checkpoint: Path) -> bool:
    index = checkpoint / _WEIGHTS_INDEX
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return False
        return all(_safetensors_complete(checkpoint / shard) for shard in shards)
    return _safetensors_complete(checkpoint / _WEIGHTS)


def is_complete(checkpoint: Path) -> bool:
    """True when every file Trainer needs to resume is there and whole, not cut off by a kill or a full disk."""
    step = checkpoint_step(checkpoint)
    if step is None or not checkpoint.is_dir():
        return False
    try:
        state = json.loads((checkpoint / _STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if state.get("global_step") != step or not _weights_complete(checkpoint):
        return False
    # torch.save writes a zip whose central directory comes last: a cut-off file has none.
    return all(zipfile.is_zipfile(checkpoint / name) for name in _TORCH_FILES)


def checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories of a run, oldest step first, complete or not."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint that is complete (transformers' get_last_checkpoint takes the newest, whole or not)."""
    complete = [p for p in checkpoints(run_dir) if is_complete(p)]
    return complete[-1] if complete else None


def remove_incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Delete checkpoints a kill or error left half-written, so neither Trainer nor a later resume reads them."""
    removed = [p for p in checkpoints(run_dir) if not is_complete(p)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
