"""Bad input is refused with one line naming problem and fix, exit 2, nothing written; odd text is handled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch

from mlm_bench import cli
from mlm_bench.cli import exits
from mlm_bench.config import Settings
from mlm_bench.data.corpus import Corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.tokenizer import build_tokenizer, save_tokenizer, unk_rate
from mlm_bench.modeling.model import load_model
from mlm_bench.runs.checkpoints import checkpoints, is_complete
from mlm_bench.runs.run import run
from mlm_bench.testing import faults
from mlm_bench.testing.helpers import error_line, tiny_bert

REPO = Path(__file__).resolve().parents[1]


def _save_model(directory: Path, tokenizer, vocab_size: int, positions: int = 512, pickle: bool = False) -> Path:
    model = tiny_bert(vocab_size, max_position_embeddings=positions)
    if pickle:
        # What an old checkpoint or an untrusted upload looks like: config plus a pickled state dict.
        directory.mkdir(parents=True)
        model.config.save_pretrained(str(directory))
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    else:
        model.save_pretrained(str(directory))
    save_tokenizer(tokenizer, directory)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> dict[str, Path]:
    """Saved tiny models that are each wrong in one way, beside the corpus tokenizer."""
    root = tmp_path_factory.mktemp("models")
    size = len(tokenizer)
    return {
        "short": _save_model(root / "short", tokenizer, size, positions=64),
        "pickle": _save_model(root / "pickle", tokenizer, size, pickle=True),
        "small-vocab": _save_model(root / "small-vocab", tokenizer, vocab_size=100),
    }


def _truncate_arrow(directory: Path) -> None:
    arrow = next(directory.glob("*.arrow"))
    os.truncate(arrow, arrow.stat().st_size // 2)


def _bad_dataset(tmp_path: Path, corpus: Corpus, kind: str) -> Path:
    if kind in {"txt", "jsonl"}:
        path = tmp_path / f"gbk.{kind}"
        good = "今天天气很好\n" if kind == "txt" else '{"completion": "今天天气很好"}\n'
        path.write_bytes(good.encode("utf-8") * 50 + "心情很好\n".encode("gbk"))
        return path
    path = tmp_path / "saved"
    corpus.train.select(range(300)).save_to_disk(str(path))
    if kind == "truncated-arrow":
        _truncate_arrow(path)
    elif kind == "missing-arrow":
        next(path.glob("*.arrow")).unlink()
    else:
        (path / "state.json").write_text('{"_data_files": [', encoding="utf-8")
    return path


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == exits.EXIT_USAGE, err
    return error_line(err, "mlm-bench: error: ")


DATASET_CASES = {
    "truncated-arrow": "is not a readable datasets save_to_disk directory (OSError",
    "missing-arrow": "is not a readable datasets save_to_disk directory (FileNotFoundError",
    "corrupt-state": "is not a readable datasets save_to_disk directory (JSONDecodeError",
    "txt": "is not UTF-8 text (line 51, byte 0: invalid continuation byte): re-encode it",
    "jsonl": "is not UTF-8 text (line 51, byte 0: invalid continuation byte): re-encode it",
}


@pytest.mark.parametrize("kind", DATASET_CASES)
def test_damaged_or_non_utf8_dataset_is_refused(kind, tmp_path, corpus, run_argv, capsys):
    dataset = _bad_dataset(tmp_path, corpus, kind)
    out = tmp_path / "run"
    message = _refused(run_argv(out, dataset=dataset), capsys)
    assert DATASET_CASES[kind] in message
    assert not out.exists()


SETTINGS_CASES = {
    "batch-zero": ({"batch_size": 0}, "batch_size must be in [1, inf), got 0: pass e.g. --batch_size 32"),
    "batch-negative": ({"batch_size": -8}, "batch_size must be in [1, inf), got -8"),
    "mlm-zero": ({"mlm_probability": 0.0}, "mlm_probability must be in (0, 1), got 0.0: pass e.g."),
    "mlm-one": ({"mlm_probability": 1.0}, "mlm_probability must be in (0, 1), got 1.0"),
    "mlm-negative": ({"mlm_probability": -0.1}, "mlm_probability must be in (0, 1), got -0.1"),
    "mlm-above-one": ({"mlm_probability": 1.5}, "mlm_probability must be in (0, 1), got 1.5"),
    "save-steps-negative": ({"save_steps": -1}, "save_steps must be in [0, inf), got -1"),
}


@pytest.mark.parametrize("case", SETTINGS_CASES)
def test_out_of_range_setting_is_refused(case, tmp_path, run_argv, capsys):
    overrides, expected = SETTINGS_CASES[case]
    out = tmp_path / "run"
    assert expected in _refused(run_argv(out, **overrides), capsys)
    assert not out.exists()


MODEL_CASES = {
    "short": (
        {"max_length": 128},
        "max_length 128 exceeds the model's 64 position embeddings: pass --max_length 64 or less",
    ),
    "pickle": ({}, "has weights only as pickle (pytorch_model.bin), and loading a pickle can run any code"),
    "small-vocab": ({}, "but the model embeds only 100: use the model's own tokenizer, or build the model"),
}


@pytest.mark.parametrize("name", MODEL_CASES)
def test_incompatible_model_is_refused(name, models, tmp_path, run_argv, capsys):
    overrides, expected = MODEL_CASES[name]
    out = tmp_path / "run"
    assert expected in _refused(run_argv(out, model_name_or_path=models[name], **overrides), capsys)
    assert not out.exists()


def test_pickle_weights_load_only_when_allowed(models):
    """The refusal is a choice, not a loader failure: the same directory loads once the user opts in."""
    model = load_model(str(models["pickle"]), allow_pickle=True)
    assert model.config.hidden_size == 32


def test_refusal_from_the_real_command(tmp_path, text_file):
    """The installed entry point, not just main(): exit status 2 and one line on stderr."""
    out = tmp_path / "run"
    command = ["run", "--batch_size", "0", "--dataset", str(text_file), "--output-dir", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "mlm_bench", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "mlm-bench: error: batch_size must be in [1, inf), got 0: pass e.g. --batch_size 32"
    ]
    assert not out.exists()


@pytest.mark.parametrize(("fail_at", "kept"), [(1, []), (2, ["checkpoint-1"])])
def test_disk_full_while_saving(fail_at, kept, tmp_path, run_argv, capsys, monkeypatch):
    """A full disk mid-save: exit 2 naming the fix; complete checkpoints stay, nothing half-written does."""
    faults.disk_full_at.apply(fail_at, patch=monkeypatch.setattr)
    out = tmp_path / "run"
    message = _refused(run_argv(out, max_steps=2, save_steps=1), capsys)
    assert f"no space left on the device while writing to {out}: free some space or pass an --output-dir" in message
    if not kept:
        assert "nothing was kept" in message
        assert not out.exists()
        return
    assert f"the last complete checkpoint ({kept[-1]}) is kept in {out}, continue with --resume" in message
    assert [p.name for p in checkpoints(out)] == kept
    assert all(is_complete(p) for p in checkpoints(out))
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoints", "run.json"]


def test_disk_full_without_an_errno_is_still_a_full_disk(tmp_path, run_argv, capsys, monkeypatch):
    """torch's zip writer reports a full disk as a RuntimeError with no errno: the free space tells."""
    faults.zip_writer_fails.apply(patch=monkeypatch.setattr)
    faults.no_free_space.apply(patch=monkeypatch.setattr)
    out = tmp_path / "run"
    message = _refused(run_argv(out, max_steps=2, save_steps=1), capsys)
    assert f"no space left on the device while writing to {out}" in message and "nothing was kept" in message
    assert not out.exists()


# Rows a real corpus has: far too long, blank, punctuation only, emoji, Latin and mixed scripts.
LONG_ROW = "人民日报社论指出改革开放是决定当代中国命运的关键一招" * 20
BLANK_ROWS = ["   ", "\t", "\u3000\u3000"]
PUNCTUATION_ROWS = ["……", "！？。", "——", "“”"]
MIXED_ROWS = ["今天心情很好😀", "Hello world 你好世界", "café naïve 北京", "🚀🚀 launch 发射 Москва"]


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory, corpus: Corpus, tiny_settings: Settings) -> dict:
    """One unpacked run over a corpus mixing ordinary rows with every kind of odd row."""
    root = tmp_path_factory.mktemp("odd")
    ordinary = [text[:40] for text in corpus.train[corpus.text_column][:200]]  # all shorter than 64 tokens
    rows = [*ordinary, *[LONG_ROW] * 5, *BLANK_ROWS, *PUNCTUATION_ROWS, *MIXED_ROWS * 3]
    path = root / "odd.txt"
    path.write_text("\n".join(rows), encoding="utf-8")
    settings = tiny_settings.replace(dataset=str(path), packing=False, heldout_fraction=0.2, eval_rows=1000)
    return run(settings, root / "run")


def test_long_rows_are_truncated_and_counted(odd_run):
    """Each 540-character row is cut to max_length (training) or eval_max_length (held-out) and counted; the
    ordinary rows (< 64 tokens) are not."""
    assert odd_run["corpus"]["truncated_rows"] + odd_run["corpus"]["heldout_truncated_texts"] == 5


def test_blank_rows_dropped_punctuation_rows_kept(odd_run):
    """Rule: rows empty after strip() are dropped and counted; punctuation-only rows are kept and counted."""
    stats = odd_run["corpus"]
    assert stats["dropped_empty_rows"] == len(BLANK_ROWS)
    assert stats["punctuation_only_rows"] == len(PUNCTUATION_ROWS)
    assert stats["train_rows"] + stats["heldout_rows"] == 200 + 5 + len(PUNCTUATION_ROWS) + 3 * len(MIXED_ROWS)


def test_mixed_script_unk_rate_is_measured(odd_run):
    """Emoji, accented Latin and Cyrillic rows train and evaluate; the held-out UNK rate is recorded in range."""
    assert 0.0 <= odd_run["corpus"]["heldout_unk_rate"] < 0.5
    assert odd_run["eval"]["selected_tokens"] > 0


def test_unk_rate_counts_unseen_characters(tiny_settings):
    """unk_rate is the share of non-special tokens that are [UNK]: here the one unseen emoji of seven tokens."""
    tokenizer = build_tokenizer(["今天心情很好😀", "café 北京"], model_max_length=64)
    heldout = datasets.Dataset.from_dict({"text": ["今天心情很好🚀"]})
    rows = encode(heldout, "text", tokenizer, tiny_settings.replace(packing=False))
    assert tokenizer.tokenize("今天心情很好🚀")[-1] == "[UNK]"
    assert unk_rate(rows, tokenizer) == pytest.approx(1 / 7)
