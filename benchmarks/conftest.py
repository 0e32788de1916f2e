"""Benchmark fixtures: the tiny-zh workload on the builtin corpus, what every benchmark records, and planted faults.

The planted faults (`--plant-slowdown`, `--plant-forward-slowdown`, `--plant-lr-factor`) exist only so the gate's
calibration can prove it catches a slowdown and a learning change; an ordinary run never sets them. The slowdowns
are the registry's (mlm_bench.testing.faults), as the regression battery plants them.
"""

from __future__ import annotations

import ctypes
import platform
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import pytest
import torch

from mlm_bench.config import Settings, preset
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import Corpus, load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.runs.results import command_line, device_info, versions
from mlm_bench.testing import faults
from mlm_bench.training.evaluate import EvalSet, build_eval_set, eval_settings
from mlm_bench.training.train import MlmTrainer, training_arguments

datasets.disable_progress_bars()

# Enough text for 40+ training batches of 32 packed 128-token rows, yet encoded in well under a second.
TRAIN_TEXTS = 3000
# Held-out texts the evaluate benchmark scores: ~1.4k selected tokens, so accuracy has a standard error of ~0.005.
EVAL_TEXTS = 128
# Headline lines the benchmarks leave for the terminal summary, in the order they ran.
HEADLINES = pytest.StashKey[list[str]]()
# The short training run: long enough that the loss falls clearly (8.4 -> ~7), short enough for a CPU suite.
CPU_OVERRIDES = {"device": "cpu", "max_steps": 20, "warmup_steps": 4, "logging_steps": 4}
# glibc mallopt parameters: allocations below the mmap threshold come from the heap, which is trimmed back to the
# OS only above the trim threshold.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
WARM_HEAP_BYTES = 1 << 30


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Provenance once per file, where pytest-benchmark keeps it: the library versions and the command that ran."""
    machine_info.update({"versions": versions(), "command": command_line()})


def pytest_configure(config: pytest.Config) -> None:
    # Python's collector paused 2 of every 10 tokenize rounds (each twice as long): time the call, not the
    # collector (pytest-benchmark's --benchmark-disable-gc, recorded in each benchmark's "options").
    config.option.benchmark_disable_gc = True


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Benchmarks run in file order (pytest-randomly shuffles only the contract tests: a benchmark's warm-up must not
    depend on the draw), and a warning is reported, not fatal (pyproject makes warnings errors for tests/ only)."""
    order = {item: index for index, item in enumerate(items)}
    yield
    items.sort(key=order.__getitem__)
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlm-bench calibration (plants faults; never set in a real comparison)")
    parser.addoption(
        "--bench-seed",
        type=int,
        default=None,
        help="Seed of every benchmark (default tiny-zh's); another seed shows the seed-to-seed spread of the losses.",
    )
    parser.addoption(
        "--seed-steps",
        type=int,
        default=40,
        help="Steps of the seed-style run in test_speedup (40: minutes on 2 cores; 200 passes the unigram plateau).",
    )
    parser.addoption(
        "--bench-threads",
        type=int,
        default=1,
        help="torch threads of every CPU benchmark (1: a loaded machine's other tenants cannot stall an OpenMP "
        "barrier; measured 2 threads 1.7-2x slower and 65%% IQR beside one busy core, 1 thread unchanged).",
    )
    parser.addoption(
        "--gpu-dry-run",
        action="store_true",
        help="Run benchmarks/test_gpu.py on CPU with a tiny model: a check of its code, not a measurement.",
    )
    parser.addoption(
        "--cold-heap",
        action="store_true",
        help="Leave glibc's allocator at its defaults: every call then page-faults its large tensors afresh "
        "(measured 25%% of the tiny-zh forward, bimodal between rounds).",
    )
    group.addoption(
        "--plant-slowdown",
        type=float,
        default=0.0,
        help="Make the collator this fraction slower (0.2: wait 20%% of each call's own time).",
    )
    group.addoption(
        "--plant-forward-slowdown",
        type=float,
        default=0.0,
        help="Make BertForMaskedLM.forward this fraction slower (0.1: wait 10%% of each call's own time).",
    )
    group.addoption(
        "--plant-lr-factor",
        type=float,
        default=1.0,
        help="Multiply the learning rate of the training run and the evaluated model (changes the losses).",
    )


@pytest.fixture(scope="session", autouse=True)
def torch_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Every benchmark at --bench-threads torch threads, restored after the session."""
    before, wanted = torch.get_num_threads(), request.config.getoption("--bench-threads")
    torch.set_num_threads(wanted)
    yield wanted
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def heap(request: pytest.FixtureRequest) -> str:
    """'warm' when freed memory stays in the process for the next round, so timings measure compute, not the
    kernel's page faults: glibc hands the 80 MB tiny-zh logits back to the OS after every call by default, and
    the forward then ran 76 or 95 ms by the kernel's mood (65 ms warm)."""
    if request.config.getoption("--cold-heap") or platform.libc_ver()[0] != "glibc":
        return "default"
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(M_MMAP_THRESHOLD, WARM_HEAP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, 2 * WARM_HEAP_BYTES)):
        # Older glibc caps the mmap threshold at 32 MiB: measure with its defaults, and say so in every record.
        warnings.warn("glibc refused the warm-heap mallopt; benchmarks record heap 'default'", stacklevel=1)
        return "default"
    return "warm"


@pytest.fixture(scope="session")
def cpu_settings(request: pytest.FixtureRequest) -> Settings:
    """tiny-zh on CPU with a 20-step run (the learning rate scaled only when a calibration plants a change)."""
    base = preset("tiny-zh", **CPU_OVERRIDES)
    seed = request.config.getoption("--bench-seed")
    return base.replace(
        learning_rate=base.training.learning_rate * request.config.getoption("--plant-lr-factor"),
        seed=base.training.seed if seed is None else seed,
    )


@pytest.fixture(scope="session")
def corpus(cpu_settings: Settings) -> Corpus:
    """The builtin corpus, split as every run splits it."""
    return load_corpus(cpu_settings)


@pytest.fixture(scope="session")
def train_texts(corpus: Corpus) -> datasets.Dataset:
    """The first TRAIN_TEXTS train rows: the text every CPU benchmark tokenizes and trains on."""
    return corpus.train.select(range(TRAIN_TEXTS))


@pytest.fixture(scope="session")
def tokenizer(corpus: Corpus, cpu_settings: Settings):
    """The char-level tokenizer built from all train rows, as `mlm-bench run` builds it."""
    return build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=cpu_settings.data.max_length)


@pytest.fixture(scope="session")
def train_rows(train_texts: datasets.Dataset, corpus: Corpus, tokenizer, cpu_settings: Settings) -> datasets.Dataset:
    """Train texts packed into 128-token rows (tiny-zh's encoding)."""
    return encode(train_texts, corpus.text_column, tokenizer, cpu_settings)


@pytest.fixture(scope="session")
def eval_set(corpus: Corpus, tokenizer, cpu_settings: Settings) -> EvalSet:
    """The first EVAL_TEXTS held-out texts, whole up to eval_max_length, each masked alone as every run masks them."""
    texts = corpus.heldout.select(range(EVAL_TEXTS))
    rows = encode(texts, corpus.text_column, tokenizer, eval_settings(cpu_settings))
    return build_eval_set(rows, list(texts[corpus.text_column]), tokenizer, cpu_settings)


@pytest.fixture(scope="session", autouse=True)
def planted_forward(request: pytest.FixtureRequest):
    """BertForMaskedLM.forward made slower when a calibration plants it (--plant-forward-slowdown)."""
    fraction = request.config.getoption("--plant-forward-slowdown")
    if fraction <= 0:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        faults.forward_slower.apply(fraction, patch=patch.setattr)
        yield


@pytest.fixture
def collator_for(request: pytest.FixtureRequest, tokenizer) -> Callable[..., Any]:
    """`collator_for(settings, seed)`: the library's collator, slowed down only when a calibration plants it."""
    fraction = request.config.getoption("--plant-slowdown")

    def make(settings: Settings, seed: int | None = None) -> Any:
        collator = build_collator(tokenizer, settings, seed=seed)
        return faults.slowed(collator, fraction) if fraction > 0 else collator

    return make


@pytest.fixture
def optimizer_step(
    tmp_path,
) -> Callable[..., tuple[MlmTrainer, Callable[[dict[str, torch.Tensor]], None], list[float]]]:
    """Factory of one timed optimizer step (the Trainer's compute_loss, backward, AdamW, scheduler) and its losses.

    The step is driven by hand because 5.x's Trainer.training_step needs state only its training loop sets up.
    """

    def make(model, settings: Settings, rows: datasets.Dataset, collator: Any, total_steps: int, bf16: bool = False):
        trainer = MlmTrainer(
            model=model,
            args=training_arguments(settings, tmp_path),
            train_dataset=rows,
            data_collator=collator,
            sparse_head=settings.speed.sparse_head,
            sparse_capacity=settings.speed.sparse_capacity,
            rows_vary=settings.speed.flatten,
        )
        trainer.create_optimizer_and_scheduler(num_training_steps=total_steps)
        seen: list[float] = []

        def step(batch: dict[str, torch.Tensor]) -> None:
            model.train()
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = trainer.compute_loss(model, batch)
            loss.backward()
            trainer.optimizer.step()
            trainer.lr_scheduler.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            seen.append(loss.item())  # .item() synchronises, so a timed GPU call includes the GPU work

        return trainer, step, seen

    return make


@pytest.fixture
def record(benchmark, heap: str) -> Callable[..., None]:
    """`record(samples=, tokens=, nonpad_tokens=, ...)`: extra_info with throughput at the median, and provenance."""

    def fill(
        *, samples: int, tokens: int, nonpad_tokens: int, device: torch.device | None = None, **extra: Any
    ) -> None:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(
            {
                "samples_per_call": samples,
                "samples_per_second": samples / median,
                "tokens_per_second": tokens / median,
                "nonpad_tokens_per_second": nonpad_tokens / median,
                "pad_fraction": 1.0 - nonpad_tokens / tokens if tokens else 0.0,
                "losses": {},
                "metrics": {},
                "device": device_info(device or torch.device("cpu")),
                "heap": heap,
                **extra,
            }
        )

    return fill


@pytest.fixture
def headline(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`headline(line)`: a headline figure printed in the terminal summary after every benchmark has run."""
    return request.config.stash.setdefault(HEADLINES, []).append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the headline lines. Benchmarks run in one process (pytest-benchmark turns itself off under xdist)."""
    lines = config.stash.get(HEADLINES, [])
    if lines:
        terminalreporter.section("mlm-bench headline figures")
        for line in lines:
            terminalreporter.write_line(line)
