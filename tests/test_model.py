"""Model: a fresh model predicts near-uniformly; the sparse head computes the dense loss through the model's own
forward; the attention setting reaches the model."""

from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.utils import counters
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols
from transformers import (
    DistilBertConfig,
    DistilBertForMaskedLM,
    PretrainedConfig,
    RobertaConfig,
    RobertaForMaskedLM,
)

from mlm_bench.compat import BERT_HAS_FLEX_ATTENTION
from mlm_bench.config import preset
from mlm_bench.contract import training as contract_training
from mlm_bench.data.collate import build_collator
from mlm_bench.errors import UsageError
from mlm_bench.modeling import model as model_module
from mlm_bench.modeling.model import (
    IGNORE_INDEX,
    build_model,
    check_compatible,
    head_width,
    isolate_packed_rows,
    load_model,
    mark_rows_dynamic,
    overflow,
    selected_first,
    sparse_mlm_loss,
)
from mlm_bench.seeding import seed_everything
from mlm_bench.testing import faults
from mlm_bench.testing.helpers import tiny_bert


@pytest.fixture(scope="module")
def fresh(tokenizer, heldout_rows, tiny_settings):
    """A seeded fresh model and a seeded batch of 32 real packed rows."""
    seed_everything(tiny_settings.training.seed)
    model = build_model(tiny_settings, tokenizer).eval()
    batch = build_collator(tokenizer, tiny_settings, seed=7)([dict(r) for r in heldout_rows.select(range(32))])
    return model, batch


def test_initial_loss_is_ln_vocab(fresh, tokenizer):
    """A freshly initialised model's MLM loss on real batches is finite, positive and within 1% of ln V."""
    model, batch = fresh
    with torch.no_grad():
        loss = float(model(**batch).loss)
    contract_training.check_initial_loss(loss, len(tokenizer))


def test_sparse_head_loss_equals_dense_loss(fresh):
    """sparse_mlm_loss (vocabulary projection at labelled positions only) equals BertForMaskedLM's own loss."""
    model, batch = fresh
    with torch.no_grad():
        dense, sparse = float(model(**batch).loss), float(sparse_mlm_loss(model, batch))
    assert math.isclose(sparse, dense, rel_tol=1e-5), (sparse, dense)


def test_fixed_width_head_loss_equals_dense_loss(fresh):
    """A sparse head of fixed width (labelled positions first, the rest ignored) gives the dense loss, as long as
    no row has more labels than the width; with a narrower head the labels past it are counted and the loss moves."""
    model, batch = fresh
    labels = batch["labels"]
    most = int((labels != IGNORE_INDEX).sum(dim=1).max())
    wide, narrow = most / labels.shape[1], (most - 2) / labels.shape[1]
    with torch.no_grad():
        dense = float(model(**batch).loss)
        fixed, short = (float(sparse_mlm_loss(model, batch, capacity)) for capacity in (wide, narrow))
    assert head_width(labels.shape[1], wide) == most < labels.shape[1]
    assert math.isclose(fixed, dense, rel_tol=1e-5), (fixed, dense)
    assert int(overflow(labels, wide)) == 0
    assert int(overflow(labels, narrow)) >= 2
    assert not math.isclose(short, dense, rel_tol=1e-5)


def test_selected_first_lists_the_selected_positions_in_order() -> None:
    selected = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert selected_first(selected, 4).tolist() == [[1, 3, 4, 0], [0, 1, 2, 3]]


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
    seed_everything(tiny_settings.training.seed)
    model = build_model(tiny_settings, tokenizer).eval()
    batch = build_collator(tokenizer, tiny_settings, seed=7)([dict(r) for r in heldout_rows.select(range(8))])
    wrapper = torch.nn.DataParallel(model)  # moves the model to cuda:0 where there is one
    batch = {key: value.to(model.device) for key, value in batch.items()}
    calls = []
    wrapper.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        dense, sparse = float(model(**batch).loss), float(sparse_mlm_loss(wrapper, batch))
    assert calls == [1]
    assert math.isclose(sparse, dense, rel_tol=1e-5), (sparse, dense)


NEEDS_FLEX = pytest.mark.skipif(
    not BERT_HAS_FLEX_ATTENTION, reason="BERT takes flex_attention from 5.0 (refusal tested)"
)
FLEX_ON_5X = pytest.param(
    "flex_attention",
    marks=NEEDS_FLEX,
)


def packed_against_alone(tokenizer, unpacked_rows, tiny_settings, texts_in, name: str) -> dict[str, float]:
    """16 texts through a model with attention `name`, packed by flatten with and without isolate_packed_rows and
    each alone in a padded row: the largest logit gap of the isolated and of the leaking packing, and both losses."""
    settings = tiny_settings.replace(packing=False, short_row_length=0, attn_implementation=name)
    examples = [dict(r) for r in unpacked_rows.select(range(16))]
    padded = build_collator(tokenizer, settings, seed=3)(examples)
    flat = build_collator(tokenizer, settings.replace(flatten=True), seed=3)(examples)
    assert len(flat["input_ids"]) < len(padded["input_ids"])  # texts were packed together
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer).eval()
    with torch.no_grad():
        alone = model(**padded)
        leaking = model(**flat).logits
        isolate_packed_rows(model)
        isolated = model(**flat)
    expected = {key: alone.logits[span] for key, span in texts_in(padded)}
    return {
        "isolated_gap": max(float((isolated.logits[span] - expected[key]).abs().max()) for key, span in texts_in(flat)),
        "leaking_gap": max(float((leaking[span] - expected[key]).abs().max()) for key, span in texts_in(flat)),
        "isolated_loss": float(isolated.loss),
        "alone_loss": float(alone.loss),
    }


@pytest.mark.parametrize("name", ["eager", "sdpa", FLEX_ON_5X])
def test_packed_rows_compute_as_if_alone(tokenizer, unpacked_rows, tiny_settings, texts_in, name: str) -> None:
    """With isolate_packed_rows, each text packed by flatten gets the logits (1e-5) and the batch the loss it gets
    alone in a padded row; without it the texts attend to those packed beside them, and their logits change."""
    found = packed_against_alone(tokenizer, unpacked_rows, tiny_settings, texts_in, name)
    assert found["isolated_gap"] < 1e-5, found
    assert found["leaking_gap"] > 1e-3, found
    assert math.isclose(found["isolated_loss"], found["alone_loss"], rel_tol=1e-5)


@NEEDS_FLEX
def test_flex_document_mask_that_ignores_texts_fails_the_equality(
    breakers, tokenizer, unpacked_rows, tiny_settings, texts_in
) -> None:
    """Test of the test above: a BlockMask that lets every real key be seen across texts moves the logits."""
    breakers.plant_fault(faults.document_mask_leaks)
    found = packed_against_alone(tokenizer, unpacked_rows, tiny_settings, texts_in, "flex_attention")
    assert found["isolated_gap"] > 1e-3, found


def flex_training_forward(tokenizer, unpacked_rows, settings) -> float:
    """The loss of one training-mode forward of flattened texts through a flex_attention model built from
    `settings` (tiny; forward only: torch has no flex backward on CPU)."""
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer).train()
    isolate_packed_rows(model)
    batch = build_collator(tokenizer, settings, seed=3)([dict(r) for r in unpacked_rows.select(range(8))])
    with torch.no_grad():
        return float(model(**batch).loss)


FLEX_TRAINING = {"packing": False, "flatten": True, "short_row_length": 0, "attn_implementation": "flex_attention"}


@NEEDS_FLEX
def test_flex_attention_trains_with_hidden_dropout(tokenizer, unpacked_rows, tiny_settings) -> None:
    """seed-shape-fast's dropout (0.1 hidden, 0 attention) runs a training forward; the built model has both."""
    fast = preset("seed-shape-fast")
    dropouts = {"dropout": fast.model.dropout, "attention_dropout": fast.model.attention_dropout}
    settings = tiny_settings.replace(**FLEX_TRAINING, **dropouts)
    assert math.isfinite(flex_training_forward(tokenizer, unpacked_rows, settings))
    config = build_model(settings, tokenizer).config
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob) == (0.1, 0.0)


@NEEDS_FLEX
def test_flex_attention_with_attention_dropout_fails_where_the_refusal_is_removed(
    breakers, tokenizer, unpacked_rows, tiny_settings
) -> None:
    """Test of the settings' refusal: without it, transformers raises at the first training forward (as it did on
    the GPU, where flex was first trained)."""
    breakers.plant_fault(faults.dropout_refusal_removed)
    with pytest.raises(ValueError, match="does not support `dropout`"):
        flex_training_forward(tokenizer, unpacked_rows, tiny_settings.replace(**FLEX_TRAINING, dropout=0.1))


@NEEDS_FLEX
def test_a_loaded_models_attention_dropout_is_checked_under_flex(tmp_path, tokenizer, tiny_settings) -> None:
    """A pretrained model keeps its own attention dropout (BERT's 0.1) unless --attention_dropout replaces it: under
    flex_attention that is refused naming the fix, and the fix reaches the loaded model."""
    tiny_bert(len(tokenizer)).save_pretrained(str(tmp_path))
    settings = tiny_settings.replace(model_name_or_path=str(tmp_path), attn_implementation="flex_attention")
    model = load_model(str(tmp_path), attn_implementation="flex_attention", attention_dropout=None)
    with pytest.raises(UsageError, match=r"attention dropout is 0.1 and flex_attention has none.*dropout 0"):
        check_compatible(model, tokenizer, settings)
    fixed = settings.replace(attention_dropout=0.0)
    model = load_model(str(tmp_path), attn_implementation="flex_attention", attention_dropout=0.0)
    check_compatible(model, tokenizer, fixed)
    assert model.config.attention_probs_dropout_prob == 0.0


def test_attention_dropout_reaches_a_model_that_names_it_otherwise(tmp_path, tokenizer, tiny_settings) -> None:
    """DistilBERT keeps its attention dropout as `attention_dropout`, not BERT's `attention_probs_dropout_prob`:
    --attention_dropout reaches it, and under flex_attention its own 0.1 is refused too."""
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    DistilBertForMaskedLM(config).save_pretrained(str(tmp_path))
    assert load_model(str(tmp_path), attention_dropout=0.0).config.attention_dropout == 0.0
    with pytest.raises(UsageError, match="has no attention dropout setting mlm-bench knows"):
        model_module._attention_dropout_field(PretrainedConfig(), "m")
    if BERT_HAS_FLEX_ATTENTION:
        flex = tiny_settings.replace(model_name_or_path=str(tmp_path), attn_implementation="flex_attention")
        with pytest.raises(UsageError, match=r"attention dropout is 0.1 and flex_attention has none"):
            check_compatible(load_model(str(tmp_path), attn_implementation="flex_attention"), tokenizer, flex)


@pytest.mark.skipif(BERT_HAS_FLEX_ATTENTION, reason="5.x BERT takes flex_attention (equality tested)")
def test_flex_attention_is_refused_with_the_fix_where_bert_lacks_it(tokenizer, tiny_settings) -> None:
    with pytest.raises(UsageError, match="pass --attn_implementation sdpa or eager"):
        build_model(tiny_settings.replace(attn_implementation="flex_attention"), tokenizer)


def compiled_training(model, batches, capacity: float, mark: bool = True) -> tuple[list[int], set[str]]:
    """Trains `model` on `batches` through torch.compile (aot_eager on CPU; fullgraph, so a graph break raises):
    the number of graphs compiled after each batch, and the ops whose output size depends on the data (an unbacked
    size: on CUDA, computing it waits for the GPU)."""
    data_sized: set[str] = set()

    def record(graph: torch.fx.GraphModule, _inputs) -> torch.fx.GraphModule:
        for node in graph.graph.nodes:
            if node.op == "call_function" and free_unbacked_symbols(node.meta.get("val")):
                data_sized.add(str(node.target))
        return graph

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=record), fullgraph=True)
    graphs = []
    for batch in batches:
        if mark:
            mark_rows_dynamic(batch)  # as MlmTrainer does under flatten
        sparse_mlm_loss(compiled, batch, capacity).backward()
        graphs.append(counters["stats"]["unique_graphs"])
    torch._dynamo.reset()
    return graphs, data_sized


def _flattened_batches(tokenizer, unpacked_rows, settings, count: int) -> list[dict[str, torch.Tensor]]:
    collator = build_collator(tokenizer, settings, seed=3)
    return [collator([dict(r) for r in unpacked_rows.select(range(8 * i, 8 * i + 8))]) for i in range(count)]


def test_flattened_fixed_width_training_compiles_once_without_host_reads(tokenizer, unpacked_rows, tiny_settings):
    """The flatten mask and a fixed-width sparse head trace as one graph (no break), with no op whose output size
    depends on the data (on CUDA, a host sync), compiled once for every row count (mark_rows_dynamic)."""
    settings = tiny_settings.replace(packing=False, short_row_length=0, flatten=True, sparse_capacity=0.5)
    batches = _flattened_batches(tokenizer, unpacked_rows, settings, 5)
    assert len({len(b["input_ids"]) for b in batches}) >= 3
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    isolate_packed_rows(model)
    unmarked = [{key: value.clone() for key, value in batch.items()} for batch in batches]  # marks stay on tensors
    graphs, data_sized = compiled_training(model, batches, settings.speed.sparse_capacity)
    assert graphs == [1, 1, 1, 1, 1]
    assert not data_sized
    # Test of the marking: without it torch compiles the first row count static, then again once it changes.
    assert compiled_training(model, unmarked, settings.speed.sparse_capacity, mark=False)[0] == [1, 2, 2, 2, 2]


def test_exact_sparse_head_shows_a_data_dependent_op(tokenizer, unpacked_rows, tiny_settings):
    """Test of the test above: the exact head (capacity 0) selects with a boolean index, sized by the data."""
    settings = tiny_settings.replace(packing=False, short_row_length=0, flatten=True)
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    isolate_packed_rows(model)
    _, data_sized = compiled_training(model, _flattened_batches(tokenizer, unpacked_rows, settings, 1), 0.0)
    assert "aten.index.Tensor" in data_sized


def test_flatten_refuses_a_model_that_numbers_positions_otherwise() -> None:
    """RoBERTa numbers positions from padding_idx + 1, so rows numbered from 0 would silently shift them."""
    config = RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    with pytest.raises(UsageError, match="pass --flatten false"):
        isolate_packed_rows(RobertaForMaskedLM(config))
