"""Tiny settings and models, CLI arguments and error lines, known-defect marks: what tests build on."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from mlm_bench.contract import defects
from mlm_bench.runs.results import versions

# A model small enough that a few training steps take well under a second on 2 CPU cores.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_length": 64,
    "eval_max_length": 64,
    # The recipe's masking and BERT's tied embedding, as the stored fingerprints were made with (fingerprint.SETTINGS).
    "mlm_probability": 0.15,
    "tie_word_embeddings": True,
    "batch_size": 8,
    "max_steps": 4,
    "warmup_steps": 0,
    "logging_steps": 1,
    "eval_rows": 40,
    "cloze_probes": 1,
    "device": "cpu",
}


def known_defect(key: str) -> pytest.MarkDecorator:
    """A strict xfail where the installed versions have the registered upstream defect `key` (and a plain test
    elsewhere): the suite stays green on a known-bad version and fails once the defect is fixed upstream."""
    defect = defects.lookup(key)
    reason = f"known upstream defect {key}: {defect.breaks} ({defect.upstream}; {defect.measured.describe()})"
    return pytest.mark.xfail(defect.affects(versions()), reason=reason, strict=True)


def tiny_cli_args(**overrides: object) -> list[str]:
    """TINY plus overrides as `mlm-bench run` flags."""
    return [arg for key, value in {**TINY, **overrides}.items() for arg in (f"--{key}", str(value))]


def tiny_bert(vocab_size: int, **config: Any) -> BertForMaskedLM:
    """A random 1-layer, 32-wide BERT masked LM: what a user's pretrained model directory holds, in miniature."""
    sizes = {key: TINY[key] for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}
    return BertForMaskedLM(BertConfig(vocab_size=vocab_size, **{**sizes, **config}))


def error_line(stderr: str, prefix: str) -> str:
    """What follows `prefix` on the one stderr line that has it (a progress bar may share the line or follow it)."""
    found = [line.partition(prefix)[2] for line in stderr.splitlines() if prefix in line]
    assert len(found) == 1, stderr[-2000:]
    return found[0]


def split_texts(batch: dict[str, torch.Tensor]) -> list[tuple[tuple[int, ...], tuple[int, Any]]]:
    """Each text in a batch as (its input ids, the (row, positions) index of its tokens); in a flattened batch a
    text starts wherever position ids restart at 0."""
    texts = []
    for row, real in enumerate(batch["attention_mask"].bool()):
        where = real.nonzero().flatten()
        positions = batch["position_ids"][row][where] if "position_ids" in batch else torch.arange(len(where))
        starts = [*(positions == 0).nonzero().flatten().tolist(), len(where)]
        for a, b in itertools.pairwise(starts):
            span = (row, where[a:b])
            texts.append((tuple(batch["input_ids"][span].tolist()), span))
    return texts
