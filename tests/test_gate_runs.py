"""The gate on two runs' results.json (mlm_bench/gate/runs.py, `mlm-bench gate --results`): a run read by any
environment's gate, its figures compared under the gate's tolerances, runs of other configs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlm_bench.cli import main

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "tiny-zh-run-tf5.25.json"


def _written(tmp_path: Path, name: str, change=None) -> Path:
    """The committed reference run's results.json, `change` applied to it, written as `name`."""
    record = json.loads(REFERENCE.read_text(encoding="utf-8"))
    if change:
        change(record)
    path = tmp_path / name
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def test_a_run_against_itself_is_the_same_in_every_figure(tmp_path: Path, capsys) -> None:
    run = _written(tmp_path, "a.json")
    assert main(["gate", "--results", str(run), str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Runs: same within tolerance") and "| run | context_gain |" in out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r["train"].update(train_loss=r["train"]["train_loss"] * 1.02), "loss@train"),
        (lambda r: r["eval"].update(context_gain=r["eval"]["context_gain"] - 0.1), "context_gain"),
        (lambda r: r["train"]["optimizer"].update(eps=1e-6), "optimizer.eps"),
    ],
    ids=["train loss +2%", "context gain -0.1 nats", "adam epsilon"],
)
def test_a_figure_moved_beyond_its_tolerance_fails_the_gate(tmp_path: Path, capsys, change, named) -> None:
    base, new = _written(tmp_path, "a.json"), _written(tmp_path, "b.json", change)
    assert main(["gate", "--results", str(base), str(new)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"# Runs: CHANGED: {named}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["settings"].update(max_steps=7),
            "differ in settings, so their figures differ for reasons no upgrade caused",
        ),
        (lambda r: r.pop("eval"), "is not a finished run's results.json (no eval)"),
    ],
    ids=["other settings", "unfinished"],
)
def test_runs_that_cannot_be_compared_are_refused(tmp_path: Path, capsys, change, message) -> None:
    base, new = _written(tmp_path, "a.json"), _written(tmp_path, "b.json", change)
    assert main(["gate", "--results", str(base), str(new)]) == 2
    assert message in capsys.readouterr().err
