"""Settings and presets: the recipe's values, validation that names the fix."""

from __future__ import annotations

import re

import pytest

from mlm_bench.config import PRESETS, Settings, preset
from mlm_bench.errors import UsageError


def test_default_settings_are_the_tiny_zh_preset() -> None:
    assert preset("tiny-zh") == Settings()


def test_seed_preset_is_the_recipe() -> None:
    s = preset("seed")
    assert (s.dataset, s.text_column, s.train_rows) == ("pleisto/wikipedia-cn-20230720-filtered", "completion", 10_000)
    assert s.model_name_or_path == "hfl/chinese-macbert-base"
    assert (s.max_length, s.packing, s.mlm_probability) == (384, False, 0.15)
    assert (s.batch_size, s.num_train_epochs, s.max_steps, s.logging_steps) == (64, 1.0, -1, 10)
    assert (s.learning_rate, s.warmup_steps, s.weight_decay, s.lr_scheduler_type) == (5e-5, 0, 0.0, "linear")
    assert not s.sparse_head
    assert (s.short_row_length, s.tie_word_embeddings, s.dropout) == (0, True, 0.1)


def test_eval_settings_are_the_same_in_every_preset() -> None:
    """Eval settings do not follow training settings, so presets on one corpus (all but `seed`) compare."""
    fields = ("eval_rows", "eval_max_length", "eval_mlm_probability", "eval_seed", "heldout_fraction")
    assert len({tuple(getattr(preset(name), f) for f in fields) for name in PRESETS}) == 1


def test_seed_shape_is_bert_base_at_the_recipe_batch() -> None:
    s = preset("seed-shape")
    assert (s.vocab_size, s.hidden_size, s.num_hidden_layers, s.num_attention_heads) == (21128, 768, 12, 12)
    assert (s.max_length, s.batch_size, s.model_name_or_path) == (384, 64, None)


def test_every_preset_builds() -> None:
    for name in PRESETS:
        assert preset(name).preset == name


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mlm_probability": 0.0}, "mlm_probability must be in (0, 1)"),
        ({"mlm_probability": 1.0}, "mlm_probability must be in (0, 1)"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"batch_size": -4}, "batch_size must be positive"),
        ({"max_steps": -1, "num_train_epochs": 0.0}, "nothing to train"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "not divisible"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
        ({"eval_rows": 0}, "eval_rows must be at least 1"),
        ({"not_a_field": 1}, "unknown setting"),
        ({"eval_mlm_probability": 0.0}, "eval_mlm_probability must be in (0, 1)"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be at least 1"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be >= 0 (0: no clipping)"),
        ({"eval_max_length": 256}, "eval_max_length 256 must be in [8, max_length 128]"),
        ({"eval_max_length": 4}, "eval_max_length 4 must be in [8, max_length 128]"),
        ({"short_row_length": 128}, "short_row_length 128 must be in [0, max_length 128)"),
        ({"short_row_fraction": 1.5}, "short_row_fraction must be in [0, 1]"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ({"attention_dropout": -0.1}, "attention_dropout must be in [0, 1), got -0.1"),
        ({"attn_implementation": "flex_attention", "dropout": 0.1}, "pass --attention_dropout 0"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(changes: dict, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        Settings().replace(**changes)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(UsageError, match="choose one of"):
        preset("tiny")


def test_fast_preset_switches_on_every_speed_setting() -> None:
    s = preset("fast")
    assert (s.flatten, s.packing, s.pad_to_multiple_of, s.sparse_head) == (True, False, 8, True)
    assert s.attn_implementation == "sdpa"
    assert (s.bf16, s.tf32, s.torch_compile, s.fused_adamw) == ("auto", "auto", "auto", True)


def test_tiny_zh_leaves_the_cuda_speed_settings_off() -> None:
    s = preset("tiny-zh")
    assert (s.bf16, s.tf32, s.torch_compile, s.attn_implementation, s.group_by_length) == (
        "off",
        "off",
        "off",
        None,
        False,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"packing": True, "group_by_length": True}, "nothing to group"),
        ({"pad_to_multiple_of": 0}, "pad_to_multiple_of must be positive"),
        ({"flatten": True, "packing": True}, "pass --packing false or --flatten false"),
        ({"flatten": True, "packing": False, "attn_implementation": "flash_attention_2"}, "pass --attn_implementation"),
    ],
)
def test_bad_speed_settings_are_refused_with_the_fix(changes: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings().replace(**changes)
