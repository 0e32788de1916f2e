"""The run summary's context verdict: a gain within 3 standard errors of zero, or none to score, is no context."""

from __future__ import annotations

import pytest

from mlm_bench.runs.summary import context_verdict


def _scores(gain: float, error: float = 0.02) -> tuple[dict, dict]:
    at_mask = {"tokens": 900, "loss": 6.0 - gain, "unigram_loss": 6.0, "accuracy": 0.1}
    return {"context_gain": gain, "context_gain_stderr": error, "by_treatment": {"mask": at_mask}}, {"texts": 1000}


@pytest.mark.parametrize(
    ("gain", "error", "verdict"),
    [
        (-0.2, 0.02, "NO CONTEXT LEARNED"),
        (0.06, 0.02, "NO CONTEXT LEARNED"),  # within 3 standard errors of zero
        (0.07, 0.02, "context gain +0.070 ± 0.020"),
        (1.2, 0.02, "context gain +1.200"),
        (float("nan"), float("nan"), "NO CONTEXT LEARNED"),  # no [MASK]ed token to score
        (0.5, float("nan"), "NO CONTEXT LEARNED"),  # a single text: no error, no claim
    ],
)
def test_context_verdict_says_plainly_when_there_is_none(gain: float, error: float, verdict: str) -> None:
    assert context_verdict(*_scores(gain, error)).startswith(verdict)
