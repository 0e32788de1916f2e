"""Collate: the library's DataCollatorForLanguageModeling with the recipe's settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
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


class BatchSeededCollator:
    """Masks batch n from an RNG seeded by (seed, n) alone, and leaves the global RNG untouched.

    Trainer restores the global RNG on resume only after its DataLoader has prefetched (and masked) the next
    batch, so masks drawn from the global RNG differ after a resume; these are the same with or without one.
    """

    def __init__(self, collator: Any, seed: int, start: int = 0) -> None:
        self.collator = collator
        self.seed = seed
        self.batches = start  # batches masked so far: a resumed run starts at those its checkpoint consumed

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch_seed = int(np.random.SeedSequence([self.seed, self.batches]).generate_state(1)[0])
        self.batches += 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(batch_seed)
            return self.collator(features)
