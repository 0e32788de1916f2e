"""Model: a fresh model predicts near-uniformly; the sparse head computes the dense loss through the model's own
forward; the attention setting reaches the model."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import RobertaConfig, RobertaForMaskedLM

from mlm_bench import contract
from mlm_bench.collate import build_collator
from mlm_bench.errors import UsageError
from mlm_bench.model import build_model, isolate_packed_rows, sparse_mlm_loss
from mlm_bench.seeding import seed_everything


@pytest.fixture(scope="module")
def fresh(tokenizer, heldout_rows, tiny_settings):
    """A seeded fresh model and a seeded batch of 32 real packed rows."""
    seed_everything(tiny_settings.seed)
    model = build_model(tiny_settings, tokenizer).eval()
    batch = build_collator(tokenizer, tiny_settings, seed=7)([dict(r) for r in heldout_rows.select(range(32))])
    return model, batch


def test_initial_loss_is_ln_vocab(fresh, tokenizer):
    """A freshly initialised model's MLM loss on real batches is finite, positive and within 1% of ln V."""
    model, batch = fresh
    with torch.no_grad():
        loss = float(model(**batch).loss)
    contract.check_initial_loss(loss, len(tokenizer))


def test_sparse_head_loss_equals_dense_loss(fresh):
    """sparse_mlm_loss (vocabulary projection at labelled positions only) equals BertForMaskedLM's own loss."""
    model, batch = fresh
    with torch.no_grad():
        dense, sparse = float(model(**batch).loss), float(sparse_mlm_loss(model, batch))
    assert math.isclose(sparse, dense, rel_tol=1e-5), (sparse, dense)


@pytest.mark.parametrize("name", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_model(tokenizer, tiny_settings, name: str) -> None:
    assert build_model(tiny_settings.replace(attn_implementation=name), tokenizer).config._attn_implementation == name


def test_unusable_attention_is_refused_with_the_fix(tokenizer, tiny_settings) -> None:
    with pytest.raises(UsageError, match="pass --attn_implementation sdpa or eager"):
        build_model(tiny_settings.replace(attn_implementation="no-such-kernel"), tokenizer)


def test_sparse_loss_runs_through_a_wrapper_forward(tokenizer, heldout_rows, tiny_settings) -> None:
    """Through a DataParallel wrapper the sparse loss equals the dense one and calls the wrapper's forward.

    DDP syncs gradients only for calls through its own forward; calling model.bert directly left ranks diverged.
    """
    seed_everything(tiny_settings.seed)
    model = build_model(tiny_settings, tokenizer).eval()
    batch = build_collator(tokenizer, tiny_settings, seed=7)([dict(r) for r in heldout_rows.select(range(8))])
    wrapper = torch.nn.DataParallel(model)
    calls = []
    wrapper.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        dense, sparse = float(model(**batch).loss), float(sparse_mlm_loss(wrapper, batch))
    assert calls == [1]
    assert math.isclose(sparse, dense, rel_tol=1e-5), (sparse, dense)


@pytest.mark.parametrize("name", ["eager", "sdpa"])
def test_packed_rows_compute_as_if_alone(tokenizer, unpacked_rows, tiny_settings, texts_in, name: str) -> None:
    """With isolate_packed_rows, each text packed by flatten gets the logits (1e-5) and the batch the loss it gets
    alone in a padded row; without it the texts attend to those packed beside them, and their logits change."""
    settings = tiny_settings.replace(packing=False, short_row_length=0, attn_implementation=name)
    examples = [dict(r) for r in unpacked_rows.select(range(16))]
    padded = build_collator(tokenizer, settings, seed=3)(examples)
    flat = build_collator(tokenizer, settings.replace(flatten=True), seed=3)(examples)
    assert len(flat["input_ids"]) < len(padded["input_ids"])  # texts were packed together
    seed_everything(settings.seed)
    model = build_model(settings, tokenizer).eval()
    with torch.no_grad():
        alone = model(**padded)
        leaking = model(**flat).logits
        isolate_packed_rows(model)
        isolated = model(**flat)
    expected = {key: alone.logits[span] for key, span in texts_in(padded)}
    isolated_gap = max(float((isolated.logits[span] - expected[key]).abs().max()) for key, span in texts_in(flat))
    leaking_gap = max(float((leaking[span] - expected[key]).abs().max()) for key, span in texts_in(flat))
    assert isolated_gap < 1e-5, isolated_gap
    assert leaking_gap > 1e-3, leaking_gap
    assert math.isclose(float(isolated.loss), float(alone.loss), rel_tol=1e-5)


def test_flatten_refuses_a_model_that_numbers_positions_otherwise() -> None:
    """RoBERTa numbers positions from padding_idx + 1, so rows numbered from 0 would silently shift them."""
    config = RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    with pytest.raises(UsageError, match="pass --flatten false"):
        isolate_packed_rows(RobertaForMaskedLM(config))
