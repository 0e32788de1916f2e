"""Settings and presets: the recipe's values, validation that names the fix."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import pytest

from mlm_bench import config
from mlm_bench.config import PRESETS, Settings, preset
from mlm_bench.errors import UsageError
from mlm_bench.testing import faults


def test_default_settings_are_the_tiny_zh_preset() -> None:
    assert preset("tiny-zh") == Settings()


def _subset(settings: Settings, expected: dict) -> dict:
    """The settings' values of the fields `expected` names."""
    values = settings.flat()
    return {name: values[name] for name in expected}


RECIPE = {
    "dataset": "pleisto/wikipedia-cn-20230720-filtered", "text_column": "completion", "train_rows": 10_000,
    "model_name_or_path": "hfl/chinese-macbert-base", "max_length": 384, "packing": False, "mlm_probability": 0.15,
    "batch_size": 64, "num_train_epochs": 1.0, "max_steps": -1, "logging_steps": 10, "learning_rate": 5e-5,
    "warmup_steps": 0, "weight_decay": 0.0, "lr_scheduler_type": "linear", "sparse_head": False,
    "short_row_length": 0, "tie_word_embeddings": True, "dropout": 0.1,
}  # fmt: skip


def test_seed_preset_is_the_recipe() -> None:
    assert _subset(preset("seed"), RECIPE) == RECIPE


def test_eval_settings_are_the_same_in_every_preset() -> None:
    """Eval settings do not follow training settings, so presets on one corpus (all but `seed`) compare."""
    assert len({preset(name).eval for name in PRESETS}) == 1


def test_seed_shape_is_bert_base_at_the_recipe_batch() -> None:
    shape = {"vocab_size": 21128, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "max_length": 384, "batch_size": 64, "model_name_or_path": None}  # fmt: skip
    assert _subset(preset("seed-shape"), shape) == shape


def test_every_preset_builds() -> None:
    for name in PRESETS:
        assert preset(name).preset == name


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().training.seed = 1  # type: ignore[misc]


# Numeric fields with no interval: max_steps -1 (or 0) means epochs; the others are checked against max_length.
OWN_CHECKS = {"max_steps", "eval_max_length", "short_row_length"}
HINTS = {name: hint for group in config.GROUPS.values() for name, hint in typing.get_type_hints(group).items()}
INTERVALS = [(name, config.interval(name)) for name in config.field_names() if config.interval(name)]


def test_every_numeric_field_has_an_interval() -> None:
    """A numeric field declared without an interval would take any value; the tests below check each interval."""
    numeric = {name for name, hint in HINTS.items() if {int, float} & {hint, *typing.get_args(hint)}}
    assert {name for name in config.field_names() if config.interval(name)} == numeric - OWN_CHECKS


def just_outside(name: str, interval: str) -> list[float]:
    """The values next to each finite end of `interval` that it excludes (1 apart for an int field, else 1e-3)."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    hint = HINTS[name]
    step = 1 if int in (hint, *typing.get_args(hint)) else 1e-3
    values = [low if interval[0] == "(" else low - step]
    if math.isfinite(high):
        values.append(high if interval[-1] == ")" else high + step)
    return [int(v) if step == 1 else v for v in values]


@pytest.mark.parametrize(("name", "interval"), INTERVALS)
def test_a_value_outside_its_interval_is_refused_naming_it(name: str, interval: str) -> None:
    for value in just_outside(name, interval):
        with pytest.raises(UsageError, match=re.escape(f"{name} must be in {interval}, got {value}: pass ")):
            Settings().replace(**{name: value})


def test_a_refusal_suggests_the_presets_own_value() -> None:
    with pytest.raises(UsageError, match=re.escape("got 0.0: pass e.g. --learning_rate 5e-05")):
        preset("seed-shape", learning_rate=0.0)  # tiny-zh's 0.003 would be wrong for BERT-base


def test_a_field_left_out_of_the_ranges_fails_both_interval_tests(monkeypatch) -> None:
    """Test of the tests above: without batch_size's interval, batch_size 0 is taken, and the field is missed."""
    faults.batch_size_unbounded.apply(patch=monkeypatch.setattr)
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
        ({"max_steps": 2.5}, "max_steps must be an integer, got 2.5"),  # numeric fields without an interval too
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
    assert (s.speed.flatten, s.data.packing, s.speed.pad_to_multiple_of, s.speed.sparse_head) == (True, False, 8, True)
    assert s.speed.attn_implementation == "sdpa"
    assert (s.speed.bf16, s.speed.tf32, s.speed.torch_compile, s.speed.fused_adamw) == ("auto", "auto", "auto", True)


def test_tiny_zh_leaves_the_cuda_speed_settings_off() -> None:
    s = preset("tiny-zh")
    assert (s.speed.bf16, s.speed.tf32, s.speed.torch_compile, s.speed.attn_implementation, s.data.group_by_length) == (
        "off",
        "off",
        "off",
        None,
        False,
    )


def test_settings_record_in_groups_and_load_from_either_layout() -> None:
    """results.json and run.json keep the preset and one mapping per group; both layouts load back to the same."""
    settings = preset("fast", max_steps=5, trainer_args=["save_total_limit=2"])
    record = settings.to_dict()
    assert list(record) == ["preset", *config.GROUPS] and record["training"]["max_steps"] == 5
    assert Settings.from_dict(record) == Settings.from_dict(settings.flat()) == settings


def test_every_field_has_one_group_and_replace_routes_it() -> None:
    """Flat names are unique across groups (they are the flags), and replace() changes the field in its group."""
    names = [f.name for group in config.GROUPS.values() for f in dataclasses.fields(group)]
    assert len(names) == len(set(names)) == len(config.field_names()) - 1
    changed = Settings().replace(eval_seed=7, batch_size=3, preset="fast")
    assert (changed.eval.eval_seed, changed.training.batch_size, changed.preset) == (7, 3, "fast")
    assert changed.replace(eval_seed=1234, batch_size=32, preset="tiny-zh") == Settings()
