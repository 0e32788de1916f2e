"""Evaluate: the metric is exact on models whose answer is known (uniform, oracle) and the baseline is a unigram."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mlm_bench.collate import build_collator
from mlm_bench.evaluate import evaluate_mlm, unigram_log_probs


class _FixedLogits(torch.nn.Module):
    """A stand-in model: uniform logits, or (oracle) a one-hot on the true token."""

    def __init__(self, vocab: int, oracle_ids: torch.Tensor | None = None) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 1)
        self.vocab, self.oracle_ids = vocab, oracle_ids
        self.device = torch.device("cpu")

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        logits = torch.zeros(*input_ids.shape, self.vocab)
        if self.oracle_ids is not None:
            logits.scatter_(-1, self.oracle_ids[: input_ids.shape[0]].unsqueeze(-1), 50.0)
        return SimpleNamespace(logits=logits)


def _evaluate(model, rows, tokenizer, settings):
    unigram = unigram_log_probs(rows, tokenizer, len(tokenizer))
    return evaluate_mlm(model, rows, build_collator(tokenizer, settings, seed=7), unigram, batch_size=len(rows))


def test_uniform_model_scores_ln_v(heldout_rows, tokenizer, tiny_settings) -> None:
    result = _evaluate(_FixedLogits(len(tokenizer)), heldout_rows, tokenizer, tiny_settings)
    assert result.loss == pytest.approx(math.log(len(tokenizer)), rel=1e-6)
    assert result.uniform_loss == pytest.approx(math.log(len(tokenizer)))
    assert result.perplexity == pytest.approx(len(tokenizer), rel=1e-5)
    assert result.masked_tokens > 0.1 * sum(len(r) for r in heldout_rows["input_ids"])


def test_oracle_model_scores_perfect_accuracy(heldout_rows, tokenizer, tiny_settings) -> None:
    oracle = torch.tensor(heldout_rows["input_ids"])
    result = _evaluate(_FixedLogits(len(tokenizer), oracle), heldout_rows, tokenizer, tiny_settings)
    assert result.accuracy == 1.0
    assert result.loss < 1e-6


def test_unigram_baseline_beats_uniform_and_ignores_specials(heldout_rows, tokenizer, tiny_settings) -> None:
    log_probs = unigram_log_probs(heldout_rows, tokenizer, len(tokenizer))
    assert log_probs.exp().sum().item() == pytest.approx(1.0)
    assert math.isinf(log_probs[tokenizer.cls_token_id].item())
    assert math.isfinite(log_probs[tokenizer.unk_token_id].item())
    result = _evaluate(_FixedLogits(len(tokenizer)), heldout_rows, tokenizer, tiny_settings)
    assert result.unigram_loss < result.uniform_loss - 1.0


def test_fixed_masking_seed_gives_identical_metrics(heldout_rows, tokenizer, tiny_settings) -> None:
    model = _FixedLogits(len(tokenizer))
    first = _evaluate(model, heldout_rows, tokenizer, tiny_settings)
    assert _evaluate(model, heldout_rows, tokenizer, tiny_settings) == first
