"""Card: a run directory's README.md states the run's own figures; the loss plot is optional, never the card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlm_bench.runs.card import GAIN_AXIS, LOSS_AXIS, curve_series, model_card, plot_loss_curve, write_card

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "tiny-zh-run.json"


def test_card_states_the_runs_figures() -> None:
    results = json.loads(REFERENCE.read_text(encoding="utf-8"))
    card = model_card(results)
    ev = results["eval"]
    assert f"| context gain at [MASK] (nats over token frequencies) | {ev['context_gain']:.4g} ± n/a |" in card
    assert f"{results['train']['steps']} steps" in card and results["fill_mask"][0]["text"] in card
    assert f"- corpus: {results['corpus']['name']}, {results['corpus']['train_rows']:,} train rows" in card
    assert f"- `learning_rate`: {results['settings']['learning_rate']}" in card


def test_without_matplotlib_the_card_is_written_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert plot_loss_curve({"loss_curve": [{"step": 1, "loss": 2.0}]}, tmp_path / "curve.png") is None
    results = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert [p.name for p in write_card(tmp_path, results)] == ["README.md"]
    assert "loss_curve.png" not in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_card_lists_the_context_gain_during_training() -> None:
    results = json.loads(REFERENCE.read_text(encoding="utf-8"))
    results["train"]["eval_curve"] = [{"step": 500, "eval_context_gain": 0.5}, {"step": 1000, "eval_context_gain": 2.0}]
    assert "Context gain during training: step 500: 0.5, step 1000: 2." in model_card(results)


def test_the_plot_draws_the_context_gain_of_the_periodic_passes(tmp_path: Path) -> None:
    """The loss curve alone without --eval_steps; with it, the held-out context gain at its steps too."""
    train = {"loss_curve": [{"step": 1, "loss": 8.0}, {"step": 2, "loss": 7.0}], "eval_curve": []}
    assert curve_series(train) == {LOSS_AXIS: ([1, 2], [8.0, 7.0])}
    train["eval_curve"] = [{"step": 2, "eval_context_gain": 0.5, "eval_mask_loss": 6.0}]
    assert curve_series(train) == {LOSS_AXIS: ([1, 2], [8.0, 7.0]), GAIN_AXIS: ([2], [0.5])}
    pytest.importorskip("matplotlib", reason="the plot needs the `gate` extra (matplotlib)")
    assert plot_loss_curve(train, tmp_path / "curve.png").stat().st_size > 0
