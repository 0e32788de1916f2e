"""Context ablation: what each of tiny-zh's learning settings is worth in context gain, at equal training time.

Run `python -m mlm_bench.studies.context_ablation` (`--seconds` per variant, `--only WORD`); it prints a Markdown
table. Each variant is tiny-zh with one setting changed back (or the model reshaped). Its steps are sized so that it
trains for about `--seconds` (a 60-step probe measures its step time first), so variants that compute more per step
get fewer steps; the table shows the training time each actually took and the `mlm-bench run` command that repeats it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import TrainerCallback

from mlm_bench.config import Settings, preset
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.modeling.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.training.evaluate import build_eval_set, eval_settings, evaluate_mlm, unigram_log_probs
from mlm_bench.training.train import train

os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets.disable_progress_bars()

# Steps of each half (short rows, then whole rows) of the probe that measures a variant's step time.
PROBE_STEPS = 30
# tiny-zh with one change each: the settings that differ, as `mlm-bench run` flags take them.
VARIANTS: dict[str, dict[str, Any]] = {
    "tiny-zh (1 layer, untied, mask 0.3, short rows of 8 for half the steps, lr 3e-3, batch 32 x 128)": {},
    "whole rows throughout (no short rows)": {"short_row_length": 0},
    "short rows of 16 tokens": {"short_row_length": 16},
    "short rows for a quarter of the steps": {"short_row_fraction": 0.25},
    "short rows for three quarters of the steps": {"short_row_fraction": 0.75},
    "mask 0.15 (the recipe's)": {"mlm_probability": 0.15},
    "tied output embedding (BERT's default)": {"tie_word_embeddings": True},
    "lr 2e-3": {"learning_rate": 2e-3},
    "lr 5e-3": {"learning_rate": 5e-3},
    "batch 16 x 128": {"batch_size": 16},
    "batch 64 x 128": {"batch_size": 64},
    "2 layers": {"num_hidden_layers": 2},
    "256 wide, 4 heads": {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "the previous default (2 layers, tied, mask 0.15, whole rows, lr 2e-3, warmup 30)": {
        "num_hidden_layers": 2,
        "tie_word_embeddings": True,
        "mlm_probability": 0.15,
        "short_row_length": 0,
        "learning_rate": 2e-3,
        "warmup_steps": 30,
    },
}


def flags(changes: dict[str, Any]) -> str:
    """The changes as `mlm-bench run` flags."""
    return " ".join(f"--{key} {value}" for key, value in changes.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=110.0, help="Training time per variant (tiny-zh's).")
    parser.add_argument("--only", nargs="*", default=None, help="Run only variants whose name contains one of these.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/mlm-bench-context-ablation"))
    args = parser.parse_args(argv)
    base = preset("tiny-zh", device="cpu", seed=args.seed, save_steps=0, logging_steps=100)
    corpus = load_corpus(base)
    tokenizer = build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=base.data.max_length)
    train_rows = encode(corpus.train, corpus.text_column, tokenizer, base)
    heldout = encode(corpus.heldout, corpus.text_column, tokenizer, eval_settings(base))
    eval_set = build_eval_set(heldout, list(corpus.heldout[corpus.text_column]), tokenizer, base)
    unigram = unigram_log_probs(train_rows, tokenizer)
    print(
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, {args.seconds:.0f} s of "
        f"training per variant, seed {args.seed}, eval set {eval_set.description['id']} "
        f"({eval_set.description['texts']} texts)"
    )
    print(
        "| variant | steps | train s | context gain (nats) | top-1 at [MASK] | command |\n|---|---:|---:|---:|---:|---|"
    )
    # The first training in a process pays one-off costs (allocator, kernels, threads) that would shorten its steps.
    _seconds_per_step(base, tokenizer, train_rows, args.output_dir)
    for name, changes in VARIANTS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        settings = base.replace(**changes)
        steps = round(args.seconds / _seconds_per_step(settings, tokenizer, train_rows, args.output_dir))
        seconds, model = _train(settings.replace(max_steps=steps), tokenizer, train_rows, args.output_dir)
        result = evaluate_mlm(model, eval_set, unigram)
        command = f"mlm-bench run {flags({**changes, 'max_steps': steps})}"
        print(
            f"| {name} | {steps} | {seconds:.0f} | {result.context_gain:+.3f} | "
            f"{result.by_treatment['mask']['accuracy']:.3f} | `{command}` |",
            flush=True,
        )
    return 0


class _StepClock(TrainerCallback):
    """Wall-clock time at the end of every optimizer step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


def _seconds_per_step(settings: Settings, tokenizer: Any, rows: datasets.Dataset, output_dir: Path) -> float:
    """Steady-state seconds per step, short-row and whole-row steps weighted as the full run weighs them."""
    clock = _StepClock()
    probe = settings.replace(max_steps=2 * PROBE_STEPS, warmup_steps=0, short_row_fraction=0.5)
    _train(probe, tokenizer, rows, output_dir, callbacks=(clock,))
    short, whole = clock.ends[:PROBE_STEPS], clock.ends[PROBE_STEPS:]
    # The first steps of each half pay for warm-up and the switch of shapes: timed from the fifth on.
    per_short, per_whole = ((half[-1] - half[4]) / (len(half) - 5) for half in (short, whole))
    fraction = settings.data.short_row_fraction if settings.data.short_row_length else 0.0
    return fraction * per_short + (1 - fraction) * per_whole


def _train(
    settings: Settings, tokenizer: Any, rows: datasets.Dataset, output_dir: Path, callbacks: tuple[Any, ...] = ()
) -> tuple[float, torch.nn.Module]:
    """Train a fresh model: the seconds Trainer reports, and the model."""
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    summary = train(model, rows, build_collator(tokenizer, settings), settings, output_dir, callbacks=list(callbacks))
    return summary.runtime_seconds, model


if __name__ == "__main__":
    raise SystemExit(main())
