"""Same settings and seed give the same run, results.json says how to repeat it, parallel runs don't mix."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import DataCollatorForLanguageModeling

from mlm_bench import cli
from mlm_bench.config import Settings
from mlm_bench.data.collate import BatchSeededCollator, build_collator
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.runs import run as run_module
from mlm_bench.runs.results import RESULTS_FILE, write_json_atomic
from mlm_bench.runs.run import run
from mlm_bench.testing.helpers import tiny_cli_args

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, corpus, tiny_settings: Settings) -> list[dict]:
    """The same tiny run twice, each into its own directory."""
    root = tmp_path_factory.mktemp("repro")
    path = root / "corpus.txt"
    path.write_text("\n".join(corpus.train[corpus.text_column][:300]), encoding="utf-8")
    settings = tiny_settings.replace(dataset=str(path), heldout_fraction=0.2)
    return [run(settings, root / f"run{i}") for i in range(2)]


def test_same_seed_same_run(two_runs):
    """Bit-identical on CPU: the loss at every step, every eval metric, every fill-mask score."""
    first, second = two_runs
    assert [e["loss"] for e in first["train"]["loss_curve"]] == [e["loss"] for e in second["train"]["loss_curve"]]
    assert first["train"]["train_loss"] == second["train"]["train_loss"]
    assert first["eval"] == second["eval"]
    assert first["fill_mask"] == second["fill_mask"]


def test_results_record_what_a_rerun_needs(two_runs, tiny_settings):
    results = two_runs[0]
    assert Settings.from_dict(results["settings"]).replace(dataset=tiny_settings.data.dataset) == tiny_settings.replace(
        heldout_fraction=0.2
    )
    assert results["seed"] == results["settings"]["training"]["seed"]
    assert {"python", "torch", "transformers", "datasets", "tokenizers"} <= set(results["versions"])
    assert results["command"]
    assert len(results["corpus"]["fingerprint"]) == 16
    assert results["device"]["type"] == "cpu"


def test_corpus_tokenizer_ids_do_not_depend_on_the_process(corpus):
    """The WordPiece trainer numbers equally frequent characters in hash-map order; ours are sorted."""
    texts = corpus.train[corpus.text_column][:300]
    vocabs = [build_tokenizer(texts, model_max_length=64).get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]


def test_batch_masks_depend_only_on_seed_and_batch_number(tokenizer, heldout_rows, tiny_settings):
    """What makes a resumed run exact: batch n's masks ignore, and leave alone, the global RNG."""
    features = [dict(heldout_rows[i]) for i in range(4)]
    collator = build_collator(tokenizer, tiny_settings)
    assert isinstance(collator, DataCollatorForLanguageModeling)
    straight = BatchSeededCollator(collator, seed=7)
    masks = [straight(features)["labels"] for _ in range(3)]
    torch.manual_seed(0)
    resumed = BatchSeededCollator(collator, seed=7, start=2)
    state = torch.get_rng_state()
    assert torch.equal(resumed(features)["labels"], masks[2])
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(masks[0], masks[1])


def claim_together(claim: Callable[..., Any], runs: list[str]) -> Callable[..., Any]:
    """`claim`, then wait until every run directory in `runs` is claimed: the runs then train at the same time."""

    def claim_then_wait(path: Path, *args: Any, **kwargs: Any) -> Any:
        held = claim(path, *args, **kwargs)
        Path(f"{path}.ready").touch()
        deadline = time.monotonic() + 120
        while not all(Path(f"{run}.ready").exists() for run in runs):
            if time.monotonic() > deadline:
                raise TimeoutError("the other run never started")
            time.sleep(0.02)
        return held

    return claim_then_wait


# The real CLI in a second process, its claim synchronised with the test's own run.
SECOND_RUN = """
import sys
sys.path.insert(0, "tests")
from test_reproducibility import claim_together
from mlm_bench import cli
from mlm_bench.runs import run
run.claim = claim_together(run.claim, sys.argv[1].split(","))
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_two_runs_at_once_do_not_interfere(tmp_path, corpus, monkeypatch):
    """Two processes on one save_to_disk corpus, into two directories, at once: both get the lone run's result."""
    data = tmp_path / "saved"
    corpus.train.select(range(300)).save_to_disk(str(data))
    outs = [tmp_path / "a", tmp_path / "b"]
    runs = ",".join(map(str, outs))
    argv = ["run", *tiny_cli_args(dataset=data, heldout_fraction=0.2), "--output-dir"]
    second = subprocess.Popen(
        [sys.executable, "-c", SECOND_RUN, runs, *argv, str(outs[1])],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    monkeypatch.setattr(run_module, "claim", claim_together(run_module.claim, runs.split(",")))
    assert cli.main([*argv, str(outs[0])]) == 0
    _, errors = second.communicate(timeout=300)  # reads stderr to the end and closes it
    assert second.returncode == 0, errors[-2000:]
    first, other = (json.loads((out / RESULTS_FILE).read_text(encoding="utf-8")) for out in outs)
    assert first["train"]["loss_curve"] == other["train"]["loss_curve"]
    assert first["eval"] == other["eval"]
    listings = [sorted(p.relative_to(out) for p in out.rglob("*")) for out in outs]
    assert listings[0] == listings[1]
    assert not any(p.name.startswith(".staging") or p.suffix == ".tmp" for p in listings[0])


def test_results_are_written_whole_or_not_at_all(tmp_path):
    """A write that fails midway leaves the previous results.json intact and no temp file behind."""
    path = tmp_path / RESULTS_FILE
    write_json_atomic(path, {"loss": 1.0})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"loss": 2.0, "model": object()})  # json.dump fails after writing "loss"
    assert json.loads(path.read_text(encoding="utf-8")) == {"loss": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == [RESULTS_FILE]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_results_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    """mkstemp's 0600 would hide a run's results from the colleagues it is shared with; a private umask keeps them
    private."""
    before = os.umask(umask)
    try:
        write_json_atomic(tmp_path / RESULTS_FILE, {"loss": 1.0})
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / RESULTS_FILE).stat().st_mode) == mode


def test_results_json_is_strict_json(tmp_path):
    """NaN (one text gives no standard error) is written as null: strict JSON readers refuse NaN."""
    write_json_atomic(tmp_path / RESULTS_FILE, {"eval": {"context_gain_stderr": math.nan, "loss": [1.0, -math.inf]}})

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    text = (tmp_path / RESULTS_FILE).read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=refuse) == {"eval": {"context_gain_stderr": None, "loss": [1.0, None]}}
