"""Infer: cloze probes come from held-out text; fill-mask returns the pipeline's top-5, best first."""

from __future__ import annotations

from mlm_bench.testing.helpers import tiny_bert
from mlm_bench.training.infer import cloze_sentences, fill_mask, fill_mask_pipeline


def test_cloze_masks_a_middle_character_of_a_short_sentence() -> None:
    texts = ["短。", "今天北京的天气非常好。明天呢？"]
    (probe, answer), *_ = cloze_sentences(texts, 2, "[MASK]")
    assert probe.replace("[MASK]", answer) == "今天北京的天气非常好。"
    assert probe.count("[MASK]") == 1 and "\u4e00" <= answer <= "\u9fff"


def test_cloze_returns_at_most_count(corpus) -> None:
    assert len(cloze_sentences(list(corpus.heldout["completion"]), 3, "[MASK]")) == 3


def test_fill_mask_top5_from_the_pipeline(tokenizer) -> None:
    model = tiny_bert(len(tokenizer)).eval()
    (top,) = fill_mask(fill_mask_pipeline(model, tokenizer), ["今天[MASK]情很好"])
    scores = [p["score"] for p in top]
    assert len(top) == 5 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    assert {"token_str", "token", "score"} == set(top[0])
