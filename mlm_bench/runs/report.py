"""Report: a finished run as results.json holds it: settings, provenance, corpus, training, held-out scores,
fill-mask answers, and warnings about figures too small to trust."""

from __future__ import annotations

from typing import Any

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.config import Settings
from mlm_bench.data.corpus import Corpus, is_punctuation_only
from mlm_bench.data.encode import count_truncated
from mlm_bench.data.tokenizer import special_tokens, unk_rate
from mlm_bench.runs.results import command_line, device_info, versions
from mlm_bench.training.train import TrainSummary

# 3: settings in groups (data, model, training, speed, eval); 2: flat. Both load (config.Settings.from_dict).
SCHEMA_VERSION = 3
# Fewer held-out [MASK] positions than this and the accuracy's standard error passes 0.01 (at accuracy 0.3,
# sqrt(0.21 / 2000) = 0.010): differences between runs are then mostly noise.
MIN_MASK_POSITIONS = 2000


def eval_warnings(scores: dict[str, Any]) -> list[str]:
    """What makes the held-out figures unreliable, said in results.json and at the end of the run."""
    positions = scores["eval"]["by_treatment"]["mask"]["tokens"]
    if positions >= MIN_MASK_POSITIONS:
        return []
    return [
        f"only {positions} held-out positions were scored as [MASK] (fewer than {MIN_MASK_POSITIONS:,}): the eval "
        "figures are noise at this size; give more held-out text (--heldout_fraction, --eval_rows)"
    ]


def build_results(
    settings: Settings,
    corpus: Corpus,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    train_sequences: int,
    heldout_rows: datasets.Dataset,
    summary: TrainSummary,
    scores: dict[str, Any],
    probed: list[tuple[tuple[str, str], list[dict[str, Any]]]],
) -> dict[str, Any]:
    """results.json's content (but wall_seconds, added when the run is over)."""
    column, eval_length = corpus.text_column, settings.eval.eval_max_length
    return {
        "schema_version": SCHEMA_VERSION,
        "settings": settings.to_dict(),
        "command": command_line(),
        "seed": settings.training.seed,
        "versions": versions(),
        "device": device_info(model.device),
        "corpus": {
            "name": corpus.name,
            "fingerprint": corpus.fingerprint,
            "train_rows": len(corpus.train),
            "heldout_rows": len(corpus.heldout),
            "dropped_empty_rows": corpus.dropped_empty_rows,
            "train_sequences": train_sequences,
            "heldout_unk_rate": unk_rate(heldout_rows, tokenizer),
            "punctuation_only_rows": sum(map(is_punctuation_only, [*corpus.train[column], *corpus.heldout[column]])),
            # Packing cuts no row: it splits long ones across training rows instead.
            "truncated_rows": 0
            if settings.data.packing
            else count_truncated(corpus.train, column, tokenizer, settings.data.max_length),
            "heldout_truncated_texts": count_truncated(corpus.heldout, column, tokenizer, eval_length),
        },
        "vocab_size": len(tokenizer),
        "special_tokens": special_tokens(tokenizer),
        "model_parameters": model.num_parameters(),
        "train": summary.to_dict(),
        **scores,
        "warnings": eval_warnings(scores),
        "fill_mask": [
            {"text": text, "answer": answer or None, "predictions": preds} for (text, answer), preds in probed
        ],
    }
