"""Training arguments: each speed setting reaches Trainer, and CUDA-only ones are refused on CPU, never dropped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from mlm_bench.config import Settings, preset
from mlm_bench.errors import UsageError
from mlm_bench.train import speed_options, training_arguments


@pytest.mark.parametrize("name", ["bf16", "tf32"])
def test_cuda_only_options_are_refused_on_cpu(tiny_settings: Settings, name: str) -> None:
    with pytest.raises(UsageError, match=f"--{name} on needs CUDA.*pass --{name} auto"):
        speed_options(tiny_settings.replace(**{name: "on"}))


def test_auto_is_off_on_cpu_and_on_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_cpu = preset("fast", device="cpu")
    assert speed_options(fast_cpu) == {"bf16": False, "tf32": False, "torch_compile": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert speed_options(preset("fast", device="auto")) == {"bf16": True, "tf32": True, "torch_compile": True}
    assert speed_options(preset("tiny-zh", device="auto")) == {"bf16": False, "tf32": False, "torch_compile": False}


def test_speed_settings_reach_training_arguments(tiny_settings: Settings, tmp_path: Path) -> None:
    args = training_arguments(tiny_settings.replace(torch_compile="on"), tmp_path)
    assert (args.bf16, args.torch_compile) == (False, True)
    assert str(args.optim.value if hasattr(args.optim, "value") else args.optim) == "adamw_torch_fused"
    args = training_arguments(tiny_settings.replace(fused_adamw=False), tmp_path)
    assert str(args.optim.value if hasattr(args.optim, "value") else args.optim) == "adamw_torch"


def test_group_by_length_reaches_the_sampler(tiny_settings: Settings, tmp_path: Path) -> None:
    grouped = training_arguments(tiny_settings.replace(packing=False, group_by_length=True), tmp_path)
    plain = training_arguments(tiny_settings, tmp_path)
    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        assert (grouped.train_sampling_strategy, plain.train_sampling_strategy) == ("group_by_length", "random")
    else:
        assert (grouped.group_by_length, plain.group_by_length) == (True, False)
