"""The `mlm-bench` command end to end: a real run in a subprocess, and every bad input exits 2 leaving nothing."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import datasets
import pytest
import transformers
from transformers import HfArgumentParser, pipeline

import mlm_bench
from mlm_bench.cli import main
from mlm_bench.cli import run as cli_run
from mlm_bench.cli.parsing import SettingsParser, parse_settings
from mlm_bench.config import GROUPS, PRESETS, field_names, interval, preset
from mlm_bench.data.tokenizer import build_tokenizer, save_tokenizer
from mlm_bench.errors import UsageError

TINY_ARGS = [
    "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
    "--max_length", "64", "--eval_max_length", "64", "--batch_size", "8", "--max_steps", "3", "--logging_steps", "1",
    "--warmup_steps", "0", "--eval_rows", "40", "--cloze_probes", "1", "--device", "cpu",
]  # fmt: skip
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _cli(*args: str, env: dict[str, str] = OFFLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlm_bench", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_run_writes_a_run_that_another_process_can_fill_masks_with(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "run"
    done = _cli("run", "--dataset", str(text_file), "--heldout_fraction", "0.2", *TINY_ARGS, "--output-dir", str(out))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[lines.index(next(line for line in lines if line.startswith("steps "))) - 1 :]
    assert summary[0].startswith(("context gain", "NO CONTEXT LEARNED"))  # the summary leads with context gain
    for expected in ("at [MASK]", "at kept token", "held-out MLM loss", "ln V", "fill-mask 今天[MASK]情很好"):
        assert expected in done.stdout
    assert f"results: {out / 'results.json'}" in done.stdout
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {"settings", "versions", "device", "vocab_size", "train", "eval", "fill_mask"} <= set(results)
    assert {"samples_per_second", "nonpad_tokens_per_second", "pad_fraction", "loss_curve"} <= set(results["train"])
    assert {"loss", "accuracy", "perplexity", "context_gain", "by_treatment"} <= set(results["eval"])
    assert results["schema_version"] == 3 and results["eval_set"]["texts"] > 0
    assert results["train"]["steps"] == 3 and len(results["train"]["loss_curve"]) == 3
    assert results["settings"]["data"]["dataset"] == str(text_file)
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    # The run was another process: what loads here is only what it saved.
    top5 = pipeline("fill-mask", model=str(out), device="cpu")("今天[MASK]情很好")
    assert [p["token_str"] for p in top5] == [p["token_str"] for p in results["fill_mask"][0]["predictions"]]


def test_hub_name_while_offline_names_the_offline_fix(tmp_path: Path) -> None:
    empty_caches = {"HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    done = _cli("run", "--preset", "seed", "--output-dir", str(tmp_path / "run"), env={**OFFLINE, **empty_caches})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlm-bench: error: HF_HUB_OFFLINE is set and these are not in the local cache: ")
    assert "--dataset 'pleisto/wikipedia-cn-20230720-filtered'" in line
    assert "--model_name_or_path 'hfl/chinese-macbert-base'" in line
    assert not (tmp_path / "run").exists()


def _no_mask_tokenizer(tmp_path: Path) -> Path:
    tokenizer = build_tokenizer(["今天心情很好"] * 3, model_max_length=64)
    tokenizer.mask_token = None
    save_tokenizer(tokenizer, tmp_path / "bloom-like")
    return tmp_path / "bloom-like"


def _jsonl(tmp_path: Path) -> Path:
    (tmp_path / "rows.jsonl").write_text('{"text": "一二三。", "id": 1}\n', encoding="utf-8")
    return tmp_path / "rows.jsonl"


def _blank(tmp_path: Path) -> Path:
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    return tmp_path / "blank.txt"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda d: ["--dataset", str(d / "nope.txt")], "does not exist"),
        (lambda d: ["--dataset", str(_jsonl(d))], "its columns are ['text', 'id']: pass --text_column"),
        (lambda d: ["--dataset", str(_blank(d))], "no non-empty text"),
        (lambda d: ["--tokenizer_name_or_path", str(_no_mask_tokenizer(d))], "has no mask token"),
        (lambda d: ["--preset", "bert-huge"], "unknown preset 'bert-huge'"),
        (lambda d: ["--bogus_field", "1"], "--bogus_field"),
        (lambda d: ["--mlm_probability", "1.5"], "mlm_probability must be in (0, 1)"),
        (lambda d: ["--batch_size", "0"], "batch_size must be in [1, inf)"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message: str
) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY_ARGS, *args(tmp_path), "--output-dir", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # progress bars may precede it on stderr
    assert last.startswith("mlm-bench: error: ") and message in last
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--max-step", "10"], "unknown option --max-step: did you mean --max_steps?"),
        (["run", "--batch", "8"], "unknown option --batch: did you mean --batch_size?"),
        (["run", "--lr", "1e-3"], "unknown option --lr: did you mean --learning_rate?"),
        (["run", "--output_dir", "x"], "unknown option --output_dir: did you mean --output-dir?"),
        (["run", "--max_steps", "ten"], "invalid int value: 'ten'"),
        (["run", "--max_steps", "10", "extra"], "unexpected argument 'extra'"),
        (["gate", "a.json", "b.json", "--treshold", "0.1"], "unknown option --treshold: did you mean --threshold?"),
        (["fingerprint", "--dirr", "x"], "unknown option --dirr: did you mean --dir?"),
        (["gaet"], "unknown command 'gaet': choose one of run, export-corpus, fingerprint, gate"),
    ],
)
def test_usage_errors_are_one_line_naming_the_fix(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm-bench: error: ") and message in lines[0], lines


def test_abbreviation_check_fails_when_argparse_guesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: with argparse's default prefix matching, --max-step silently sets max_steps."""
    # Not in the fault registry: the testing layer does not reach up into the CLI.
    monkeypatch.setattr(SettingsParser, "__init__", HfArgumentParser.__init__)
    settings, _ = parse_settings(["--max-step", "10"])
    assert settings.training.max_steps == 10


def test_resume_command_continues_the_same_run() -> None:
    assert cli_run.resume_command(["--max_steps", "3", "--force"], Path("runs/x")) == (
        "mlm-bench run --max_steps 3 --output-dir runs/x --resume"
    )
    assert cli_run.resume_command(["--output-dir=a b", "--resume"], Path("a b")) == (
        "mlm-bench run '--output-dir=a b' --resume"
    )


def test_existing_run_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text("{}", encoding="utf-8")
    assert main(["run", *TINY_ARGS, "--output-dir", str(tmp_path / "run")]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (tmp_path / "run" / "results.json").read_text(encoding="utf-8") == "{}"


def test_help_lists_commands_and_fields(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse would break "seed-shape" at its hyphen
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--mlm_probability" in help_text
    assert all(name in help_text for name in PRESETS)
    assert "--no_packing, --no-packing Set packing false" in help_text


def test_run_help_gives_each_numeric_fields_interval(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(the recipe's 0.15). In (0, 1)." in out and "micro-batch). In [1, inf)." in out


def test_python_dash_m_mlm_bench_is_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "mlm_bench", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: mlm-bench COMMAND"), done.stderr


def test_version_is_the_projects() -> None:
    """pyproject.toml's version once installed; 0+unknown for a source tree on sys.path (the GPU check's)."""
    try:
        importlib.metadata.distribution("mlm-bench")
    except importlib.metadata.PackageNotFoundError:
        assert mlm_bench.__version__ == "0+unknown"
        return
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert mlm_bench.__version__ == declared


def test_quiet_keeps_the_report_and_drops_the_progress_lines(run_argv, tmp_path, capsys) -> None:
    assert main(run_argv(tmp_path / "loud")) == 0
    loud = capsys.readouterr().out
    assert main(run_argv(tmp_path / "quiet", "-q")) == 0
    quiet = capsys.readouterr().out
    assert "corpus: " in loud and "corpus: " not in quiet
    assert f"results: {tmp_path / 'quiet' / 'results.json'}" in quiet


@pytest.mark.parametrize(
    ("level", "library", "bars"),
    [(logging.WARNING, logging.ERROR, False), (logging.INFO, None, True), (logging.DEBUG, logging.INFO, True)],
    ids=["-q", "default", "-v"],
)
def test_loudness_reaches_the_libraries_and_is_undone_after(level: int, library: int | None, bars: bool) -> None:
    """-q silences transformers and datasets' bars, -v raises transformers to info; a later run in the same process
    starts from what was there before."""
    before = (transformers.logging.get_verbosity(), datasets.is_progress_bar_enabled())
    with cli_run._logging_at(level):
        assert logging.getLogger("mlm_bench").level == level
        assert transformers.logging.get_verbosity() == (library or before[0])
        assert datasets.is_progress_bar_enabled() == (bars and before[1])
    assert (transformers.logging.get_verbosity(), datasets.is_progress_bar_enabled()) == before


def test_config_file_sits_between_its_preset_and_the_flags(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("preset: fast\nmax_steps: 7\nlearning_rate: 0.01\n", encoding="utf-8")
    settings, _ = parse_settings(["--config", str(tmp_path / "run.yaml"), "--max_steps", "9"])
    training = settings.training
    assert (settings.preset, settings.speed.flatten, training.learning_rate, training.max_steps) == (
        "fast",
        True,
        0.01,
        9,
    )


@pytest.mark.parametrize("layout", ["grouped", "flat"])
def test_a_runs_own_run_json_repeats_its_settings(tmp_path: Path, layout: str) -> None:
    """Both layouts load: settings in groups (schema 3) and the flat ones of run files written before (schema 2)."""
    started = preset("fast", max_steps=5, trainer_args=["save_total_limit=2"])
    record = started.to_dict() if layout == "grouped" else started.flat()
    (tmp_path / "run.json").write_text(json.dumps({"settings": record}), encoding="utf-8")
    assert parse_settings(["--config", str(tmp_path / "run.json")])[0] == started


def test_run_help_gives_each_interval_from_its_field() -> None:
    """The interval declared next to a field is the one --help shows (and the one Settings enforces)."""
    helps = {action.dest: action.help for action in SettingsParser(list(GROUPS.values()))._actions}
    bounded = [name for name in field_names() if interval(name)]
    assert len(bounded) > 20 and all(helps[name].endswith(f" In {interval(name)}.") for name in bounded)
    assert not any(" In " in helps[name] for name in field_names() if not interval(name) and name != "preset")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"max_step": 7}', "unknown field 'max_step': did you mean 'max_steps'"),
        ('{"max_steps": "many"}', "--max_steps/--max-steps: invalid int value: 'many'"),
        ("[1, 2]", "holds no mapping of fields"),
        ("{not json", "cannot read settings file"),
        ("max_steps: [1", "cannot read settings file"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / ("bad.yaml" if content.startswith("max_steps:") else "bad.json")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(message)) as refused:
        parse_settings(["--config", str(path)])
    assert "\n" not in str(refused.value)
