"""Speed ablation: the recipe's batching against `fast`, and each technique's own share of the speedup.

Run `python -m mlm_bench.studies.speed_ablation` (`--steps` per variant, `--threads`); it prints a Markdown table.
The helpers here (the workload, the seed-style and fast settings, one training run, the shared evaluation) are also
what benchmarks/test_speedup.py measures, so both compare exactly the same things.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

from mlm_bench.config import Settings, preset
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import Corpus, load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.modeling.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.training.evaluate import (
    EvalResult,
    EvalSet,
    build_eval_set,
    eval_settings,
    evaluate_mlm,
    unigram_log_probs,
)
from mlm_bench.training.train import TrainSummary, train

os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets.disable_progress_bars()

# The recipe's row length: truncating People's Daily at 384 and padding random batches of 32 to the longest
# makes ~72% of every batch padding.
MAX_LENGTH = 384
# tiny-zh's model (1 layer, 128 wide) on CPU; 10 warmup steps suit the 12-step ablation and the 40-step speedup run.
# The recipe's masking (0.15, whole rows) for both styles: this compares layouts of one training, not learning settings.
COMMON = {
    "device": "cpu",
    "max_length": MAX_LENGTH,
    "logging_steps": 10_000,
    "warmup_steps": 10,
    "mlm_probability": 0.15,
    "short_row_length": 0,
    "eval_max_length": MAX_LENGTH,
}
# What run_mlm.py-without-group_texts and the recipe do: truncate, random batches padded to the longest, dense head.
SEED_STYLE = {"packing": False, "sparse_head": False, "pad_to_multiple_of": None, "group_by_length": False}
HELDOUT_TEXTS = 1000
# Torch threads while measuring. On a shared, oversubscribed 2-core machine a descheduled OpenMP thread stalls
# every op at its barrier, so 2-thread wall times measure the other tenants (seen: 1.6x-6.4x for the same pair);
# 1 thread measures the code. Pass --threads 2 (or pytest's --bench-threads 2) on a quiet machine.
THREADS = 1


@dataclass(frozen=True)
class Workload:
    """The builtin corpus, its tokenizer, and the held-out texts both styles are scored on (whole up to 384 tokens)."""

    corpus: Corpus
    tokenizer: Any
    eval_set: EvalSet
    unigram: torch.Tensor


def load_workload() -> Workload:
    """Corpus, tokenizer and the eval set of held-out texts (whole up to 384 tokens), built once per process."""
    from mlm_bench.data.tokenizer import build_tokenizer

    settings = seed_style()
    corpus = load_corpus(settings)
    tokenizer = build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=MAX_LENGTH)
    texts = corpus.heldout.select(range(HELDOUT_TEXTS))
    heldout = encode(texts, corpus.text_column, tokenizer, eval_settings(settings))
    eval_set = build_eval_set(heldout, list(texts[corpus.text_column]), tokenizer, settings)
    train_rows = encode(corpus.train, corpus.text_column, tokenizer, settings)
    _ENCODED[(settings.data.packing, settings.data.max_length)] = train_rows
    return Workload(corpus, tokenizer, eval_set, unigram_log_probs(train_rows, tokenizer))


def seed_style(**overrides: Any) -> Settings:
    """tiny-zh's model trained with the recipe's batching."""
    return preset("tiny-zh", **{**COMMON, **SEED_STYLE, **overrides})


def fast(**overrides: Any) -> Settings:
    """The `fast` preset on the same model and rows."""
    return preset("fast", **{**COMMON, **overrides})


def rows_per_step(workload: Workload, baseline: Settings) -> int:
    """Full rows per step that carry as many non-pad tokens as the baseline's batch of unpadded rows.

    Same tokens per optimizer step keeps the number of steps, and so the lr schedule, the same for both styles.
    """
    encoded = _encoded(workload, baseline)
    mean_length = sum(len(ids) for ids in encoded["input_ids"]) / len(encoded)
    return max(1, round(baseline.training.batch_size * mean_length / baseline.data.max_length))


_ENCODED: dict[tuple[bool, int], datasets.Dataset] = {}


def _encoded(workload: Workload, settings: Settings) -> datasets.Dataset:
    # Tokenizing 18k rows takes seconds on 2 cores: once per (packing, max_length) is enough.
    key = (settings.data.packing, settings.data.max_length)
    if key not in _ENCODED:
        corpus = workload.corpus
        _ENCODED[key] = encode(corpus.train, corpus.text_column, workload.tokenizer, settings)
    return _ENCODED[key]


def train_variant(workload: Workload, settings: Settings, output_dir: Path) -> tuple[TrainSummary, torch.nn.Module]:
    """Train a freshly initialised model (the same init for every variant) on the variant's encoding."""
    rows = _encoded(workload, settings)
    seed_everything(settings.training.seed)
    model = build_model(settings, workload.tokenizer)
    summary = train(model, rows, build_collator(workload.tokenizer, settings), settings, output_dir)
    return summary, model


def evaluate_variant(workload: Workload, model: torch.nn.Module) -> EvalResult:
    """Held-out MLM metrics on the same masked texts, whatever the model trained on."""
    return evaluate_mlm(model, workload.eval_set, workload.unigram)


VARIANTS: dict[str, Callable[[int], Settings]] = {
    # name -> settings built from the packed-rows batch size (used only where rows are packed)
    "seed-style (recipe batching, dense head, sdpa)": lambda rows: seed_style(),
    "seed-style, eager attention": lambda rows: seed_style(attn_implementation="eager"),
    "seed-style, for-each AdamW": lambda rows: seed_style(fused_adamw=False),
    "+ pad_to_multiple_of 8": lambda rows: seed_style(pad_to_multiple_of=8),
    "+ group_by_length": lambda rows: seed_style(group_by_length=True),
    "+ packing (group_texts)": lambda rows: seed_style(packing=True, batch_size=rows),
    "+ flatten": lambda rows: seed_style(flatten=True),
    "+ sparse head": lambda rows: seed_style(sparse_head=True),
    "fast, group_by_length instead of flatten": lambda rows: fast(flatten=False, group_by_length=True),
    "fast, packing instead of flatten": lambda rows: fast(flatten=False, packing=True, batch_size=rows),
    "fast without sparse head": lambda rows: fast(sparse_head=False),
    "fast (flatten, sparse head, sdpa, fused AdamW)": lambda rows: fast(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="Optimizer steps of each variant.")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/mlm-bench-ablation"))
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 1).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    workload = load_workload()
    rows = rows_per_step(workload, seed_style())
    print(
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
        f"{args.steps} steps per variant, packed batches of {rows} x {MAX_LENGTH} tokens, "
        f"unpacked batches of {seed_style().training.batch_size} rows"
    )
    print("| variant | non-pad tokens/s | pad fraction | speedup vs seed-style |\n|---|---:|---:|---:|")
    baseline = None
    for name, make in VARIANTS.items():
        settings = make(rows).replace(max_steps=args.steps)
        started = time.perf_counter()
        summary, _ = train_variant(workload, settings, args.output_dir)
        rate = summary.nonpad_tokens_per_second
        baseline = baseline or rate
        print(
            f"| {name} | {rate:,.0f} | {summary.pad_fraction:.3f} | {rate / baseline:.2f}x |",
            f"<!-- {time.perf_counter() - started:.0f} s -->",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
