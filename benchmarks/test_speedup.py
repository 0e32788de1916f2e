"""Speedup: `fast` against the recipe's batching, same model, corpus and non-pad token budget, in one process.

The timed target is the `fast` training run; the seed-style run, both evaluations and the checks stay outside it.
Both models are scored on the same eval set: held-out texts whole up to 384 tokens, each masked alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from mlm_bench.config import Settings, preset
from mlm_bench.runs.results import device_info, versions
from mlm_bench.studies.speed_ablation import (
    Workload,
    evaluate_variant,
    fast,
    load_workload,
    seed_style,
    train_variant,
)
from mlm_bench.training.train import TrainSummary

# The recipe's reported throughput (BERT-base, 64 x 384, one GPU): its README's train_samples_per_second.
RECIPE_SAMPLES_PER_SECOND = 112.152
GPU_STEPS = 40
# The same training in another summation order moved the eval loss by 2e-8 (CPU, 1 thread, 40 steps); letting
# packed texts attend to each other moved it by 1e-5.
ROUNDING = 1e-6
# Dense bf16 tensor-core peaks (vendor datasheets, no sparsity) for MFU; an unknown GPU gets no MFU.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


@pytest.fixture(scope="module")
def workload() -> Workload:
    """Corpus, tokenizer and the eval set, shared by both styles."""
    return load_workload()


def test_fast_vs_seed(
    benchmark,
    headline,
    workload: Workload,
    tmp_path: Path,
    torch_threads: int,
    heap: str,
    request: pytest.FixtureRequest,
) -> None:
    """`fast` against the seed-style run on the same rows: the speedup per non-pad token is recorded (the gate
    judges the fast run's time; no timing is asserted here), and the eval loss must be no worse.

    Both runs draw the same rows in the same order with the same masks (flatten only packs them after masking)
    and tiny-zh has no dropout, so `fast` repeats the seed-style training in another layout: its loss may differ
    only by float rounding, and a change that makes it learn worse shows as a difference beyond that.
    """
    seed_steps = request.config.getoption("--seed-steps")
    seed = seed_style(max_steps=seed_steps)
    quick = fast(max_steps=seed_steps)
    assert quick.training.batch_size == seed.training.batch_size and quick.speed.flatten
    seed_summary, seed_model = train_variant(workload, seed, tmp_path / "seed")
    runs: list[tuple[TrainSummary, torch.nn.Module]] = []
    benchmark.pedantic(lambda: runs.append(train_variant(workload, quick, tmp_path / "fast")), rounds=1, iterations=1)
    fast_summary, fast_model = runs[0]
    seed_eval, fast_eval = evaluate_variant(workload, seed_model), evaluate_variant(workload, fast_model)
    speedup = fast_summary.nonpad_tokens_per_second / seed_summary.nonpad_tokens_per_second
    benchmark.extra_info.update(
        {
            "speedup_nonpad_tokens_per_s": speedup,
            **_side_by_side({"seed": seed_summary, "fast": fast_summary}, {"seed": seed_eval, "fast": fast_eval}),
            "max_weight_difference": _max_weight_difference(fast_model, seed_model),
            "unigram_loss": seed_eval.unigram_loss,
            "eval_set": workload.eval_set.description,
            "settings_fast": quick.to_dict(),
            "settings_seed": seed.to_dict(),
            "torch_threads": torch_threads,
            "heap": heap,
            "load_average_1m": os.getloadavg()[0],
            "versions": versions(),
            "device": device_info(torch.device("cpu")),
        }
    )
    headline(
        f"fast vs seed-style ({seed_steps} steps each, same rows and masks): {speedup:.2f}x non-pad tokens/s; "
        f"eval loss fast {fast_eval.loss:.6f} / seed {seed_eval.loss:.6f} "
        f"(difference {fast_eval.loss - seed_eval.loss:+.1e}), "
        f"context gain {fast_eval.context_gain:+.3f} / {seed_eval.context_gain:+.3f} nats"
    )
    assert round(_nonpad(fast_summary)) == round(_nonpad(seed_summary))  # the same rows
    assert fast_eval.loss <= seed_eval.loss + ROUNDING, (
        f"fast eval loss {fast_eval.loss:.7f} > seed-style {seed_eval.loss:.7f} by more than float rounding"
    )


def _side_by_side(summaries: dict[str, TrainSummary], evals: dict[str, Any]) -> dict[str, Any]:
    """Each run's throughput, padding, steps and eval, keyed `<figure>_<run>`, and the eval loss difference."""
    out: dict[str, Any] = {"eval_loss_difference": evals["fast"].loss - evals["seed"].loss}
    for run, summary in summaries.items():
        out |= {
            f"eval_loss_{run}": evals[run].loss,
            f"context_gain_{run}": evals[run].context_gain,
            f"pad_fraction_{run}": summary.pad_fraction,
            f"nonpad_tokens_{run}": _nonpad(summary),
            f"nonpad_tokens_per_s_{run}": summary.nonpad_tokens_per_second,
            f"steps_{run}": summary.steps,
        }
    return out


def _max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference between two models' parameters: how far apart the two trainings ended."""
    theirs = dict(b.named_parameters())
    return max(float((p - theirs[name]).detach().abs().max()) for name, p in a.named_parameters())


def _nonpad(summary: TrainSummary) -> float:
    return summary.nonpad_tokens_per_second * summary.runtime_seconds


def _flops_per_nonpad_token(settings: Settings, model: torch.nn.Module, mean_attended: float) -> float:
    """Training FLOPs per non-pad token: 6 x matmul weights (head only where computed) + attention scores."""
    config = model.config
    head = config.vocab_size * config.hidden_size
    layer = 4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size
    head_share = settings.data.mlm_probability if settings.speed.sparse_head else 1.0
    attention = 12 * config.num_hidden_layers * config.hidden_size * mean_attended
    return 6 * (config.num_hidden_layers * layer + config.hidden_size**2 + head_share * head) + attention


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("style", ["seed-style", "fast"])
def test_seed_shape_gpu(benchmark, workload: Workload, tmp_path: Path, style: str) -> None:
    """The recipe's BERT-base shape (64 x 384, vocab 21128) on one GPU: samples/s against the recipe's 112.15."""
    base = preset("seed-shape", device="cuda", max_steps=GPU_STEPS, logging_steps=10_000)
    if style == "seed-style":
        settings = base.replace(packing=False, sparse_head=False, pad_to_multiple_of=None)
    else:
        fast_fields = {k: v for k, v in preset("fast").flat().items() if k in _SPEED_FIELDS}
        settings = base.replace(**fast_fields)
    runs: list[tuple[TrainSummary, torch.nn.Module]] = []
    benchmark.pedantic(lambda: runs.append(train_variant(workload, settings, tmp_path)), rounds=1, iterations=1)
    summary, model = runs[0]
    if settings.data.packing:
        mean_attended = settings.data.max_length
    elif settings.speed.flatten:  # each token attends only to its own text; the mean text length underestimates it
        mean_attended = summary.nonpad_tokens_per_second / summary.samples_per_second
    else:
        mean_attended = summary.tokens_per_second / summary.samples_per_second
    achieved = _flops_per_nonpad_token(settings, model, mean_attended) * summary.nonpad_tokens_per_second
    name = torch.cuda.get_device_name()
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    benchmark.extra_info.update(
        {
            "style": style,
            "samples_per_second": summary.samples_per_second,
            "recipe_samples_per_second": RECIPE_SAMPLES_PER_SECOND,
            "vs_recipe": summary.samples_per_second / RECIPE_SAMPLES_PER_SECOND,
            "tokens_per_second": summary.tokens_per_second,
            "nonpad_tokens_per_second": summary.nonpad_tokens_per_second,
            "pad_fraction": summary.pad_fraction,
            "achieved_flops_per_second": achieved,
            "mfu_vs_bf16_peak": achieved / peak if peak else None,
            "speed_options": summary.speed_options,
            "settings": settings.to_dict(),
            "versions": versions(),
            "device": device_info(torch.device("cuda")),
        }
    )
    assert summary.steps == GPU_STEPS


_SPEED_FIELDS = (
    "packing",
    "flatten",
    "group_by_length",
    "pad_to_multiple_of",
    "sparse_head",
    "attn_implementation",
    "bf16",
    "tf32",
    "torch_compile",
    "fused_adamw",
)
