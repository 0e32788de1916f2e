"""The pytest fixtures of the builtin corpus: tiny settings, the corpus, its tokenizer and encoded rows. Each
imports what it needs when first used (the plugin loads in every pytest run of the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mlm_bench.config import Settings
    from mlm_bench.data.corpus import Corpus


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The environments the slow tests build (about 1.2 GB each), shared within a session and removed with its
    temporary folder, never left in the user's cache (whose keys hold the checkout's path, so a clone never reuses
    them)."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def tiny_settings() -> Settings:
    """tiny-zh shrunk to a 1-layer, 32-wide model and 4 steps."""
    from mlm_bench.config import preset
    from mlm_bench.testing.helpers import TINY

    return preset("tiny-zh", **TINY)


@pytest.fixture(scope="session")
def corpus(tiny_settings: Settings) -> Corpus:
    """The builtin corpus, split as every run splits it, its held-out side cut to tiny_settings' 40 texts (the
    benchmarks' own fixture keeps 1,000)."""
    from mlm_bench.data.corpus import load_corpus

    return load_corpus(tiny_settings)


@pytest.fixture(scope="session")
def tokenizer(corpus: Corpus):
    """The char-level tokenizer built from the builtin corpus' train rows."""
    from mlm_bench.data.tokenizer import build_tokenizer

    return build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=64)


@pytest.fixture(scope="session")
def heldout_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Held-out rows encoded (packed, 64 tokens) as training encodes them."""
    from mlm_bench.data.encode import encode

    return encode(corpus.heldout, corpus.text_column, tokenizer, tiny_settings)


@pytest.fixture(scope="session")
def unpacked_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Up to 200 held-out rows encoded the recipe's way: truncated, unpacked, variable length."""
    from mlm_bench.data.encode import encode

    rows = corpus.heldout.select(range(min(200, len(corpus.heldout))))
    return encode(rows, corpus.text_column, tokenizer, tiny_settings.replace(packing=False))


@pytest.fixture(scope="session")
def wwm_unpacked_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Up to 200 held-out rows encoded unpacked, with word ids from the corpus' gold segmentation."""
    from mlm_bench.data.encode import encode

    rows = corpus.heldout.select(range(min(200, len(corpus.heldout))))
    return encode(rows, corpus.text_column, tokenizer, tiny_settings.replace(packing=False, mask="wwm"))


@pytest.fixture(scope="session")
def wwm_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Held-out rows packed as training packs them, with word ids from the corpus' gold segmentation."""
    from mlm_bench.data.encode import encode

    return encode(corpus.heldout, corpus.text_column, tokenizer, tiny_settings.replace(mask="wwm"))


@pytest.fixture
def text_file(tmp_path: Path, corpus: Corpus) -> Path:
    """300 builtin rows as a plain-text file, one row per line."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus.train[corpus.text_column][:300]), encoding="utf-8")
    return path


@pytest.fixture
def run_argv(text_file: Path):
    """Builds `mlm-bench run` arguments: the tiny model on `text_file`, into a given directory."""
    from mlm_bench.testing.helpers import tiny_cli_args

    def argv(output_dir: Path, *extra: str, **overrides: object) -> list[str]:
        # 300 rows hold out ~15 at the default 5%: too few to pack one 64-token row.
        flags = tiny_cli_args(**{"dataset": text_file, "heldout_fraction": 0.2, **overrides})
        return ["run", *flags, "--output-dir", str(output_dir), *extra]

    return argv


@pytest.fixture(scope="session")
def texts_in():
    """Splits a batch, padded or flattened, into its texts (see helpers.split_texts)."""
    from mlm_bench.testing.helpers import split_texts

    return split_texts
