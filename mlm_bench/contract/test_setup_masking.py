"""Masking with your tokenizer (`pytest --pyargs mlm_bench.contract --mlm-model DIR`): the collator your settings
build keeps the masking contract on your held-out rows, with your special tokens: labels, kept ids, special and
padding positions never selected, replacements inside the vocabulary, and the selection rate and 80/10/10 split
within binomial bounds (contract.masking, false alarm <= 1e-6 each)."""

from __future__ import annotations

from mlm_bench.config import Settings
from mlm_bench.contract import masking
from mlm_bench.data.collate import build_collator
from mlm_bench.data.encode import encode

SEEDS = 4  # passes over the rows, each masked from its own seed: about 4 x 200 rows of selections to count
BATCH = 8


def _unpacked(settings: Settings) -> Settings:
    """Unpacked, unflattened rows: the layout the per-batch checks read (packing and flattening have their own)."""
    return settings.replace(packing=False, flatten=False, pad_to_multiple_of=None)


def test_your_collator_keeps_the_masking_contract(mlm_setup, mlm_tokenizer, mlm_heldout) -> None:
    rows, column = mlm_heldout
    settings = _unpacked(mlm_setup.settings)
    examples = [dict(row) for row in encode(rows, column, mlm_tokenizer, settings)]
    words = settings.data.mask == "wwm"
    tokens, word_counts = masking.MaskCounts(), masking.WordCounts()
    for seed in range(SEEDS):
        collator = build_collator(mlm_tokenizer, settings, seed=seed)
        t, w = masking.check_rows(collator, examples, mlm_tokenizer, BATCH, words=words)
        tokens, word_counts = tokens + t, word_counts + w
    p = settings.data.mlm_probability
    if words:
        masking.check_word_rates(word_counts, p, len(mlm_tokenizer))
    else:
        masking.check_selection_rate(tokens, p)
        masking.check_replacement_split(tokens, len(mlm_tokenizer))


def test_your_collator_follows_its_seed(mlm_setup, mlm_tokenizer, mlm_heldout) -> None:
    rows, column = mlm_heldout
    settings = _unpacked(mlm_setup.settings)
    examples = [dict(row) for row in encode(rows.select(range(min(BATCH, len(rows)))), column, mlm_tokenizer,
                                            settings)]  # fmt: skip
    eligible = sum(len(e["input_ids"]) for e in examples)
    masking.check_seeding(lambda seed: build_collator(mlm_tokenizer, settings, seed=seed), examples, (0, 1), eligible)
