"""Training contract: each check reports the breakage it names."""

from __future__ import annotations

import math

import pytest
import torch

from mlm_bench.contract import training as contract_training
from mlm_bench.contract.masking import ContractViolation


@pytest.mark.parametrize("loss", [0.0, math.nan, 1.1 * math.log(4669), 0.9 * math.log(4669)])
def test_initial_loss_check_reports_wrong_losses(loss):
    """A zero, NaN, or 10%-scaled initial loss is reported."""
    with pytest.raises(ContractViolation, match="initial MLM loss"):
        contract_training.check_initial_loss(loss, 4669)


def test_training_check_reports_no_progress():
    """Unchanged weights, a loss that did not fall, or a non-finite loss are reported."""
    model = torch.nn.Linear(2, 2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ContractViolation, match="unchanged"):
        contract_training.check_training_progress(2.0, 1.0, frozen, model)
    with torch.no_grad():
        model.weight.add_(1.0)
        model.bias.add_(1.0)
    with pytest.raises(ContractViolation, match="did not lower"):
        contract_training.check_training_progress(1.0, 1.0, frozen, model)
    with pytest.raises(ContractViolation, match="finite and positive"):
        contract_training.check_training_progress(1.0, math.inf, frozen, model)


def test_schedule_check_reports_a_wrong_step():
    """A learning rate that differs from the schedule at one step is reported with that step."""
    with pytest.raises(ContractViolation, match="step 2"):
        contract_training.check_schedule([1e-3, 5e-4], [1e-3, 6e-4])
