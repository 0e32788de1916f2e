"""Evaluate: held-out texts masked once each, scored by how the model beats a unigram where only context can help."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import torch
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.config import Settings
from mlm_bench.data.collate import BatchSeededCollator, build_collator
from mlm_bench.modeling.model import IGNORE_INDEX

# What the model sees at a selected position: [MASK], a random token, or the original token left in place.
TREATMENTS = ("mask", "random", "kept")
# Upper ends (tokens, specials included) of the text-length groups context gain is also reported for.
LENGTH_GROUPS = (16, 32, 64, 128, 256, 512)
EVAL_BATCH = 64


@dataclass(frozen=True)
class EvalSet:
    """Held-out texts, each masked alone from a seed of its own (eval_seed, its index): the same positions whatever
    the run's batch size, packing, flattening or preset, so runs scored on equal `description["id"]` compare."""

    input_ids: list[torch.Tensor]
    labels: list[torch.Tensor]
    pad_id: int
    mask_id: int
    description: dict[str, Any]


def _sha256(parts: list[bytes]) -> str:
    """Short digest of a sequence of byte strings, each length-prefixed so that no two sequences collide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()[:16]


def build_eval_set(
    rows: datasets.Dataset,
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    settings: Settings,
    mask: Literal["token", "wwm"] = "token",
) -> EvalSet:
    """Mask every encoded held-out text alone with the run's collator kind at eval_mlm_probability.

    `rows` are `texts` encoded with eval_settings (unpacked, truncated at eval_max_length). The description
    names what was scored: the texts, the settings that chose the masks, and a digest of the masked inputs.
    """
    if len(rows) != len(texts):
        raise ValueError(f"{len(rows)} encoded rows for {len(texts)} texts: encode the texts unpacked")
    scoring = eval_settings(settings).replace(mask=mask)
    masking = BatchSeededCollator(build_collator(tokenizer, scoring), settings.eval.eval_seed)
    input_ids, labels = [], []
    for row in rows:
        batch = masking([dict(row)])
        input_ids.append(batch["input_ids"][0])
        labels.append(batch["labels"][0])
    chosen = {
        "texts": len(texts),
        "texts_sha256": _sha256([t.encode("utf-8") for t in texts]),
        "max_length": scoring.data.max_length,
        "mlm_probability": scoring.data.mlm_probability,
        "seed": settings.eval.eval_seed,
        "mask": mask,
    }
    return EvalSet(
        input_ids=input_ids,
        labels=labels,
        pad_id=tokenizer.pad_token_id,
        mask_id=tokenizer.mask_token_id,
        description={
            "id": _sha256([repr(sorted(chosen.items())).encode()]),
            **chosen,
            "selected_tokens": sum(int((lab != IGNORE_INDEX).sum()) for lab in labels),
            "inputs_sha256": _sha256(
                [t.numpy().tobytes() for pair in zip(input_ids, labels, strict=True) for t in pair]
            ),
        },
    )


def eval_settings(settings: Settings) -> Settings:
    """The settings held-out texts are encoded and masked with: unpacked, whole up to eval_max_length, masked at
    eval_mlm_probability, with none of the training layout (flatten, padding multiple, short rows)."""
    return settings.replace(
        packing=False,
        flatten=False,
        pad_to_multiple_of=None,
        short_row_length=0,
        group_by_length=False,
        max_length=settings.eval.eval_max_length,
        mlm_probability=settings.eval.eval_mlm_probability,
    )


@dataclass(frozen=True)
class EvalResult:
    """Held-out MLM metrics, overall and by what the model saw at each selected position, against a unigram."""

    loss: float
    accuracy: float
    perplexity: float
    selected_tokens: int
    unigram_loss: float
    uniform_loss: float
    # Unigram NLL minus model NLL at [MASK]ed positions: what the model learned from context, in nats. Copying the
    # visible token (the "kept" 10%) cannot raise it.
    context_gain: float
    # Standard error of context_gain with texts as the sampled units (positions within a text are not independent).
    context_gain_stderr: float
    by_treatment: dict[str, dict[str, float]]
    context_gain_by_length: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def unigram_log_probs(train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Log-probabilities over the tokenizer's vocabulary of a model that learned only token frequencies (add-one
    smoothed), so runs whose models embed more ids than the tokenizer makes share one baseline.

    Specials other than [UNK] get probability 0: they are never masked, so never a target.
    """
    counts = torch.zeros(len(tokenizer), dtype=torch.float64)
    for batch in train.iter(batch_size=1000):
        ids = torch.tensor([i for row in batch["input_ids"] for i in row], dtype=torch.long)
        counts += torch.bincount(ids, minlength=len(tokenizer)).double()
    counts += 1.0
    counts[[i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]] = 0.0
    return (counts / counts.sum()).log()


def length_group(length: int) -> str:
    """Name of the text-length group (tokens, specials included) a text of `length` tokens falls in."""
    lower = 1
    for upper in LENGTH_GROUPS:
        if length <= upper:
            return f"{lower}-{upper}"
        lower = upper + 1
    return f"{lower}-"


@dataclass
class _Sums:
    """Running sums over one group of scored positions."""

    nll: float = 0.0
    unigram: float = 0.0
    correct: float = 0.0
    count: int = 0

    def add(self, nll: torch.Tensor, unigram: torch.Tensor, correct: torch.Tensor) -> None:
        self.nll += nll.sum().item()
        self.unigram += unigram.sum().item()
        self.correct += correct.sum().item()
        self.count += nll.numel()

    def summary(self) -> dict[str, float]:
        if not self.count:
            return {"tokens": 0, "loss": math.nan, "unigram_loss": math.nan, "accuracy": math.nan}
        n = self.count
        return {"tokens": n, "loss": self.nll / n, "unigram_loss": self.unigram / n, "accuracy": self.correct / n}


def _clustered_stderr(gains: list[float], counts: list[int]) -> float:
    """Standard error of sum(gains) / sum(counts) with texts as clusters (the ratio estimator's)."""
    total, n = sum(counts), len(counts)
    if total == 0 or n < 2:
        return math.nan
    mean = sum(gains) / total
    spread = sum((g - mean * c) ** 2 for g, c in zip(gains, counts, strict=True))
    return math.sqrt(n / (n - 1) * spread) / total


class _Tally:
    """What evaluate_mlm accumulates: sums per treatment and per text-length group, and each text's gain at [MASK]."""

    def __init__(self) -> None:
        self.groups: dict[str, _Sums] = defaultdict(_Sums)
        self.by_length: dict[str, _Sums] = defaultdict(_Sums)
        self.text_gains: list[float] = []
        self.text_masks: list[int] = []

    def add(
        self,
        seen: torch.Tensor,
        targets: torch.Tensor,
        scores: torch.Tensor,
        base: torch.Tensor,
        text: torch.Tensor,
        groups: list[str],
        mask_id: int,
    ) -> None:
        """Positions of one batch: what the model saw, the answers, its logits, the unigram NLL, each one's text
        (row in the batch) and each row's length group."""
        nll = F.cross_entropy(scores, targets, reduction="none")
        correct = scores.argmax(-1) == targets
        treatment = {"mask": seen == mask_id, "kept": seen == targets}
        treatment["random"] = ~(treatment["mask"] | treatment["kept"])
        self.groups["all"].add(nll, base, correct)
        for name, where in treatment.items():
            self.groups[name].add(nll[where], base[where], correct[where])
        masked = treatment["mask"]
        nll, base, correct, text = nll[masked], base[masked], correct[masked], text[masked]
        per_text = torch.zeros(len(groups), dtype=torch.float64, device=nll.device)
        self.text_gains += per_text.index_add_(0, text, (base - nll).double()).tolist()
        self.text_masks += torch.bincount(text, minlength=len(groups)).tolist()
        for name in set(groups):
            rows = torch.tensor([r for r, group in enumerate(groups) if group == name], device=text.device)
            where = torch.isin(text, rows)
            self.by_length[name].add(nll[where], base[where], correct[where])

    def result(self, uniform_loss: float) -> EvalResult:
        overall = self.groups["all"].summary()
        if not overall["tokens"]:
            raise ValueError("no held-out token was selected: the held-out set is empty or too small")
        by_treatment = {name: self.groups[name].summary() for name in TREATMENTS}
        at_mask = by_treatment["mask"]
        by_length = {}
        for name in sorted(self.by_length, key=lambda g: int(g.split("-")[0])):
            entry = self.by_length[name].summary()
            by_length[name] = {"tokens": entry["tokens"], "context_gain": entry["unigram_loss"] - entry["loss"]}
        return EvalResult(
            loss=overall["loss"],
            accuracy=overall["accuracy"],
            perplexity=math.exp(overall["loss"]),
            selected_tokens=overall["tokens"],
            unigram_loss=overall["unigram_loss"],
            uniform_loss=uniform_loss,
            context_gain=at_mask["unigram_loss"] - at_mask["loss"],
            context_gain_stderr=_clustered_stderr(self.text_gains, self.text_masks),
            by_treatment=by_treatment,
            context_gain_by_length=by_length,
        )


@torch.no_grad()
def evaluate_mlm(
    model: PreTrainedModel, eval_set: EvalSet, unigram: torch.Tensor, batch_size: int = EVAL_BATCH
) -> EvalResult:
    """Cross-entropy and top-1 accuracy at the eval set's selected positions, overall, by treatment, and (at
    [MASK]) by text length; texts are batched by length, which changes no figure beyond float rounding."""
    model.eval()
    device = model.device
    unigram = unigram.to(device)
    tally = _Tally()
    order = sorted(range(len(eval_set.input_ids)), key=lambda i: len(eval_set.input_ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids = pad_sequence([eval_set.input_ids[i] for i in chunk], batch_first=True, padding_value=eval_set.pad_id)
        labels = pad_sequence([eval_set.labels[i] for i in chunk], batch_first=True, padding_value=IGNORE_INDEX)
        attention = pad_sequence([torch.ones_like(eval_set.input_ids[i]) for i in chunk], batch_first=True)
        ids, labels, attention = ids.to(device), labels.to(device), attention.to(device)
        logits = model(input_ids=ids, attention_mask=attention).logits
        selected = labels != IGNORE_INDEX
        text = torch.arange(len(chunk), device=device)[:, None].expand_as(labels)[selected]
        # Each text's own length, not the padded width of its batch.
        groups = [length_group(n) for n in attention.sum(dim=1).tolist()]
        targets = labels[selected]
        tally.add(ids[selected], targets, logits[selected].float(), -unigram[targets], text, groups, eval_set.mask_id)
    return tally.result(uniform_loss=math.log(model.get_input_embeddings().num_embeddings))
