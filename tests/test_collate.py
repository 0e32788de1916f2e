"""The masking contract of the pipeline's collator, as properties on real encodings and on generated batches."""

from __future__ import annotations

import pytest
from hypothesis import given

from mlm_bench.contract import masking as contract
from mlm_bench.data.collate import FlatteningCollator, MlmCollator, build_collator, cut_rows
from mlm_bench.data.tokenizer import unk_rate
from mlm_bench.testing import faults
from mlm_bench.testing.strategies import (
    GENERATED_BATCHES,
    MLM_PROBABILITIES,
    PAD_MULTIPLES,
    REAL_ROW_PICKS,
    SEEDS,
    example_alpha,
    tokenizer_of_size,
)

# Passes of seeded masking over the held-out rows: ~22k eligible tokens, ~3.3k selected, enough that selecting
# at 0.20 instead of 0.15, or splitting 90/5/5 instead of 80/10/10, lands far outside the 1e-6 intervals.
POOLED_PASSES = 5


def pooled_counts(tokenizer, rows, settings) -> contract.MaskCounts:
    """Tallies of `passes` seeded collations of every row, each batch checked against the per-batch contract."""
    examples = [dict(r) for r in rows]
    total = contract.MaskCounts()
    for seed in range(POOLED_PASSES):
        counts, _ = contract.check_rows(build_collator(tokenizer, settings, seed=seed), examples, tokenizer, 8)
        total += counts
    return total


@pytest.fixture(scope="module")
def real_rows(heldout_rows, unpacked_rows):
    """The real encodings by name: packed rows, and unpacked rows of varying length."""
    return {"packed": heldout_rows, "unpacked": unpacked_rows}


@pytest.mark.parametrize("kind", ["packed", "unpacked"])
@given(picks=REAL_ROW_PICKS, seed=SEEDS, pad_to_multiple_of=PAD_MULTIPLES)
def test_contract_on_real_rows(real_rows, tokenizer, tiny_settings, kind, picks, seed, pad_to_multiple_of):
    """On our tokenizer's real encodings (packed, and unpacked with padding): labels are -100 or the original id;
    unselected positions keep their id; specials and padding are never selected; attention_mask is untouched;
    every id is in the vocabulary; shapes are (rows, longest rounded up to pad_to_multiple_of), int64; inputs are
    not mutated; selection and the 80/10/10 split are within binomial bounds; the seed decides the batch."""
    rows = real_rows[kind]
    examples = [dict(rows[i % len(rows)]) for i in picks]
    settings = tiny_settings.replace(pad_to_multiple_of=pad_to_multiple_of)
    batch, ref = contract.check_contract(
        build_collator(tokenizer, settings, seed=seed), examples, tokenizer, pad_to_multiple_of
    )
    counts = contract.count_masking(batch, ref, tokenizer.mask_token_id)
    contract.check_selection_rate(counts, settings.data.mlm_probability, example_alpha(2))
    contract.check_replacement_split(counts, len(tokenizer), example_alpha(2))
    contract.check_seeding(
        lambda s: build_collator(tokenizer, settings, seed=s), examples, (seed, seed + 1), counts.eligible
    )


@given(generated=GENERATED_BATCHES, seed=SEEDS, pad_to_multiple_of=PAD_MULTIPLES, p=MLM_PROBABILITIES)
def test_contract_on_generated_batches(tiny_settings, generated, seed, pad_to_multiple_of, p):
    """On generated batches (random lengths, padding, inner [SEP] [CLS], [UNK], vocab sizes 8-3000, seeds, with
    and without special_tokens_mask): the same per-batch contract, and selection at p within binomial bounds."""
    tokenizer = tokenizer_of_size(generated.vocab_size)
    settings = tiny_settings.replace(mlm_probability=p, pad_to_multiple_of=pad_to_multiple_of)
    for special_mask in (True, False):
        examples = generated.examples(special_mask=special_mask, words=False)
        batch, ref = contract.check_contract(
            build_collator(tokenizer, settings, seed=seed), examples, tokenizer, pad_to_multiple_of
        )
        counts = contract.count_masking(batch, ref, tokenizer.mask_token_id)
        contract.check_selection_rate(counts, p, example_alpha(4))
        contract.check_replacement_split(counts, len(tokenizer), example_alpha(4))
        contract.check_seeding(
            lambda s, t=settings: build_collator(tokenizer, t, seed=s), examples, (seed, seed + 1), counts.eligible
        )


def test_selection_rate_and_split_pooled(tokenizer, heldout_rows, tiny_settings):
    """Over 5 seeded passes of the held-out rows (~22k eligible tokens), selected tokens ~ Binomial(n, 0.15)
    and [MASK] / kept / random ~ 80/10/10, each inside an exact interval with false-alarm probability 1e-6."""
    counts = pooled_counts(tokenizer, heldout_rows, tiny_settings)
    contract.check_selection_rate(counts, tiny_settings.data.mlm_probability)
    contract.check_replacement_split(counts, len(tokenizer))


def test_seed_zero_seeds_the_collator(tokenizer, heldout_rows, tiny_settings):
    """Seed 0 is a seed: two collators seeded 0 give the same batch (4.57's own collator treated 0 as unseeded)."""
    examples = [dict(r) for r in heldout_rows.select(range(8))]
    eligible = sum(len(e["input_ids"]) - sum(e["special_tokens_mask"]) for e in examples)
    contract.check_seeding(lambda s: MlmCollator(tokenizer, mlm_probability=0.15, seed=s), examples, (0, 1), eligible)


@pytest.mark.parametrize("kind", ["packed", "unpacked"])
def test_encodings_fit_max_length(real_rows, tiny_settings, kind):
    """Packed and truncated encodings never exceed max_length."""
    contract.check_max_length(real_rows[kind]["input_ids"], tiny_settings.data.max_length)


def test_unk_rate_on_heldout_text(tokenizer, heldout_rows):
    """Below 0.5% of held-out tokens are [UNK]: the corpus-built tokenizer covers text it was not trained on."""
    contract.check_unk_rate(unk_rate(heldout_rows, tokenizer))


@pytest.mark.parametrize("mask", ["token", "wwm"])
@given(picks=REAL_ROW_PICKS, seed=SEEDS, pad_to_multiple_of=PAD_MULTIPLES)
def test_flatten_packs_the_same_masked_rows(
    unpacked_rows, wwm_unpacked_rows, tokenizer, tiny_settings, texts_in, mask, picks, seed, pad_to_multiple_of
):
    """flatten changes only the layout: every row comes out whole, with exactly the ids and labels the recipe's
    collator gives it under the same seed; positions count 0, 1, ... within each; rows are max_length rounded up
    to pad_to_multiple_of, padding unlabelled; first fit leaves no two rows that would fit into one."""
    rows = wwm_unpacked_rows if mask == "wwm" else unpacked_rows
    examples = [dict(rows[i % len(rows)]) for i in picks]
    settings = tiny_settings.replace(
        packing=False, short_row_length=0, mask=mask, pad_to_multiple_of=pad_to_multiple_of
    )
    padded = build_collator(tokenizer, settings.replace(pad_to_multiple_of=None), seed=seed)(examples)
    flat = build_collator(tokenizer, settings.replace(flatten=True), seed=seed)(examples)

    def texts(batch):
        return sorted((ids, tuple(batch["labels"][span].tolist())) for ids, span in texts_in(batch))

    assert texts(flat) == texts(padded)
    row_length = -(-settings.data.max_length // (pad_to_multiple_of or 1)) * (pad_to_multiple_of or 1)
    assert flat["input_ids"].shape[1] == row_length
    real = flat["attention_mask"].bool()
    assert (flat["labels"][~real] == -100).all() and (flat["input_ids"][~real] == tokenizer.pad_token_id).all()
    used = real.any(dim=1)
    assert used.all()  # no filler row without torch.compile (min_rows 1)
    for r in used.nonzero().flatten().tolist():
        positions = flat["position_ids"][r][real[r]]
        steps = positions[1:] - positions[:-1]
        assert positions[0] == 0 and ((steps == 1) | (positions[1:] == 0)).all()
    lengths = real[used].sum(dim=1).tolist()
    assert all(a + b > row_length for i, a in enumerate(lengths) for b in lengths[i + 1 :])


def test_flatten_refuses_a_row_longer_than_its_rows(tokenizer, tiny_settings):
    collator = FlatteningCollator(build_collator(tokenizer, tiny_settings, seed=0), 8, None)
    with pytest.raises(ValueError, match="encode with truncation at max_length"):
        collator([{"input_ids": list(range(5, 17))}])


def _real_tokens(batch):
    """Each real (attended) token's (id, label), in reading order: what a layout must keep."""
    real = batch["attention_mask"].bool()
    return batch["input_ids"][real].tolist(), batch["labels"][real].tolist()


@pytest.mark.parametrize("kind", ["packed", "unpacked"])
@pytest.mark.parametrize("length", [1, 5, 8, 63])
def test_cut_rows_keeps_every_token_and_label_in_order(real_rows, tokenizer, tiny_settings, kind, length):
    """Short rows (the first phase of the sequence-length schedule) carry exactly the batch's real tokens, masks
    and labels, in order, in rows of `length`, none of them only padding."""
    settings = tiny_settings.replace(packing=kind == "packed")
    batch = build_collator(tokenizer, settings, seed=3)([dict(r) for r in real_rows[kind].select(range(8))])
    short = cut_rows(batch, length)
    assert short["input_ids"].shape[1] == length
    assert set(short) == set(batch)
    assert short["attention_mask"].bool().any(dim=1).all()
    assert _real_tokens(short) == _real_tokens(batch)
    assert (short["labels"][~short["attention_mask"].bool()] == -100).all()


def test_cut_rows_check_fails_on_a_cut_that_drops_a_piece(real_rows, tokenizer, tiny_settings):
    """The check above reports a cut that loses the last piece of each row."""
    batch = build_collator(tokenizer, tiny_settings, seed=3)([dict(r) for r in real_rows["packed"].select(range(8))])
    short = cut_rows(batch, 8)
    lossy = {key: value.reshape(8, -1, 8)[:, :-1].reshape(-1, 8) for key, value in short.items()}
    assert _real_tokens(lossy) != _real_tokens(batch)


def _assert_cut_keeps_the_texts(batch, short, texts_in):
    """Every text segment of the cut batch is a piece of one text of the flattened batch, and together they hold
    every real token in order."""
    whole = [ids for ids, _ in texts_in(batch)]
    pieces = [ids for ids, _ in texts_in(short)]
    assert sum(map(len, pieces)) == int(batch["attention_mask"].sum())
    for ids in pieces:
        assert any(ids == text[i : i + len(ids)] for text in whole for i in range(len(text) - len(ids) + 1))
    assert _real_tokens(short) == _real_tokens(batch)


def test_cut_rows_restarts_positions_in_flattened_rows(unpacked_rows, tokenizer, tiny_settings, texts_in):
    """Cutting flattened rows numbers positions from 0 at each piece's start and at each text start in it, so the
    block-diagonal mask (model.isolate_packed_rows) keeps every piece of a text apart from the others."""
    settings = tiny_settings.replace(packing=False, flatten=True)
    batch = build_collator(tokenizer, settings, seed=3)([dict(r) for r in unpacked_rows.select(range(16))])
    short = cut_rows(batch, 8)
    _assert_cut_keeps_the_texts(batch, short, texts_in)


def test_flattened_cut_check_fails_without_restarted_positions(unpacked_rows, tokenizer, tiny_settings, texts_in,
                                                                breakers):  # fmt: skip
    """The check above reports a cut that copies the position ids as they were."""
    breakers.plant_fault(faults.positions_not_restarted)
    settings = tiny_settings.replace(packing=False, flatten=True)
    batch = build_collator(tokenizer, settings, seed=3)([dict(r) for r in unpacked_rows.select(range(16))])
    with pytest.raises(AssertionError):
        _assert_cut_keeps_the_texts(batch, cut_rows(batch, 8), texts_in)


def test_a_compiled_flatten_batch_has_at_least_two_rows(unpacked_rows, tokenizer, tiny_settings):
    """torch.compile specialises a dimension of size 1: a batch that fits one row gets one empty filler row."""
    settings = tiny_settings.replace(packing=False, short_row_length=0, flatten=True, max_length=64)
    one_text = [dict(unpacked_rows[0])]
    plain = build_collator(tokenizer, settings, seed=0)(one_text)
    compiled = build_collator(tokenizer, settings.replace(torch_compile="on"), seed=0)(one_text)
    assert len(plain["input_ids"]) == 1 and len(compiled["input_ids"]) == 2
    assert not compiled["attention_mask"][1].any() and (compiled["labels"][1] == -100).all()
