"""Encode: text rows to token ids, truncated to max_length (the recipe) or packed into full rows."""

from __future__ import annotations

from itertools import chain
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from mlm_bench.config import Settings
from mlm_bench.data.wwm import WORD_IDS, WORDS_COLUMN, batch_word_ids
from mlm_bench.errors import UsageError

ENCODED_COLUMNS = ["input_ids", "attention_mask", "special_tokens_mask"]


def _pack(batch: dict[str, list[list[Any]]], max_length: int) -> dict[str, list[list[Any]]]:
    """run_mlm.py's group_texts: concatenate the batch and cut it into rows of max_length, dropping the tail."""
    joined = {k: list(chain.from_iterable(v)) for k, v in batch.items()}
    total = (len(joined["input_ids"]) // max_length) * max_length
    return {k: [v[i : i + max_length] for i in range(0, total, max_length)] for k, v in joined.items()}


def encode(
    dataset: datasets.Dataset, text_column: str, tokenizer: PreTrainedTokenizerBase, settings: Settings
) -> datasets.Dataset:
    """Tokenize one text column; returns only the columns the collator reads (and word ids for mask='wwm')."""
    packing, max_length = settings.data.packing, settings.data.max_length
    whole_words = settings.data.mask == "wwm"
    if whole_words and not tokenizer.is_fast:
        raise UsageError("--mask wwm maps words to tokens by character offsets: use a fast tokenizer or --mask token")
    gold = WORDS_COLUMN in dataset.column_names

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, list[list[Any]]]:
        encoded = tokenizer(
            batch[text_column],
            truncation=not packing,
            max_length=None if packing else max_length,
            return_special_tokens_mask=True,
            return_token_type_ids=False,
            return_offsets_mapping=whole_words,
            # Packing cuts the rows itself: the library's "longer than the maximum" warning would be noise.
            verbose=not packing,
        )
        out = {k: encoded[k] for k in ENCODED_COLUMNS}
        if whole_words:
            # Packing concatenates every column alike, so word ids stay aligned with their tokens.
            words = batch[WORDS_COLUMN] if gold else None
            out[WORD_IDS] = batch_word_ids(
                batch[text_column], words, encoded["offset_mapping"], encoded["special_tokens_mask"]
            )
        return _pack(out, max_length) if packing else out

    return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names, desc="tokenize")


def count_truncated(
    dataset: datasets.Dataset, text_column: str, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> int:
    """Rows longer than max_length tokens, specials included: those truncation (packing off) cuts short."""
    total = 0
    for batch in dataset.iter(batch_size=1000):
        # Truncating at max_length + 1 keeps the count exact without holding whole long rows' ids.
        lengths = tokenizer(
            batch[text_column],
            truncation=True,
            max_length=max_length + 1,
            return_length=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["length"]
        total += sum(n > max_length for n in lengths)
    return total
