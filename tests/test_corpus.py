"""Corpus: builtin People's Daily parsed exactly, deterministic disjoint split, every loader, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from mlm_bench.config import Settings
from mlm_bench.data.corpus import builtin_dataset, builtin_path, export_corpus, load_corpus, parse_tagged_line
from mlm_bench.errors import UsageError


def test_tagged_line_loses_tags_keeps_words() -> None:
    assert parse_tagged_line("迈向/v  充满/v  希望/n  的/u  １２.３％/m") == ["迈向", "充满", "希望", "的", "１２.３％"]


def test_builtin_corpus_is_the_whole_tagged_file() -> None:
    lines = builtin_path().read_text(encoding="utf-8").splitlines()
    ds = builtin_dataset()
    assert len(ds) == len(lines) == 19_484
    assert ds.column_names == ["completion", "words", "source"]
    row = ds[0]
    assert row["completion"] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert "".join(row["words"]) == row["completion"]
    assert "/" not in "".join(ds["completion"][:500])


def test_split_is_disjoint_deterministic_and_about_five_percent(corpus) -> None:
    train, held = set(corpus.train["completion"]), set(corpus.heldout["completion"])
    assert not train & held
    again = load_corpus(Settings().replace(eval_rows=10_000))
    assert list(again.heldout["completion"][: len(corpus.heldout)]) == list(corpus.heldout["completion"])
    # 19,484 rows at p=0.05: mean 974, sd 30.4; +-6 sd bounds the count
    assert 792 <= len(again.heldout) <= 1156


def test_train_rows_takes_exactly_the_first_rows_like_the_recipe() -> None:
    c = load_corpus(Settings().replace(train_rows=100))
    assert list(c.train["completion"]) == list(builtin_dataset()["completion"][:100])
    assert not set(c.train["completion"]) & set(c.heldout["completion"])


def test_text_file_rows_become_the_text_column(text_file: Path) -> None:
    c = load_corpus(Settings().replace(dataset=str(text_file), heldout_fraction=0.2))
    assert len(c.train) + len(c.heldout) == 300
    assert c.train.column_names == ["completion"]


def test_jsonl_with_another_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"第{i}行文本。", "id": i}, ensure_ascii=False) for i in range(50)))
    c = load_corpus(Settings().replace(dataset=str(path), text_column="body", heldout_fraction=0.2))
    assert len(c.train) + len(c.heldout) == 50


def test_empty_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("第一行。\n\n   \n第二行。\n", encoding="utf-8")
    c = load_corpus(Settings().replace(dataset=str(path), heldout_fraction=0.0))
    assert (len(c.train), c.dropped_empty_rows) == (2, 2)


def test_export_runs_under_the_recipes_own_code(tmp_path: Path) -> None:
    export_corpus(tmp_path / "wiki")
    ds = datasets.Dataset.load_from_disk(str(tmp_path / "wiki"))
    ds = ds.select(range(10000))
    assert ds.num_rows == 10000
    assert all(isinstance(t, str) and t for t in ds[:8]["completion"])
    with pytest.raises(UsageError, match="not empty"):
        export_corpus(tmp_path / "wiki")


def test_save_to_disk_dir_loads(tmp_path: Path) -> None:
    datasets.Dataset.from_dict({"completion": ["甲乙丙。", "丁戊己。"] * 10}).save_to_disk(str(tmp_path / "d"))
    assert len(load_corpus(Settings().replace(dataset=str(tmp_path / "d"), heldout_fraction=0.0)).train) == 20


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.txt", "does not exist"),
        (lambda d: _write(d / "e.txt", "\n \n"), "no non-empty text"),
        (lambda d: _write(d / "x.csv", "a,b\n"), "don't know how to read"),
        (lambda d: _write(d / "nul.txt", "今天心情很好\n你好\0世界\n"), r"NUL byte on line 2 \(byte 6\)"),
        (
            lambda d: _write(d / "one.txt", "今天心情很好\n" * 5),
            "1 distinct non-empty text: .* give at least 60 distinct rows",
        ),
    ],
)
def test_bad_datasets_are_refused(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_corpus(Settings().replace(dataset=str(make(tmp_path))))


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "一二三。"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"no column 'completion'; its columns are \['text'\].*--text_column"):
        load_corpus(Settings().replace(dataset=str(path)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_train_rows_says_which_way_to_move_the_fraction(tmp_path: Path) -> None:
    path = _write(tmp_path / "two.txt", "今天心情很好\n你好世界\n")  # crc32 / 2**32: 0.064 and 0.685
    message = r"all its 2 distinct texts fell on the held-out side at --heldout_fraction 0.9: lower it"
    with pytest.raises(UsageError, match=message):
        load_corpus(Settings().replace(dataset=str(path), heldout_fraction=0.9))


def test_train_rows_taking_every_row_says_to_lower_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "two.txt", "今天心情很好\n你好世界\n")
    with pytest.raises(UsageError, match=r"--train_rows 5 takes all 2 non-empty rows .* lower --train_rows"):
        load_corpus(Settings().replace(dataset=str(path), train_rows=5))
