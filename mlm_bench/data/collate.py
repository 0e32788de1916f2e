"""Collate: the library's DataCollatorForLanguageModeling with the recipe's settings, per token or per whole word."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from mlm_bench.config import Settings
from mlm_bench.data.wwm import NO_WORD, WORD_IDS

# Placeholder id of a word slot: the library overwrites it with [MASK] or a random id, or leaves it (kept).
_KEPT = -1


class MlmCollator(DataCollatorForLanguageModeling):
    """The library's collator, except that seed 0 seeds it too (4.57 tests `if self.seed`, so 0 meant unseeded)."""

    def torch_call(self, examples: list[Any]) -> dict[str, Any]:
        if self.seed is not None and self.generator is None:
            self.create_rng()
        return super().torch_call(examples)


class WholeWordMaskCollator(MlmCollator):
    """Selects whole words with probability mlm_probability; each selected word is all [MASK] (80%), all random
    (10%) or kept (10%). Rows carry `word_ids` (equal ids on adjacent tokens = one word), as encode writes them.

    The library's word-level choices are reused: its torch_mask_tokens runs on one slot per word.
    """

    _word_ids: list[list[int]] | None = None

    def torch_call(self, examples: list[Any]) -> dict[str, Any]:
        if not all(isinstance(e, dict) and WORD_IDS in e for e in examples):
            raise ValueError(f"whole-word masking needs rows with {WORD_IDS!r}: encode them with mask='wwm'")
        self._word_ids = [list(e[WORD_IDS]) for e in examples]
        try:
            return super().torch_call([{k: v for k, v in e.items() if k != WORD_IDS} for e in examples])
        finally:
            self._word_ids = None

    def _word_index(self, shape: torch.Size, special: torch.Tensor | None) -> torch.Tensor:
        """Per token, the index of its word within the row (0, 1, ...), or -1 outside words."""
        length, left = shape[1], self.tokenizer.padding_side == "left"
        rows = [
            [NO_WORD] * (length - len(w)) + w if left else w + [NO_WORD] * (length - len(w)) for w in self._word_ids
        ]
        word_ids = torch.tensor(rows, dtype=torch.long)
        inside = word_ids != NO_WORD
        if special is not None:
            inside &= ~torch.as_tensor(special).bool()
        previous = torch.nn.functional.pad(word_ids[:, :-1], (1, 0), value=NO_WORD)
        previous_inside = torch.nn.functional.pad(inside[:, :-1], (1, 0), value=False)
        starts = inside & ((word_ids != previous) | ~previous_inside)
        return torch.where(inside, torch.cumsum(starts, dim=1) - 1, -1)

    def torch_mask_tokens(
        self, inputs: Any, special_tokens_mask: Any | None = None, offset_mapping: Any | None = None
    ) -> tuple[Any, Any]:
        word_index = self._word_index(inputs.shape, special_tokens_mask)
        words_per_row = word_index.max(dim=1).values + 1
        slots = max(int(words_per_row.max()), 1)
        no_word = torch.arange(slots)[None, :] >= words_per_row[:, None]
        placeholders = torch.full((inputs.shape[0], slots), _KEPT, dtype=torch.long)
        word_inputs, word_labels = super().torch_mask_tokens(placeholders, special_tokens_mask=no_word)
        mask_id = self.tokenizer.mask_token_id
        chosen = word_labels != -100
        to_mask = chosen & (word_inputs == mask_id)
        to_random = chosen & (word_inputs != mask_id) & (word_inputs != _KEPT)
        inside = word_index >= 0
        slot = word_index.clamp(min=0)
        selected = chosen.gather(1, slot) & inside
        labels = inputs.clone()
        labels[~selected] = -100
        inputs[to_mask.gather(1, slot) & inside] = mask_id
        # The library draws one random id per selected slot; a word of k tokens needs k of them.
        random_ids = torch.randint(len(self.tokenizer), inputs.shape, dtype=torch.long, generator=self.generator)
        replace = to_random.gather(1, slot) & inside
        inputs[replace] = random_ids[replace]
        return inputs, labels


class FlatteningCollator:
    """Masks a batch of texts with `collator`, then packs the texts whole into rows of `row_length` tokens (first
    fit, longest first), positions numbered from 0 in each text: the same tokens, masks and labels, less padding.

    Not transformers' DataCollatorWithFlattening: it joins a whole batch into one row (made for flash-attention's
    variable-length kernels; SDPA on a block mask costs length^2 per row) and overwrites each text's first label.
    The model must keep packed texts apart (model.isolate_packed_rows), or they would attend to each other.
    """

    def __init__(
        self,
        collator: DataCollatorForLanguageModeling,
        row_length: int,
        pad_to_multiple_of: int | None,
        min_rows: int = 1,
    ) -> None:
        self.collator = collator
        multiple = pad_to_multiple_of or 1
        self.row_length = -(-row_length // multiple) * multiple
        self.min_rows = min_rows

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(features)
        real = batch["attention_mask"].bool()
        texts = [(batch["input_ids"][i][real[i]], batch["labels"][i][real[i]]) for i in range(len(real))]
        lengths = [len(ids) for ids, _ in texts]
        if max(lengths) > self.row_length:
            raise ValueError(
                f"a text of {max(lengths)} tokens does not fit packed rows of {self.row_length}: "
                "encode with truncation at max_length"
            )
        rows = [self._row([texts[i] for i in members]) for members in _first_fit(lengths, self.row_length)]
        rows += [self._row([]) for _ in range(self.min_rows - len(rows))]
        return {key: torch.cat([row[key] for row in rows]) for key in rows[0]}

    def _row(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """One packed row: the texts' (ids, labels) side by side, positions from 0 in each, padded to row_length
        (all padding for no text: the filler min_rows asks for)."""
        ids = torch.cat([ids for ids, _ in texts]) if texts else torch.zeros(0, dtype=torch.long)
        labels = torch.cat([labels for _, labels in texts]) if texts else ids
        positions = torch.cat([torch.arange(len(ids)) for ids, _ in texts]) if texts else ids
        pad = self.row_length - len(ids)
        return {
            "input_ids": F.pad(ids, (0, pad), value=self.collator.tokenizer.pad_token_id)[None],
            "attention_mask": F.pad(torch.ones_like(ids), (0, pad), value=0)[None],
            "position_ids": F.pad(positions, (0, pad))[None],
            "labels": F.pad(labels, (0, pad), value=-100)[None],
        }


def cut_rows(batch: dict[str, Any], length: int) -> dict[str, Any]:
    """The batch's rows cut into rows of `length` tokens (the last piece of each padded), pieces without a real
    token dropped: the same tokens, masks and labels in shorter rows, each numbering its positions from 0.

    Flattened rows carry position ids: each piece numbers them from 0 again at its start and at every text start
    inside it, so the texts it holds (or the parts of them) still attend only within themselves.
    """
    mask = batch["attention_mask"]
    shape = mask.shape
    extra = -shape[1] % length
    out = dict(batch)
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.shape == shape:
            # Padding added here is hidden by the attention mask and carries no label, so any id serves as filler.
            filler = -100 if key == "labels" else 0
            out[key] = F.pad(value, (0, extra), value=filler).reshape(-1, length)
    if "position_ids" in out:
        out["position_ids"] = _restart_positions(out["position_ids"])
    keep = out["attention_mask"].bool().any(dim=1)
    if keep.all():
        return out
    return {k: v[keep] if isinstance(v, torch.Tensor) and v.shape[:1] == keep.shape else v for k, v in out.items()}


def _restart_positions(positions: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's start and from every 0 in it (where a text starts)."""
    index = torch.arange(positions.shape[1]).expand_as(positions)
    starts = torch.where((positions == 0) | (index == 0), index, 0)
    return index - starts.cummax(dim=1).values


def _first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` in bins of at most `capacity`, longest first into the first bin with room (in order)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        target = next((b for b, free in enumerate(room) if free >= lengths[i]), None)
        if target is None:
            bins.append([])
            room.append(capacity)
            target = len(bins) - 1
        bins[target].append(i)
        room[target] -= lengths[i]
    return [sorted(b) for b in bins]


def build_collator(
    tokenizer: PreTrainedTokenizerBase, settings: Settings, seed: int | None = None
) -> DataCollatorForLanguageModeling | FlatteningCollator:
    """The recipe's collator (mlm=True, 80/10/10), per whole word when settings.mask is 'wwm'; `seed` fixes its
    masks independently of the global RNG. With settings.flatten its batches are packed after masking."""
    kind = WholeWordMaskCollator if settings.data.mask == "wwm" else MlmCollator
    masking = kind(
        tokenizer,
        mlm=True,
        mlm_probability=settings.data.mlm_probability,
        # Flattening pads the packed rows instead; masks drawn over the unpadded batch stay the recipe's.
        pad_to_multiple_of=None if settings.speed.flatten else settings.speed.pad_to_multiple_of,
        seed=seed,
    )
    if not settings.speed.flatten:
        return masking
    # torch.compile specialises a dimension of size 1: a batch that fits one row would compile again.
    min_rows = 1 if settings.speed.torch_compile == "off" else 2
    return FlatteningCollator(masking, settings.data.max_length, settings.speed.pad_to_multiple_of, min_rows)


class BatchSeededCollator:
    """Masks batch n of the run from an RNG seeded by (seed, n) alone, and leaves the global RNG untouched.

    Trainer restores the global RNG on resume only after its DataLoader has prefetched (and masked) the next
    batch, so masks drawn from the global RNG differ after a resume; these are the same with or without one, and
    with or without DataLoader workers: n is the epoch's first batch (`start_epoch`, called before each epoch's
    loader starts, so workers copy it) plus the batch's place in the epoch, which a worker knows from its id, since
    a DataLoader hands its batches to its workers in turn.
    """

    def __init__(self, collator: Any, seed: int, start: int = 0) -> None:
        self.collator = collator
        self.seed = seed
        self.first = start  # global index of the first batch this loader yields: a resumed run starts past its own
        self.calls = 0  # batches this process (or this worker) masked since start_epoch

    def start_epoch(self, first: int) -> None:
        """The next batch masked is batch `first` of the run."""
        self.first, self.calls = first, 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        worker = torch.utils.data.get_worker_info()
        place = self.calls if worker is None else worker.id + self.calls * worker.num_workers
        self.calls += 1
        batch_seed = int(np.random.SeedSequence([self.seed, self.first + place]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed also queues a seed for every uninitialised accelerator
            # backend, recording a stack trace each time (8% of a small model's step).
            torch.default_generator.manual_seed(batch_seed)
            return self.collator(features)
