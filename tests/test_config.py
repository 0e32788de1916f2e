"""Settings and presets: the recipe's values, validation that names the fix."""

from __future__ import annotations

import math
import re
import typing

import pytest

from mlm_bench import config
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


# Numeric fields outside config.RANGES: max_steps -1 (or 0) means epochs; the others are checked against max_length.
OWN_CHECKS = {"max_steps", "eval_max_length", "short_row_length"}


def test_every_numeric_field_has_an_interval() -> None:
    """A numeric field missing from config.RANGES would take any value; the tests below check each interval."""
    hints = typing.get_type_hints(Settings)
    numeric = {name for name, hint in hints.items() if {int, float} & {hint, *typing.get_args(hint)}}
    assert {name for names in config.RANGES.values() for name in names.split()} == numeric - OWN_CHECKS


def just_outside(name: str, interval: str) -> list[float]:
    """The values next to each finite end of `interval` that it excludes (1 apart for an int field, else 1e-3)."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    hint = typing.get_type_hints(Settings)[name]
    step = 1 if int in (hint, *typing.get_args(hint)) else 1e-3
    values = [low if interval[0] == "(" else low - step]
    if math.isfinite(high):
        values.append(high if interval[-1] == ")" else high + step)
    return [int(v) if step == 1 else v for v in values]


@pytest.mark.parametrize(
    ("name", "interval"), [(name, interval) for interval, names in config.RANGES.items() for name in names.split()]
)
def test_a_value_outside_its_interval_is_refused_naming_it(name: str, interval: str) -> None:
    for value in just_outside(name, interval):
        with pytest.raises(UsageError, match=re.escape(f"{name} must be in {interval}, got {value}: pass ")):
            Settings().replace(**{name: value})


def test_a_refusal_suggests_the_presets_own_value() -> None:
    with pytest.raises(UsageError, match=re.escape("got 0.0: pass e.g. --learning_rate 5e-05")):
        preset("seed-shape", learning_rate=0.0)  # tiny-zh's 0.003 would be wrong for BERT-base


def test_a_field_left_out_of_the_ranges_fails_both_interval_tests(monkeypatch) -> None:
    """Test of the tests above: without batch_size's interval, batch_size 0 is taken, and the field is missed."""
    monkeypatch.setitem(config.RANGES, "[1, inf)", config.RANGES["[1, inf)"].replace("batch_size", ""))
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        test_a_value_outside_its_interval_is_refused_naming_it("batch_size", "[1, inf)")
    with pytest.raises(AssertionError, match="batch_size"):
        test_every_numeric_field_has_an_interval()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 2.5}, "batch_size must be an integer, got 2.5: pass e.g. --batch_size 32"),
        ({"seed": True}, "seed must be an integer, got True"),
        ({"dropout": False}, "dropout must be a number, got False"),
        ({"max_steps": 2.5}, "max_steps must be an integer, got 2.5"),  # numeric fields outside RANGES too
        ({"max_steps": -1, "num_train_epochs": 0.0}, "nothing to train"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "not divisible"),
        ({"not_a_field": 1}, "unknown setting"),
        ({"eval_max_length": 256}, "eval_max_length 256 must be in [8, max_length 128]"),
        ({"eval_max_length": 4}, "eval_max_length 4 must be in [8, max_length 128]"),
        ({"short_row_length": 128}, "short_row_length 128 must be in [0, max_length 128)"),
        ({"attn_implementation": "flex_attention", "dropout": 0.1}, "pass --attention_dropout 0"),
        ({"attn_implementation": "flex_attention", "model_name_or_path": "m", "attention_dropout": 0.1}, "pass --att"),
        ({"packing": True, "group_by_length": True}, "nothing to group"),
        ({"flatten": True, "packing": True}, "pass --packing false or --flatten false"),
        ({"flatten": True, "packing": False, "attn_implementation": "flash_attention_2"}, "pass --attn_implementation"),
        ({"sparse_head": False, "sparse_capacity": 0.3}, "pass --sparse_head true"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(changes: dict, message: str) -> None:
    """A float in an int field (a settings file's value skips argparse's typing) too: 2.5 rows per batch crashed
    after loading."""
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
