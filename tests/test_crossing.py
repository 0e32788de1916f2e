"""Artifacts across versions (mlm_bench/contract/crossing.py): within one environment every path works bit for bit,
and each planted break of an artifact or of the resume shows as the outcome it is: refused, broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import transformers
from safetensors.torch import load_file, save_file

from mlm_bench import cli
from mlm_bench.compat import HEAD_BIAS
from mlm_bench.contract import crossing, defects
from mlm_bench.contract.setup import Setup, load_setup
from mlm_bench.testing.faults import FAULTS
from mlm_bench.testing.helpers import tiny_cli_args


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The setup of a directory `mlm-bench run` saved (the tiny model, 4 steps, its embeddings untied as tiny-zh's)."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main(["run", *tiny_cli_args(max_steps=4, tie_word_embeddings=False), "--output-dir", str(out)]) == 0
    return load_setup(out)


@pytest.fixture(scope="module")
def written(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What this environment writes of the setup: saved model and tokenizer, probes, a halfway and a whole run."""
    out = tmp_path_factory.mktemp("written")
    crossing.write(setup, out)
    return out


def _statuses(found: list[crossing.Crossed]) -> dict[str, tuple[str, str | None]]:
    return {c.path: (c.status, c.known) for c in found}


@pytest.mark.slow  # a tiny run, the artifacts written (two short trainings) and read (a third): about 20 s
def test_within_one_environment_every_path_works_bit_for_bit(setup, written, tmp_path) -> None:
    found = crossing.read(setup, written, written, tmp_path)
    assert _statuses(found) == {"tokenizer": ("works", None), "model": ("works", None), "checkpoint": ("works", None)}
    assert "logits within 0.0e+00" in found[1].detail and "bit for bit" in found[2].detail


@pytest.mark.slow
def test_a_resume_that_loses_its_place_is_broken_not_a_version_difference(setup, written, tmp_path, breakers):
    breakers.plant_fault(FAULTS["resume offset lost"])
    found = crossing.read(setup, written, written, tmp_path)
    assert found[2].status == "broken" and "both sides' own runs are identical" in found[2].detail


@pytest.mark.slow
def test_an_unloadable_tokenizer_is_refused_in_one_line_and_altered_weights_are_broken(setup, written, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(written, other)
    (other / "saved" / "tokenizer.json").write_text('{"truncated', encoding="utf-8")  # a copy cut short
    refused = crossing.read(setup, other, written, tmp_path / "a")[0]
    assert (refused.status, refused.known) == ("refused", None) and "\n" not in refused.detail, refused
    shutil.copy(written / "saved" / "tokenizer.json", other / "saved" / "tokenizer.json")
    weights = other / "saved" / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v * 1.01 if k.endswith("LayerNorm.weight") else v for k, v in state.items()}, str(weights),
              metadata={"format": "pt"})  # fmt: skip
    broken = crossing.read(setup, other, written, tmp_path / "b")[1]
    assert (broken.status, broken.known) == ("broken", None) and "logits off the writer's by up to" in broken.detail


@pytest.mark.slow
def test_a_model_saved_as_4_57_saves_it_loads_without_its_output_bias_named_by_the_registry(setup, written, tmp_path):
    """An untied BERT as 4.57 writes it (its one trained output bias as cls.predictions.bias, no decoder bias): 5.x
    starts the decoder's bias at zero, and the reader names bert-untied-head-bias because the saved bias, put in
    place, gives the writer's logits. (On 4.57, which reads that file right, the model path works.)"""
    other = tmp_path / "other"
    shutil.copytree(written, other)
    weights = other / "saved" / "model.safetensors"
    state = load_file(str(weights))
    state["cls.predictions.bias"] = state.pop(HEAD_BIAS, state["cls.predictions.bias"])
    save_file(state, str(weights), metadata={"format": "pt"})
    found = crossing.read(setup, other, written, tmp_path / "a")[1]
    five = int(transformers.__version__.split(".")[0]) >= 5
    assert (found.status, found.known) == (("broken", "bert-untied-head-bias") if five else ("works", None))


def test_a_refusal_carrying_a_registered_signature_is_named_by_its_defect() -> None:
    registered = [d for d in defects.DEFECTS if d.signature]
    assert registered, "no defect of the registry names a refusal"
    for defect in registered:
        line, known = crossing._refusal(ValueError(f"the library says:\n {defect.signature} and more"))
        assert known == defect.key and "\n" not in line
    assert crossing._refusal(OSError("something else entirely")) == ("OSError: something else entirely", None)
