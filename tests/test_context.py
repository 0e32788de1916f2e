"""The context workload: a tiny BERT learns the copy task through the project's Trainer, and fails it when
self-attention is made causal, position ids are ignored or the attention mask is dropped (faults of
mlm_bench.testing.faults, planted here).

Thresholds (false-alarm rationale, `python -m mlm_bench.studies.context_seeds --seeds 0-9`, docs/performance.md,
"The context workload"): trained 400 steps at seeds 0-9, the [MASK] loss ended between 0.011 and 0.017 nats, the
same on transformers 4.57 and 5.x, and padding moved no log-probability by more than 4.8e-6. The broken models end
at 1.399 nats (causal) and 1.899 (positions ignored), or shift by 0.570 (mask dropped). MAX_LOSS is 14 times the
worst healthy seed and a 5.6th of the smallest broken loss; MAX_SHIFT is 200 times the largest healthy shift and
under a five-hundredth of the broken one.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from mlm_bench.contract import context
from mlm_bench.modeling.model import IGNORE_INDEX, build_model
from mlm_bench.testing import faults

MAX_LOSS = 0.25  # nats at [MASK]; the unigram is ln 16 = 2.77
MAX_SHIFT = 1e-3  # largest change of a log-probability at [MASK] when the batch is padded to twice its length


@pytest.fixture(scope="module")
def workload() -> context.Workload:
    return context.load_workload()


def assert_learns_context(workload: context.Workload, tmp_path) -> context.ContextScore:
    """Train the workload from scratch and require near-zero [MASK] loss that padding does not move."""
    _, summary, result = context.train_workload(workload, tmp_path)
    assert summary.steps == context.WORKLOAD.training.max_steps
    assert result.loss < MAX_LOSS, f"[MASK] loss {result.loss:.3f} nats >= {MAX_LOSS}: context not learned"
    assert result.padding_shift < MAX_SHIFT, f"padding moved log-probabilities by {result.padding_shift:.2e}"
    assert result.padded_loss < MAX_LOSS
    return result


def test_copy_texts_repeat_a_seeded_span() -> None:
    texts = context.copy_texts(200, seed=7)
    assert texts == context.copy_texts(200, seed=7) != context.copy_texts(200, seed=8)
    assert all(len(t) == 2 * context.SPAN and t[: context.SPAN] == t[context.SPAN :] for t in texts)
    counts = Counter("".join(texts))
    assert set(counts) == set(context.SYMBOLS)


def test_eval_masks_one_token_per_copy_and_leave_its_twin(workload: context.Workload) -> None:
    batch, span = workload.eval_batch, context.SPAN
    mask_id = workload.tokenizer.mask_token_id
    selected = batch["labels"] != IGNORE_INDEX
    assert selected.sum(dim=1).eq(2).all()
    assert (batch["input_ids"][selected] == mask_id).all()
    for row in range(len(selected)):
        first, second = selected[row].nonzero().flatten().tolist()
        assert 1 <= first <= span < second <= 2 * span
        for position in (first, second):
            twin = position + span if position <= span else position - span
            assert batch["input_ids"][row, twin] == batch["labels"][row, position]


def test_untrained_model_scores_near_the_unigram(workload: context.Workload) -> None:
    """The check has room to fail: a fresh model is ~ln 16 at [MASK], far above MAX_LOSS."""
    torch.manual_seed(0)
    fresh = context.score(build_model(context.WORKLOAD, workload.tokenizer), workload)
    assert fresh.loss > math.log(len(context.SYMBOLS)) - 0.5
    assert fresh.unigram_loss == pytest.approx(math.log(len(context.SYMBOLS)), abs=0.01)  # uniform symbols
    assert abs(fresh.context_gain) < 0.5
    assert fresh.padding_shift < MAX_SHIFT


def test_tiny_bert_learns_the_context_workload(workload: context.Workload, tmp_path) -> None:
    result = assert_learns_context(workload, tmp_path)
    assert result.accuracy == 1.0


# Each breaks what the workload checks at a public entry point that BERT calls on 4.57 and 5.x (required breakers).
BREAKAGES = {
    "causal self-attention": (faults.causal, "context not learned"),
    "position ids ignored": (faults.positions_ignored, "context not learned"),
    "attention mask dropped": (faults.mask_dropped, "padding moved"),
}


@pytest.mark.slow  # three trainings of about 5 s each: the fast suite keeps the unbroken one
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_attention_fails_the_workload(breakage: str, workload: context.Workload, breakers, tmp_path) -> None:
    fault, complaint = BREAKAGES[breakage]
    breakers.plant_fault(fault)
    with pytest.raises(AssertionError, match=complaint):
        assert_learns_context(workload, tmp_path)
