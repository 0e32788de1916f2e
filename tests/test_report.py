"""Report: results.json's content warns when the held-out figures rest on too few positions."""

from __future__ import annotations

from mlm_bench.runs.report import MIN_MASK_POSITIONS, eval_warnings


def test_too_few_mask_positions_are_warned_about() -> None:
    def scores(positions: int) -> dict:
        return {"eval": {"by_treatment": {"mask": {"tokens": positions}}}}

    assert eval_warnings(scores(MIN_MASK_POSITIONS)) == []
    (warning,) = eval_warnings(scores(MIN_MASK_POSITIONS - 1))
    assert warning.startswith(f"only {MIN_MASK_POSITIONS - 1} held-out positions were scored as [MASK]")
