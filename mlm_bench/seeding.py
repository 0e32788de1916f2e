"""Determinism: the one place that seeds every RNG and pins float behaviour."""

from __future__ import annotations

import torch
from transformers import set_seed


def seed_everything(seed: int, allow_tf32: bool = False) -> None:
    """Seed python, numpy and torch; TF32 stays off unless asked for, so CUDA matmuls match fp32 runs."""
    set_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
