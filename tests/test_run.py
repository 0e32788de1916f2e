"""Run: the `seed` preset's loading path on local copies, as a user without the Hub runs it."""

from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path

import datasets
import pytest

from mlm_bench.config import Settings, preset
from mlm_bench.data.tokenizer import save_tokenizer
from mlm_bench.errors import UsageError
from mlm_bench.runs import run as run_module
from mlm_bench.runs.card import CARD_FILE, CURVE_FILE
from mlm_bench.runs.results import RESULTS_FILE
from mlm_bench.runs.run import prepare, run
from mlm_bench.testing import faults
from mlm_bench.testing.helpers import tiny_bert


def test_seed_preset_runs_on_local_save_to_disk_data_and_pretrained_dir(tmp_path: Path, corpus, tokenizer) -> None:
    data = tmp_path / "wiki_cn_filtered"
    datasets.Dataset.from_dict(
        {"completion": list(corpus.train["completion"][:160]), "source": ["x"] * 160}
    ).save_to_disk(str(data))
    model_dir = tmp_path / "macbert"
    tiny_bert(len(tokenizer)).save_pretrained(str(model_dir))
    save_tokenizer(tokenizer, model_dir)
    settings = preset(
        "seed", dataset=str(data), model_name_or_path=str(model_dir), train_rows=100, max_length=64, eval_max_length=64,
        batch_size=8, heldout_fraction=0.3, device="cpu", cloze_probes=1, logging_steps=5,
    )  # fmt: skip
    results = run(settings, tmp_path / "run")
    assert results["corpus"]["train_rows"] == 100
    assert results["train"]["steps"] == 13  # ceil(100 / 8): one epoch, as the recipe's 157 = ceil(10000 / 64)
    assert 0 < results["train"]["pad_fraction"] < 1  # unpacked rows padded to the longest in each batch
    assert results["vocab_size"] == len(tokenizer)
    assert (tmp_path / "run" / RESULTS_FILE).is_file()
    card = (tmp_path / "run" / CARD_FILE).read_text(encoding="utf-8")
    assert f"| top-1 accuracy at [MASK] | {results['eval']['by_treatment']['mask']['accuracy']:.4g} |" in card
    assert (tmp_path / "run" / CURVE_FILE).read_bytes().startswith(b"\x89PNG")


def test_flatten_run_reports_what_the_padded_run_reports(tmp_path: Path, tiny_settings) -> None:
    """A flatten run trains on the same rows with the same masks as the padded run: the same train and held-out
    losses (to float rounding), on fewer computed tokens; pad_to_multiple_of moves neither the training masks nor
    the held-out ones. A packed run is scored on the same held-out texts and masks as both."""
    padded_settings = tiny_settings.replace(packing=False, short_row_length=0, train_rows=400)
    padded = run(padded_settings, tmp_path / "padded")
    # 48 rounds the 64-token batches of truncated rows up to 96, so masks drawn over the rounded batch would differ.
    flat_settings = padded_settings.replace(flatten=True, pad_to_multiple_of=48)
    flat = run(flat_settings, tmp_path / "flat")
    assert math.isclose(flat["train"]["train_loss"], padded["train"]["train_loss"], rel_tol=1e-5)
    assert math.isclose(flat["eval"]["loss"], padded["eval"]["loss"], rel_tol=1e-5)
    assert flat["eval"]["selected_tokens"] == padded["eval"]["selected_tokens"]
    assert flat["train"]["pad_fraction"] < padded["train"]["pad_fraction"]
    packed = run(tiny_settings.replace(train_rows=400, eval_steps=2), tmp_path / "packed")
    assert packed["eval_set"] == flat["eval_set"] == padded["eval_set"]
    # eval_steps 2 of 4 steps: the pass at step 4 scores the final model on the final eval set, so it equals it.
    assert [point["step"] for point in packed["train"]["eval_curve"]] == [2, 4]
    # The held-out pass logs at its steps without taking the training loss's place there.
    assert [p["step"] for p in packed["train"]["loss_curve"]] == [p["step"] for p in padded["train"]["loss_curve"]]
    assert packed["train"]["eval_curve"][-1]["eval_context_gain"] == packed["eval"]["context_gain"]
    assert packed["train"]["eval_curve"][-1]["eval_mask_loss"] == packed["eval"]["by_treatment"]["mask"]["loss"]
    assert flat["train"]["eval_curve"] == []  # eval_steps 0: no pass during training
    assert packed["eval_set"]["texts"] == tiny_settings.eval.eval_rows
    assert "the eval figures are noise" in packed["warnings"][0]  # a tiny run scores a few hundred positions


def test_loss_curve_check_sees_an_eval_pass_that_drops_the_training_loss(tmp_path, tiny_settings, breakers):
    """Test of the loss-curve check above: with Trainer.log left to clear should_log (as before the fix), the
    training loss of every eval step is missing."""
    breakers.plant_fault(faults.eval_clears_should_log)
    packed = run(tiny_settings.replace(train_rows=400, eval_steps=2), tmp_path / "packed")
    assert [point["step"] for point in packed["train"]["loss_curve"]] == [1, 3]


def tensorboard_scalars(directory: Path) -> dict[str, list[int]]:
    """The steps of each scalar in the TensorBoard event files under `directory` (records: length, CRC, event, CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    steps: dict[str, list[int]] = {}
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


def test_tensorboard_gets_the_training_loss_and_the_held_out_figures(tmp_path: Path, tiny_settings) -> None:
    """--trainer_args report_to=tensorboard: Trainer's reporter logs the loss at every logging step and the periodic
    held-out pass at its steps."""
    pytest.importorskip("tensorboardX", reason="report_to=tensorboard needs tensorboardX: pip install '.[test]'")
    settings = tiny_settings.replace(train_rows=400, eval_steps=2, trainer_args=["report_to=tensorboard"])
    run(settings, tmp_path / "run")
    scalars = tensorboard_scalars(tmp_path / "run")
    assert scalars["train/loss"] == [1, 2, 3, 4], scalars
    assert scalars["eval/context_gain"] == scalars["eval/mask_loss"] == [2, 4], scalars


def test_tensorboard_check_fails_when_report_to_is_forced_off(tmp_path: Path, tiny_settings, breakers) -> None:
    """Test of the test above: with report_to held at none, as before --trainer_args, no event file is written."""
    breakers.plant_fault(faults.reports_nowhere)
    with pytest.raises(KeyError, match="train/loss"):
        test_tensorboard_gets_the_training_loss_and_the_held_out_figures(tmp_path, tiny_settings)


def test_trainer_args_the_library_refuses_are_refused_before_loading(tiny_settings, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "load_corpus", lambda settings: pytest.fail("the corpus was loaded first"))
    refused = "TrainingArguments refused these settings with --trainer_args torch_empty_cache_steps=0: `torch_empty"
    with pytest.raises(UsageError, match=refused):
        prepare(tiny_settings.replace(trainer_args=["torch_empty_cache_steps=0"]))
    with pytest.raises(UsageError, match=r"^--trainer_args takes KEY=VALUE items"):  # ours, not rewrapped
        prepare(tiny_settings.replace(trainer_args=["foo"]))
    absent = next(name for name in ("wandb", "mlflow", "comet_ml", "neptune") if not importlib.util.find_spec(name))
    for item, refused in [
        (f"report_to={absent}", "package is not installed"),
        ("report_to=tensorbord", "tensorbord is not supported"),
        ("dataloader_num_workers=-1", "0 or"),
    ]:
        with pytest.raises(UsageError, match=refused):  # Trainer's own refusals, which come only once it is built
            prepare(tiny_settings.replace(trainer_args=[item]))


def test_wwm_run_scores_token_and_whole_word_masking_on_the_same_texts(tmp_path: Path, tiny_settings) -> None:
    """A wwm run reports `eval` (per-token masking, comparable with token runs) and `eval_wwm`, each with context
    gain and treatments, on the same held-out texts."""
    results = run(tiny_settings.replace(mask="wwm", train_rows=400), tmp_path / "wwm")
    token_set, wwm_set = results["eval_set"], results["eval_wwm_set"]
    assert (token_set["mask"], wwm_set["mask"]) == ("token", "wwm")
    assert token_set["texts_sha256"] == wwm_set["texts_sha256"] and token_set["id"] != wwm_set["id"]
    for scores in (results["eval"], results["eval_wwm"]):
        assert {"context_gain", "context_gain_stderr", "by_treatment", "context_gain_by_length"} <= set(scores)
        assert sum(part["tokens"] for part in scores["by_treatment"].values()) == scores["selected_tokens"]


def test_held_out_texts_with_nothing_to_score_are_refused_before_training(text_file: Path) -> None:
    """Found before the run directory exists, not after training: the masks do not depend on the model."""
    settings = Settings().replace(dataset=str(text_file), heldout_fraction=0.2, eval_mlm_probability=1e-9)
    message = r"held-out texts have no position masked for scoring \(token masking .* --heldout_fraction\)"
    with pytest.raises(UsageError, match=message):
        prepare(settings)


def test_no_heldout_rows_says_what_to_change(text_file: Path) -> None:
    settings = Settings().replace(dataset=str(text_file), heldout_fraction=0.0)
    message = r"none of the corpus's \d+ distinct texts fell on the held-out side at --heldout_fraction 0.0"
    with pytest.raises(UsageError, match=message):
        prepare(settings)
