"""The fault registry (mlm_bench/testing/faults.py): one definition per fault, planted counted through the breakers,
and applied in a fresh interpreter from the source it generates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlm_bench.testing import faults
from mlm_bench.testing.breakers import Breakers
from mlm_bench.training import train as train_module

# Dropout 0.5 in eval() on 1000 ones: the same ones unless the fault keeps dropping them.
EVAL_DROPOUT = "import torch\nd = torch.nn.Dropout(0.5).eval()\nx = torch.ones(1000)\nprint(bool((d(x) == x).all()))\n"


def test_a_planted_fault_is_counted_and_required_as_the_registry_says(monkeypatch) -> None:
    planted = Breakers(monkeypatch)
    planted.plant_fault(faults.rows_not_cut)
    batch = {"input_ids": None}
    assert train_module.cut_rows(batch, 8) is batch
    assert planted.calls == {"mlm_bench.training.train.cut_rows": 1}
    assert planted.required == {"mlm_bench.training.train.cut_rows"}


def test_a_faults_source_applies_it_in_a_new_interpreter() -> None:
    """The source a sitecustomize or `-c` script runs breaks what the fault breaks in process: eval() dropout."""
    script = EVAL_DROPOUT + faults.dropout_in_eval.source() + EVAL_DROPOUT
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]


def test_two_faults_cannot_share_a_name() -> None:
    """A second fault under a name would shadow the first in FAULTS, where generated source looks faults up."""
    with pytest.raises(ValueError, match="two faults are named 'BERT ignores position ids'"):
        faults.fault(faults.positions_ignored.name, "torch:save")(lambda save: save)
