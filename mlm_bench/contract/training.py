"""Training contract: what a few optimizer steps must do on any library version (a fresh model near ln V, every
weight moved, the loss lowered, the learning rate on schedule), as checks that raise ContractViolation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from mlm_bench.contract.masking import ContractViolation


def check_initial_loss(loss: float, vocab_size: int, tolerance: float = 0.01) -> None:
    """A freshly initialised MLM predicts nearly uniformly: its loss is within `tolerance` (relative) of ln V."""
    target = math.log(vocab_size)
    if not math.isfinite(loss) or loss <= 0 or abs(loss - target) > tolerance * target:
        raise ContractViolation(f"initial MLM loss {loss:.4f} is not within {tolerance:.0%} of ln V = {target:.4f}")


def check_training_progress(
    loss_before: float, loss_after: float, weights_before: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> None:
    """A few optimizer steps change every trainable tensor and lower the loss on a fixed batch; losses are finite."""
    for name, loss in (("before", loss_before), ("after", loss_after)):
        if not math.isfinite(loss) or loss <= 0:
            raise ContractViolation(f"loss {name} training is {loss}: it must be finite and positive")
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, weights_before[n])]
    if unchanged:
        raise ContractViolation(f"training left {len(unchanged)} parameter tensors unchanged, e.g. {unchanged[:3]}")
    if not loss_after < loss_before:
        raise ContractViolation(f"training did not lower the loss: {loss_before:.4f} -> {loss_after:.4f}")


def check_schedule(logged: Sequence[float], expected: Sequence[float], rel: float = 1e-6) -> None:
    """The learning rate at each step equals the configured schedule's value."""
    if len(logged) != len(expected):
        raise ContractViolation(f"{len(logged)} learning rates logged for {len(expected)} steps")
    for step, (got, want) in enumerate(zip(logged, expected, strict=True), start=1):
        if not math.isclose(got, want, rel_tol=rel, abs_tol=1e-12):
            raise ContractViolation(f"step {step}: learning rate {got:.6g}, the schedule says {want:.6g}")
