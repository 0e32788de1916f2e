"""Evaluate: exact on models whose answer is known (uniform, unigram, oracle, copier); the eval set's masks depend on
the text and the eval settings alone; a model that only copies what it sees gains nothing from context."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mlm_bench.config import preset
from mlm_bench.contract import masking as contract
from mlm_bench.data.encode import encode
from mlm_bench.modeling.model import build_model
from mlm_bench.training.evaluate import (
    EvalSet,
    build_eval_set,
    eval_settings,
    evaluate_mlm,
    length_group,
    unigram_log_probs,
)


class _FixedLogits(torch.nn.Module):
    """A stand-in model: `predict(input_ids) -> logits`, with what evaluate_mlm reads of a model."""

    def __init__(self, vocab: int, predict) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 1)
        self.predict = predict
        self.device = torch.device("cpu")

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.predict(input_ids))


def _uniform(vocab: int) -> _FixedLogits:
    return _FixedLogits(vocab, lambda ids: torch.zeros(*ids.shape, vocab))


def _copier(unigram: torch.Tensor) -> _FixedLogits:
    """Token frequencies, plus a strong bet on the token it sees: right where it was kept, wrong where replaced."""
    vocab = len(unigram)
    return _FixedLogits(vocab, lambda ids: unigram.float() + 10.0 * torch.nn.functional.one_hot(ids, vocab).float())


@pytest.fixture(scope="module")
def eval_rows(corpus, tokenizer, tiny_settings):
    texts = corpus.heldout  # the first eval_rows held-out texts
    return encode(texts, corpus.text_column, tokenizer, eval_settings(tiny_settings)), list(texts[corpus.text_column])


@pytest.fixture(scope="module")
def eval_set(eval_rows, tokenizer, tiny_settings):
    return build_eval_set(*eval_rows, tokenizer, tiny_settings)


@pytest.fixture(scope="module")
def unigram(corpus, tokenizer, tiny_settings):
    """Token frequencies of (the first 2,000) train rows, encoded as training encodes them."""
    rows = encode(corpus.train.select(range(2000)), corpus.text_column, tokenizer, tiny_settings)
    return unigram_log_probs(rows, tokenizer)


def test_uniform_model_scores_ln_v_everywhere(eval_set, unigram, tokenizer) -> None:
    result = evaluate_mlm(_uniform(len(tokenizer)), eval_set, unigram)
    assert result.loss == pytest.approx(math.log(len(tokenizer)), rel=1e-6)
    assert result.uniform_loss == pytest.approx(math.log(len(tokenizer)))
    assert result.perplexity == pytest.approx(len(tokenizer), rel=1e-5)
    assert all(part["loss"] == pytest.approx(result.loss) for part in result.by_treatment.values())
    assert result.context_gain == pytest.approx(result.by_treatment["mask"]["unigram_loss"] - result.loss)
    assert result.context_gain < -1.0  # worse than token frequencies


def test_unigram_model_gains_nothing_from_context(eval_set, unigram, tokenizer) -> None:
    frequencies = _FixedLogits(len(tokenizer), lambda ids: unigram.float().expand(*ids.shape, -1))
    result = evaluate_mlm(frequencies, eval_set, unigram)
    assert result.context_gain == pytest.approx(0.0, abs=1e-5)
    assert all(g["context_gain"] == pytest.approx(0.0, abs=1e-5) for g in result.context_gain_by_length.values())


def test_copying_beats_the_unigram_overall_but_gains_nothing_at_mask(eval_set, unigram) -> None:
    """The shortcut context gain exists for: copying the visible 10% makes the overall loss look like learning."""
    copier = evaluate_mlm(_copier(unigram), eval_set, unigram)
    assert copier.loss < copier.unigram_loss - 0.3
    assert copier.by_treatment["kept"]["accuracy"] == 1.0
    assert copier.context_gain == pytest.approx(0.0, abs=1e-5)


def test_oracle_model_scores_perfect_accuracy(eval_set, unigram, tokenizer) -> None:
    truth = {
        tuple(ids.tolist()): torch.where(labels == -100, ids, labels)
        for ids, labels in zip(eval_set.input_ids, eval_set.labels, strict=True)
    }

    def oracle(ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(truth[tuple(ids[0].tolist())], len(tokenizer))[None].float() * 50.0

    result = evaluate_mlm(_FixedLogits(len(tokenizer), oracle), eval_set, unigram, batch_size=1)
    assert result.accuracy == 1.0
    assert result.loss < 1e-6
    assert result.context_gain == pytest.approx(result.by_treatment["mask"]["unigram_loss"], rel=1e-6)


def test_treatments_split_80_10_10(eval_set, unigram, tokenizer) -> None:
    result = evaluate_mlm(_uniform(len(tokenizer)), eval_set, unigram)
    parts = result.by_treatment
    selected = sum(p["tokens"] for p in parts.values())
    assert selected == result.selected_tokens == eval_set.description["selected_tokens"]
    # A random draw hits [MASK] or the original token 1/V of the time, and then counts as mask or kept.
    spill = 0.1 / len(tokenizer)
    shares = {"mask": (0.8, 0.8 + spill), "kept": (0.1, 0.1 + spill), "random": (0.1 - 2 * spill, 0.1)}
    for name, (p_low, p_high) in shares.items():
        low, high = contract.binomial_interval(selected, p_low, p_high, alpha=1e-6 / 3)
        assert low <= parts[name]["tokens"] <= high, (name, parts[name]["tokens"], low, high)
    assert sum(g["tokens"] for g in result.context_gain_by_length.values()) == parts["mask"]["tokens"]


def test_masks_depend_on_the_text_and_eval_settings_only(eval_rows, eval_set, tokenizer, tiny_settings) -> None:
    rows, texts = eval_rows
    training_layout = tiny_settings.replace(
        batch_size=3, mlm_probability=0.4, packing=False, short_row_length=0, flatten=True, pad_to_multiple_of=8
    )
    again = build_eval_set(rows, texts, tokenizer, training_layout)
    assert again.description == eval_set.description
    fewer = build_eval_set(rows.select(range(25)), texts[:25], tokenizer, tiny_settings)
    assert all(torch.equal(a, b) for a, b in zip(fewer.input_ids, eval_set.input_ids[:25], strict=True))
    reseeded = tiny_settings.replace(eval_seed=tiny_settings.eval.eval_seed + 1)
    other_seed = build_eval_set(rows, texts, tokenizer, reseeded)
    assert other_seed.description["id"] != eval_set.description["id"]
    assert other_seed.description["inputs_sha256"] != eval_set.description["inputs_sha256"]


def test_eval_texts_are_cut_at_eval_max_length_whatever_the_training_rows(corpus, tokenizer, tiny_settings) -> None:
    """A run training on 128-token rows and one on 64-token rows score the same texts and positions."""
    texts = corpus.heldout.select(range(20))
    described = []
    for max_length in (64, 128):
        settings = tiny_settings.replace(max_length=max_length, eval_max_length=64)
        rows = encode(texts, corpus.text_column, tokenizer, eval_settings(settings))
        assert max(len(ids) for ids in rows["input_ids"]) == 64  # some held-out texts are longer
        described.append(build_eval_set(rows, list(texts[corpus.text_column]), tokenizer, settings).description)
    assert described[0] == described[1]


def test_context_gain_is_grouped_by_each_text_length(eval_set, unigram, tokenizer) -> None:
    """The [MASK] tokens in each length group are those of texts of that length, not of the batches' widths."""
    expected: dict[str, int] = {}
    for ids, labels in zip(eval_set.input_ids, eval_set.labels, strict=True):
        masked = int(((labels != -100) & (ids == eval_set.mask_id)).sum())
        if masked:
            group = length_group(len(ids))
            expected[group] = expected.get(group, 0) + masked
    result = evaluate_mlm(_uniform(len(tokenizer)), eval_set, unigram)
    assert {group: entry["tokens"] for group, entry in result.context_gain_by_length.items()} == expected
    assert len(expected) > 1


def test_context_gain_standard_error_shrinks_with_more_texts(eval_set, unigram, tokenizer) -> None:
    """Texts are the sampled units: a quarter of them gives about twice the standard error."""
    torch.manual_seed(0)
    model = build_model(preset("tiny-zh", hidden_size=32, num_hidden_layers=1, intermediate_size=64), tokenizer)
    quarter = EvalSet(
        eval_set.input_ids[:10], eval_set.labels[:10], eval_set.pad_id, eval_set.mask_id, eval_set.description
    )
    whole, part = evaluate_mlm(model, eval_set, unigram), evaluate_mlm(model, quarter, unigram)
    assert 0 < whole.context_gain_stderr < part.context_gain_stderr
    assert 1.2 < part.context_gain_stderr / whole.context_gain_stderr < 4


def test_scores_do_not_depend_on_how_texts_are_batched(eval_set, unigram, tokenizer) -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny-zh", hidden_size=32, num_hidden_layers=1, intermediate_size=64), tokenizer)
    one = evaluate_mlm(model, eval_set, unigram, batch_size=1)
    many = evaluate_mlm(model, eval_set, unigram, batch_size=64)
    assert many.loss == pytest.approx(one.loss, abs=1e-5)
    assert many.context_gain == pytest.approx(one.context_gain, abs=1e-5)


def test_unigram_baseline_beats_uniform_and_ignores_specials(eval_set, unigram, tokenizer) -> None:
    assert unigram.exp().sum().item() == pytest.approx(1.0)
    assert math.isinf(unigram[tokenizer.cls_token_id].item())
    assert math.isfinite(unigram[tokenizer.unk_token_id].item())
    result = evaluate_mlm(_uniform(len(tokenizer)), eval_set, unigram)
    assert result.unigram_loss < result.uniform_loss - 1.0


def test_eval_set_refuses_rows_that_are_not_the_texts(eval_rows, tokenizer, tiny_settings) -> None:
    rows, texts = eval_rows
    with pytest.raises(ValueError, match="encode the texts unpacked"):
        build_eval_set(rows, texts[:-1], tokenizer, tiny_settings)
