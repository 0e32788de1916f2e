"""Collate: the library's DataCollatorForLanguageModeling with the recipe's settings."""

from __future__ import annotations

from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from mlm_bench.config import Settings


def build_collator(
    tokenizer: PreTrainedTokenizerBase, settings: Settings, seed: int | None = None
) -> DataCollatorForLanguageModeling:
    """The recipe's collator (mlm=True, 80/10/10); `seed` fixes its masks independently of global RNG."""
    return DataCollatorForLanguageModeling(
        tokenizer,
        mlm=True,
        mlm_probability=settings.mlm_probability,
        pad_to_multiple_of=settings.pad_to_multiple_of,
        seed=seed,
    )
