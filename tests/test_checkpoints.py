"""Checkpoints: a checkpoint counts only when every file Trainer resumes from is there and whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mlm_bench.runs.checkpoints import CHECKPOINTS, checkpoints, is_complete, last_complete_checkpoint


def write_checkpoint(run_dir: Path, step: int) -> Path:
    """The files Trainer's _save_checkpoint writes (4.57 and 5.x), with small contents."""
    path = run_dir / CHECKPOINTS / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"weight": torch.randn(64, 64)}, str(path / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({"state": torch.randn(64)}, path / name)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    return path


@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.pt", "rng_state.pth", "trainer_state.json"])
@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_checkpoint_missing_or_cut_off_file_is_incomplete(damage, how, tmp_path):
    checkpoint = write_checkpoint(tmp_path, 4)
    assert is_complete(checkpoint)
    target = checkpoint / damage
    if how == "delete":
        target.unlink()
    else:
        os.truncate(target, target.stat().st_size // 2)
    assert not is_complete(checkpoint)


def test_the_last_complete_checkpoint_is_the_newest_whole_one(tmp_path):
    """Trainer's get_last_checkpoint would take checkpoint-6, cut off mid-save; a resume must take checkpoint-4."""
    write_checkpoint(tmp_path, 2)
    write_checkpoint(tmp_path, 4)
    newest = write_checkpoint(tmp_path, 6)
    os.truncate(newest / "optimizer.pt", 10)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert last_complete_checkpoint(tmp_path) == tmp_path / CHECKPOINTS / "checkpoint-4"
