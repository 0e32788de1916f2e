"""Infer: fill-mask probes through the library's pipeline, the recipe's and held-out cloze sentences."""

from __future__ import annotations

import re
from typing import Any

from transformers import Pipeline, PreTrainedModel, PreTrainedTokenizerBase, pipeline

_SENTENCE_END = re.compile(r"(?<=[。！？])")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def cloze_sentences(texts: list[str], count: int, mask_token: str) -> list[tuple[str, str]]:
    """(probe, answer) pairs: the first short held-out sentences with their middle CJK character masked."""
    probes: list[tuple[str, str]] = []
    for text in texts:
        for sentence in _SENTENCE_END.split(text):
            positions = [m.start() for m in _CJK.finditer(sentence)]
            if len(probes) == count:
                return probes
            if 8 <= len(sentence) <= 40 and len(positions) >= 6:
                i = positions[len(positions) // 2]
                probes.append((sentence[:i] + mask_token + sentence[i + 1 :], sentence[i]))
    return probes


def fill_mask_pipeline(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Pipeline:
    """pipeline('fill-mask') on the model and tokenizer, as the recipe builds it: built once, called per probe."""
    return pipeline("fill-mask", model=model, tokenizer=tokenizer, device=model.device)


def fill_mask(fill: Pipeline, texts: list[str], top_k: int = 5) -> list[list[dict[str, Any]]]:
    """Top-k predictions for the mask in each text, best first, as plain JSON-ready dicts."""
    out = []
    for text in texts:
        predictions = fill(text, top_k=top_k)
        out.append(
            [{"token_str": p["token_str"], "token": int(p["token"]), "score": float(p["score"])} for p in predictions]
        )
    return out
