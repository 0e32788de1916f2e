"""Model invariants: a fresh model predicts near-uniformly, and the sparse MLM head computes the dense loss."""

from __future__ import annotations

import math

import pytest
import torch

from mlm_bench import contract
from mlm_bench.collate import build_collator
from mlm_bench.model import build_model, sparse_mlm_loss
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
