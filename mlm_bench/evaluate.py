"""Evaluate: held-out MLM loss, accuracy and perplexity under a fixed masking, and the baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.model import IGNORE_INDEX


@dataclass(frozen=True)
class EvalResult:
    """Held-out MLM metrics over the same masked positions for the model and the unigram baseline."""

    loss: float
    accuracy: float
    perplexity: float
    masked_tokens: int
    unigram_loss: float
    uniform_loss: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def unigram_log_probs(train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> torch.Tensor:
    """Log-probabilities of a model that learned only token frequencies (add-one smoothed).

    Specials other than [UNK] get probability 0: they are never masked, so never a target.
    """
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for batch in train.iter(batch_size=1000):
        ids = torch.tensor([i for row in batch["input_ids"] for i in row], dtype=torch.long)
        counts += torch.bincount(ids, minlength=vocab_size).double()
    counts += 1.0
    counts[[i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]] = 0.0
    return (counts / counts.sum()).log()


@torch.no_grad()
def evaluate_mlm(
    model: PreTrainedModel,
    heldout: datasets.Dataset,
    collator: Any,
    unigram: torch.Tensor,
    batch_size: int,
) -> EvalResult:
    """Mean cross-entropy and top-1 accuracy at the positions `collator` masks (seed it for fixed masks)."""
    model.eval()
    device = model.device
    total_loss = total_unigram = 0.0
    correct = count = 0
    for start in range(0, len(heldout), batch_size):
        rows = heldout.select(range(start, min(start + batch_size, len(heldout))))
        batch = collator([dict(r) for r in rows])
        labels = batch.pop("labels").to(device)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        selected = labels != IGNORE_INDEX
        targets = labels[selected]
        total_loss += F.cross_entropy(logits[selected].float(), targets, reduction="sum").item()
        total_unigram += -unigram.to(device)[targets].sum().item()
        correct += (logits[selected].argmax(-1) == targets).sum().item()
        count += targets.numel()
    if count == 0:
        raise ValueError("no held-out token was masked: the held-out set is empty or too small")
    loss = total_loss / count
    return EvalResult(
        loss=loss,
        accuracy=correct / count,
        perplexity=math.exp(loss),
        masked_tokens=count,
        unigram_loss=total_unigram / count,
        uniform_loss=math.log(model.get_input_embeddings().num_embeddings),
    )
