"""Training invariants: a few seeded steps change the weights and lower the loss; the lr follows its schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from mlm_bench import contract
from mlm_bench.collate import build_collator
from mlm_bench.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.train import MlmTrainer, TrainSummary, train, training_arguments

STEPS, WARMUP = 6, 2


def expected_lr(scheduler: str, peak: float, step: int, warmup: int, total: int) -> float:
    """The learning rate of optimizer step `step` (1-based) written out from the schedules' definitions."""
    done = step - 1
    if done < warmup:
        return peak * done / warmup
    progress = (done - warmup) / (total - warmup)
    if scheduler == "linear":
        return peak * (1 - progress)
    if scheduler == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    return peak


@dataclass
class Trained:
    """A short seeded training run and what was measured around it."""

    summary: TrainSummary
    model: torch.nn.Module
    weights_before: dict[str, torch.Tensor]
    loss_before: float
    loss_after: float


def fixed_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.fixture(scope="module")
def trained(tokenizer, heldout_rows, tiny_settings, tmp_path_factory) -> Trained:
    """Six linear-schedule steps (2 warmup) of the tiny model on the held-out rows, at the settings' seed."""
    settings = tiny_settings.replace(max_steps=STEPS, warmup_steps=WARMUP, lr_scheduler_type="linear")
    seed_everything(settings.seed)
    model = build_model(settings, tokenizer)
    batch = build_collator(tokenizer, settings, seed=7)([dict(r) for r in heldout_rows.select(range(32))])
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    before = fixed_loss(model, batch)
    summary = train(model, heldout_rows, build_collator(tokenizer, settings), settings, tmp_path_factory.mktemp("t"))
    return Trained(summary, model, weights, before, fixed_loss(model, batch))


def test_training_changes_weights_and_lowers_loss(trained):
    """Six seeded steps change every parameter tensor and lower the loss on a fixed masked batch."""
    contract.check_training_progress(trained.loss_before, trained.loss_after, trained.weights_before, trained.model)
    assert trained.summary.steps == STEPS
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in trained.summary.loss_curve)


def test_logged_lr_follows_the_linear_schedule(trained, tiny_settings):
    """The learning rate logged at every training step is linear warmup then linear decay to 0."""
    logged = [e["learning_rate"] for e in trained.summary.loss_curve]
    peak = tiny_settings.learning_rate
    contract.check_schedule(logged, [expected_lr("linear", peak, s, WARMUP, STEPS) for s in range(1, STEPS + 1)])


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant_with_warmup"])
def test_configured_scheduler_step_by_step(tokenizer, tiny_settings, tmp_path, scheduler):
    """The Trainer built from our settings steps the configured scheduler exactly as its definition says."""
    settings = tiny_settings.replace(max_steps=STEPS, warmup_steps=WARMUP, lr_scheduler_type=scheduler)
    model = build_model(settings, tokenizer)
    trainer = MlmTrainer(model=model, args=training_arguments(settings, tmp_path))
    trainer.create_optimizer_and_scheduler(num_training_steps=STEPS)
    rates = []
    for _ in range(STEPS):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    peak = settings.learning_rate
    contract.check_schedule(rates, [expected_lr(scheduler, peak, s, WARMUP, STEPS) for s in range(1, STEPS + 1)])
