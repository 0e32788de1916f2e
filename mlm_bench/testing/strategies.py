"""Hypothesis strategies for the collator's inputs: generated batches, and picks of the real encoded rows."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

from mlm_bench.contract.masking import ALPHA
from mlm_bench.data.tokenizer import SPECIAL_TOKENS, build_tokenizer
from mlm_bench.data.wwm import NO_WORD

_CJK = 0x4E00


@cache
def tokenizer_of_size(size: int) -> PreTrainedTokenizerFast:
    """The project's tokenizer trained on `size - 5` distinct CJK characters, so it has exactly `size` tokens."""
    alphabet = "".join(chr(_CJK + i) for i in range(size - len(SPECIAL_TOKENS)))
    tokenizer = build_tokenizer([alphabet], model_max_length=64)
    assert len(tokenizer) == size
    return tokenizer


@dataclass(frozen=True)
class GeneratedBatch:
    """Rows as encode writes them: [CLS] text [SEP] (some packed, with [SEP] [CLS] inside), ids drawn from the
    whole vocabulary ([UNK] included), a random segmentation into words of 1-4 tokens."""

    vocab_size: int
    rows: tuple[dict[str, tuple[int, ...]], ...]

    def examples(self, special_mask: bool, words: bool) -> list[dict[str, Any]]:
        """The rows as collator input; without special_tokens_mask the library falls back to the tokenizer's."""
        drop = ({"special_tokens_mask"} if not special_mask else set()) | ({"word_ids"} if not words else set())
        return [{k: list(v) for k, v in row.items() if k not in drop} for row in self.rows]


def _make_batch(vocab_size: int, lengths: list[int], content_seed: int) -> GeneratedBatch:
    tokenizer = tokenizer_of_size(vocab_size)
    cls, sep, unk = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id
    first_text_id = len(SPECIAL_TOKENS)
    rng = random.Random(content_seed)
    rows = []
    for length in lengths:
        ids, special, word_ids = [cls], [1], [NO_WORD]
        word, left_in_word = 0, 0
        while len(ids) < length - 1:
            if len(ids) > 2 and rng.random() < 0.05:
                ids += [sep, cls]
                special += [1, 1]
                word_ids += [NO_WORD, NO_WORD]
                left_in_word = 0
                continue
            if left_in_word == 0:
                word, left_in_word = word + 1, rng.randint(1, 4)
            ids.append(unk if rng.random() < 0.01 else rng.randrange(first_text_id, vocab_size))
            special.append(0)
            word_ids.append(word)
            left_in_word -= 1
        ids, special, word_ids = (
            [*ids[: length - 1], sep],
            [*special[: length - 1], 1],
            [*word_ids[: length - 1], NO_WORD],
        )
        rows.append(
            {
                "input_ids": tuple(ids),
                "attention_mask": (1,) * len(ids),
                "special_tokens_mask": tuple(special),
                "word_ids": tuple(word_ids),
            }
        )
    return GeneratedBatch(vocab_size, tuple(rows))


VOCAB_SIZES = st.integers(min_value=8, max_value=3000)
# 2 tokens is an empty text ([CLS] [SEP]); 64 is the tests' max_length.
ROW_LENGTHS = st.lists(st.integers(min_value=2, max_value=64), min_size=1, max_size=12)
# 0 included on purpose: transformers 4.57 took seed 0 for "no seed".
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PAD_MULTIPLES = st.sampled_from([None, 8, 64])
MLM_PROBABILITIES = st.sampled_from([0.15, 0.3, 0.5])
GENERATED_BATCHES = st.tuples(VOCAB_SIZES, ROW_LENGTHS, SEEDS).map(lambda args: _make_batch(*args))
# Indices into a fixture's rows, taken modulo its length (the fixture's size is unknown here).
REAL_ROW_PICKS = st.lists(st.integers(min_value=0, max_value=2**16), min_size=1, max_size=16)


def example_alpha(checks: int) -> float:
    """Per-check false-alarm probability that keeps a whole hypothesis test at ALPHA (Bonferroni over examples)."""
    return ALPHA / (hypothesis_settings.default.max_examples * checks)
