"""The public pytest plugin (mlm_bench/testing/plugin.py) and the contract it runs on a user's own model
(mlm_bench/contract/test_setup_*.py): registered for every pytest, light to load, passing on a directory `mlm-bench
run` saved, and failing on each planted break of the tokenizer, the masking, the model and the library."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from mlm_bench import cli
from mlm_bench.testing.faults import FAULTS, move_mask_token
from mlm_bench.testing.helpers import tiny_cli_args

CONTRACT = ("--pyargs", "mlm_bench.contract", "-p", "no:randomly", "-p", "no:cacheprovider")


def test_the_plugin_is_registered_for_every_pytest_and_loads_no_library() -> None:
    """The pytest11 entry point names the plugin; loading it (and the plugins it requires) imports none of torch,
    transformers or datasets, which every pytest run of the environment would otherwise pay for."""
    plugins = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert plugins.get("mlm_bench") == "mlm_bench.testing.plugin"
    code = ("import sys, mlm_bench.testing.plugin as p\nfor name in p.pytest_plugins: __import__(name)\n"
            "print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory `mlm-bench run` saved: the tiny model after 4 steps on 300 builtin rows."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main(["run", *tiny_cli_args(max_steps=4), "--output-dir", str(out)]) == 0
    return out


def outcomes(pytester: pytest.Pytester, model: Path, *extra: str) -> dict[str, str]:
    """Each contract test's outcome on `model`, run in pytester's own folder (outside the checkout)."""
    result = pytester.runpytest_inprocess(*CONTRACT, "--mlm-model", str(model), *extra)
    reports = result.reprec.getreports("pytest_runtest_logreport")
    return {r.nodeid.rpartition("::")[2]: r.outcome for r in reports if r.when == "call" or r.outcome != "passed"}


@pytest.mark.slow  # a tiny run and the whole contract, twice: about 20 s
def test_the_contract_passes_on_a_run_and_fails_when_its_mask_token_moves(saved_run: Path, pytester, tmp_path):
    passed = outcomes(pytester, saved_run)
    assert len(passed) == 9 and set(passed.values()) == {"passed"}, passed
    planted = tmp_path / "planted"
    shutil.copytree(saved_run, planted)
    assert move_mask_token(planted) == (4, 5)
    failed = outcomes(pytester, planted)
    assert [test for test, outcome in failed.items() if outcome != "passed"] == [
        "test_special_tokens_are_those_the_model_was_trained_with"
    ], failed


@pytest.mark.slow  # one contract test per planted break: about 2 s each
@pytest.mark.parametrize(
    ("fault", "test"),
    [
        ("dropout left on under eval()", "test_eval_mode_and_the_fill_mask_pipeline_run_without_dropout"),
        ("BERT attention ignores the padding mask", "test_padding_does_not_change_the_logits"),
        ("weights saved in bfloat16", "test_a_saved_and_loaded_model_gives_identical_logits"),
        ("decode drops the last token", "test_ids_survive_the_round_trips_through_tokens_and_text"),
        ("collator selects special tokens", "test_your_collator_keeps_the_masking_contract"),
    ],
)
def test_each_contract_test_fails_on_its_planted_break(fault, test, saved_run, pytester, breakers) -> None:
    breakers.plant_fault(FAULTS[fault])
    assert outcomes(pytester, saved_run, "-k", test) == {test: "failed"}


def test_without_a_model_the_contract_says_what_to_pass(pytester) -> None:
    result = pytester.runpytest_inprocess(*CONTRACT, "-k", "test_padding")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no model to check: pass --mlm-model DIR*"])
