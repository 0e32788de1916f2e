"""Shared fixtures: the builtin corpus, a tokenizer built from it, tiny settings; hypothesis profiles."""

from __future__ import annotations

import gc
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from breakers import breakers, pytest_runtest_makereport  # noqa: F401  (the breaker plugin: fixture, hook)
from hypothesis import HealthCheck, settings
from transformers import BertConfig, BertForMaskedLM

from mlm_bench.compat import BERT_HAS_FLEX_ATTENTION
from mlm_bench.config import Settings, preset
from mlm_bench.contract import defects
from mlm_bench.data.corpus import Corpus, load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.runs.results import versions

# torch calls have no stable per-example time, so no deadline; `ci` is derandomized so CI is repeatable.
settings.register_profile(
    "ci", max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spinning threads
# made a 4-step run ~10x slower (12 s instead of 1.2 s wall). Subprocesses inherit OMP_NUM_THREADS, so a
# run in a subprocess computes in the same order as one in the test process.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

# A model small enough that a few training steps take well under a second on 2 CPU cores.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_length": 64,
    "eval_max_length": 64,
    # The recipe's masking and BERT's tied embedding, as the stored fingerprints were made with (fingerprint.SETTINGS).
    "mlm_probability": 0.15,
    "tie_word_embeddings": True,
    "batch_size": 8,
    "max_steps": 4,
    "warmup_steps": 0,
    "logging_steps": 1,
    "eval_rows": 40,
    "cloze_probes": 1,
    "device": "cpu",
}


def known_defect(key: str) -> pytest.MarkDecorator:
    """A strict xfail where the installed versions have the registered upstream defect `key` (and a plain test
    elsewhere): the suite stays green on a known-bad version and fails once the defect is fixed upstream."""
    defect = defects.lookup(key)
    reason = f"known upstream defect {key}: {defect.breaks} ({defect.upstream or 'no upstream issue'})"
    return pytest.mark.xfail(defect.affects(versions()), reason=reason, strict=True)


@pytest.fixture(autouse=True)
def _environment_restored():
    """TrainingArguments(torch_compile=True) writes ACCELERATE_DYNAMO_* into os.environ (4.57 and 5.x), after which
    every Trainer in the process compiles its model: each test leaves the environment as it found it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _earlier_objects_frozen():
    """accelerate runs a full gc.collect whenever a Trainer starts training; in a worker holding every earlier
    test's objects that took ~0.25 s, 71 times a suite (18 s of CPU, measured). Frozen before each test, the
    collector scans only what the test itself made."""
    gc.freeze()
    yield


@pytest.fixture(autouse=True)
def _flex_attention_uncompiled(monkeypatch) -> None:
    """FlexAttention's padding mask and kernel as torch runs them uncompiled: transformers compiles both on first
    use, which on CPU is a C++ build of ~14 s whenever inductor's cache is cold (every fresh CI venv). The masks
    are the same; the compiled kernels run in the GPU check (scripts/gpu_check.sh)."""
    if not BERT_HAS_FLEX_ATTENTION:
        return
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from transformers import masking_utils
    from transformers.integrations import flex_attention as integration

    def uncompiled_mask(*args: Any, _compile: bool = False, **kwargs: Any) -> Any:
        return create_block_mask(*args, **kwargs)

    # Internals of transformers: a version without them only makes these tests slower, never fail.
    if hasattr(masking_utils, "create_block_mask"):
        monkeypatch.setattr(masking_utils, "create_block_mask", uncompiled_mask)
    if hasattr(integration, "WrappedFlexAttention"):
        monkeypatch.setattr(integration.WrappedFlexAttention, "__call__", lambda self: flex_attention)


@pytest.fixture(scope="session")
def tiny_settings() -> Settings:
    """tiny-zh shrunk to a 1-layer, 32-wide model and 4 steps."""
    return preset("tiny-zh", **TINY)


@pytest.fixture(scope="session")
def corpus(tiny_settings: Settings) -> Corpus:
    """The builtin corpus, split as every run splits it, its held-out side cut to tiny_settings' 40 texts (the
    benchmarks' own fixture keeps 1,000)."""
    return load_corpus(tiny_settings)


@pytest.fixture(scope="session")
def tokenizer(corpus: Corpus):
    """The char-level tokenizer built from the builtin corpus' train rows."""
    return build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=64)


@pytest.fixture(scope="session")
def heldout_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Held-out rows encoded (packed, 64 tokens) as training encodes them."""
    return encode(corpus.heldout, corpus.text_column, tokenizer, tiny_settings)


@pytest.fixture(scope="session")
def unpacked_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Up to 200 held-out rows encoded the recipe's way: truncated, unpacked, variable length."""
    rows = corpus.heldout.select(range(min(200, len(corpus.heldout))))
    return encode(rows, corpus.text_column, tokenizer, tiny_settings.replace(packing=False))


@pytest.fixture(scope="session")
def wwm_unpacked_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Up to 200 held-out rows encoded unpacked, with word ids from the corpus' gold segmentation."""
    rows = corpus.heldout.select(range(min(200, len(corpus.heldout))))
    return encode(rows, corpus.text_column, tokenizer, tiny_settings.replace(packing=False, mask="wwm"))


@pytest.fixture(scope="session")
def wwm_rows(corpus: Corpus, tokenizer, tiny_settings: Settings):
    """Held-out rows packed as training packs them, with word ids from the corpus' gold segmentation."""
    return encode(corpus.heldout, corpus.text_column, tokenizer, tiny_settings.replace(mask="wwm"))


@pytest.fixture
def text_file(tmp_path: Path, corpus: Corpus) -> Path:
    """300 builtin rows as a plain-text file, one row per line."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus.train[corpus.text_column][:300]), encoding="utf-8")
    return path


def tiny_cli_args(**overrides: object) -> list[str]:
    """TINY plus overrides as `mlm-bench run` flags."""
    return [arg for key, value in {**TINY, **overrides}.items() for arg in (f"--{key}", str(value))]


@pytest.fixture
def run_argv(text_file: Path):
    """Builds `mlm-bench run` arguments: the tiny model on `text_file`, into a given directory."""

    def argv(output_dir: Path, *extra: str, **overrides: object) -> list[str]:
        # 300 rows hold out ~15 at the default 5%: too few to pack one 64-token row.
        flags = tiny_cli_args(**{"dataset": text_file, "heldout_fraction": 0.2, **overrides})
        return ["run", *flags, "--output-dir", str(output_dir), *extra]

    return argv


def tiny_bert(vocab_size: int, **config: Any) -> BertForMaskedLM:
    """A random 1-layer, 32-wide BERT masked LM: what a user's pretrained model directory holds, in miniature."""
    sizes = {key: TINY[key] for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}
    return BertForMaskedLM(BertConfig(vocab_size=vocab_size, **{**sizes, **config}))


def error_line(stderr: str, prefix: str) -> str:
    """What follows `prefix` on the one stderr line that has it (a progress bar may share the line or follow it)."""
    found = [line.partition(prefix)[2] for line in stderr.splitlines() if prefix in line]
    assert len(found) == 1, stderr[-2000:]
    return found[0]


def _texts_in(batch: dict[str, torch.Tensor]) -> list[tuple[tuple[int, ...], tuple[int, Any]]]:
    """Each text in a batch as (its input ids, the (row, positions) index of its tokens); in a flattened batch a
    text starts wherever position ids restart at 0."""
    texts = []
    for row, real in enumerate(batch["attention_mask"].bool()):
        where = real.nonzero().flatten()
        positions = batch["position_ids"][row][where] if "position_ids" in batch else torch.arange(len(where))
        starts = [*(positions == 0).nonzero().flatten().tolist(), len(where)]
        for a, b in itertools.pairwise(starts):
            span = (row, where[a:b])
            texts.append((tuple(batch["input_ids"][span].tolist()), span))
    return texts


@pytest.fixture(scope="session")
def texts_in():
    """Splits a batch, padded or flattened, into its texts (see _texts_in)."""
    return _texts_in
