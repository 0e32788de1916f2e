"""CPU benchmarks of every pipeline stage on tiny-zh: tokenize, collate, train step, short run, evaluate, fill-mask.

Each times only the library call it names; checks on the result run after the timed part.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch

from mlm_bench.config import Settings
from mlm_bench.contract.context import WORKLOAD, ContextScore, load_workload, train_workload
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import Corpus
from mlm_bench.data.encode import encode
from mlm_bench.modeling.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.training.evaluate import evaluate_mlm, unigram_log_probs
from mlm_bench.training.infer import fill_mask, fill_mask_pipeline
from mlm_bench.training.train import TrainSummary, resolved_optimizer, train

STEP_ROUNDS = 20  # timed optimizer steps (enough for the gate's interval); the losses they see are recorded too
TRAIN_RUN_ROUNDS = 2  # each round is a whole 20-step run (seconds on 2 cores); 2 give the gate a spread
FORWARD_ROUNDS = 60  # ~50 ms each: a bootstrap interval of the median a few percent wide on a quiet machine
EVAL_ROUNDS = 15  # ~0.2 s each: enough rounds for an interval of a few percent


def token_counts(rows: dict[str, Any] | datasets.Dataset) -> tuple[int, int]:
    """(all positions, non-pad positions) of encoded rows or a collated batch."""
    masks = rows["attention_mask"]
    if isinstance(masks, torch.Tensor):
        return masks.numel(), int(masks.sum())
    return sum(len(m) for m in masks), sum(sum(m) for m in masks)


def losses_by_step(summary: TrainSummary) -> dict[str, float]:
    return {str(entry["step"]): entry["loss"] for entry in summary.loss_curve}


def test_tokenize(benchmark, record, train_texts: datasets.Dataset, corpus: Corpus, tokenizer, cpu_settings: Settings):
    """Rows/s of encode(): tokenize and pack the train texts."""
    rows = benchmark.pedantic(
        encode, args=(train_texts, corpus.text_column, tokenizer, cpu_settings), rounds=10, warmup_rounds=1
    )
    assert len(rows) > 0 and all(len(ids) == cpu_settings.data.max_length for ids in rows["input_ids"])
    tokens, nonpad = token_counts(rows)
    record(samples=len(train_texts), tokens=tokens, nonpad_tokens=nonpad, output_rows=len(rows))


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "truncated"])
def test_collate(
    benchmark,
    record,
    collator_for,
    packing: bool,
    train_rows: datasets.Dataset,
    train_texts: datasets.Dataset,
    corpus: Corpus,
    tokenizer,
    cpu_settings: Settings,
):
    """Samples/s of the MLM collator on packed rows (tiny-zh) and on padded, truncated rows (the recipe's)."""
    settings = cpu_settings.replace(packing=packing)
    rows = train_rows if packing else encode(train_texts, corpus.text_column, tokenizer, settings)
    examples = [dict(rows[i]) for i in range(settings.training.batch_size)]
    batch = benchmark(collator_for(settings, seed=settings.training.seed), examples)
    assert batch["input_ids"].shape[0] == settings.training.batch_size
    assert (batch["labels"] != -100).any()
    tokens, nonpad = token_counts(batch)
    record(samples=settings.training.batch_size, tokens=tokens, nonpad_tokens=nonpad)


def test_train_step(
    benchmark, record, collator_for, optimizer_step, train_rows: datasets.Dataset, tokenizer, cpu_settings: Settings
):
    """Tokens/s of one optimizer step: the Trainer's compute_loss forward, backward, and its AdamW + scheduler."""
    settings = cpu_settings
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    collator = collator_for(settings, seed=settings.training.seed)
    warmup = 2
    trainer, step, seen = optimizer_step(model, settings, train_rows, collator, STEP_ROUNDS + warmup)
    batches = [collator([dict(r) for r in train_rows.select(range(i * 32, i * 32 + 32))]) for i in range(4)]
    cycle = iter(batches * (STEP_ROUNDS + warmup))
    benchmark.pedantic(step, setup=lambda: ((next(cycle),), {}), rounds=STEP_ROUNDS, warmup_rounds=warmup)
    assert all(math.isfinite(x) for x in seen)
    tokens, nonpad = token_counts(batches[0])
    record(
        samples=settings.training.batch_size,
        tokens=tokens,
        nonpad_tokens=nonpad,
        losses={f"call_{i}": loss for i, loss in enumerate(seen)},
        # Compared exactly by the gate: a library default that changes (eps, betas, clipping, decay groups) shows.
        exact={"tokenizer_size": len(tokenizer), "optimizer": resolved_optimizer(trainer)},
        trainer_flops_per_step=trainer.floating_point_ops(batches[0]),
        params=model.num_parameters(),
    )


def test_train_run(benchmark, record, collator_for, train_rows, tokenizer, cpu_settings: Settings, tmp_path: Path):
    """A fixed-seed 20-step train() run: wall time, and the loss every 4 steps (the learning check)."""
    settings = cpu_settings
    summaries: list[TrainSummary] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        seed_everything(settings.training.seed)
        model = build_model(settings, tokenizer)
        return (model, train_rows, collator_for(settings), settings, tmp_path / "run"), {}

    def run(*args: Any) -> None:
        summaries.append(train(*args))

    benchmark.pedantic(run, setup=setup, rounds=TRAIN_RUN_ROUNDS)
    last = summaries[-1]
    assert last.steps == settings.training.max_steps and math.isfinite(last.train_loss)
    # Every round is the same seeded run: rounds that differ make the timing of one run, and its losses, meaningless.
    agree = all(losses_by_step(s) == losses_by_step(last) for s in summaries)
    assert agree, f"the {len(summaries)} seeded rounds logged different losses: training is not deterministic"
    samples = last.steps * settings.training.batch_size
    tokens = round(last.tokens_per_second * last.runtime_seconds)
    record(
        samples=samples,
        tokens=tokens,
        nonpad_tokens=round(tokens * (1.0 - last.pad_fraction)),
        losses=losses_by_step(last),
        metrics={"train_loss": last.train_loss},
        rounds_agree=agree,
        trainer_samples_per_second=last.samples_per_second,
        trainer_total_flos=last.total_flos,
        settings=settings.to_dict(),
    )


def test_forward(benchmark, record, train_rows, tokenizer, cpu_settings: Settings):
    """Tokens/s of the model's forward alone (eval, no grad) on 32 packed rows: enough rounds to gate a few-percent
    change of BERT's own compute."""
    seed_everything(cpu_settings.training.seed)
    model = build_model(cpu_settings, tokenizer).eval()
    batch = build_collator(tokenizer, cpu_settings, seed=cpu_settings.training.seed)(
        [dict(r) for r in train_rows.select(range(32))]
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(**inputs).logits

    logits = benchmark.pedantic(forward, rounds=FORWARD_ROUNDS, warmup_rounds=3)
    assert torch.isfinite(logits).all()
    tokens, nonpad = token_counts(batch)
    record(samples=len(batch["input_ids"]), tokens=tokens, nonpad_tokens=nonpad)


@pytest.fixture(scope="session")
def trained(train_rows, tokenizer, cpu_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """The model after the same fixed-seed 20-step run, with its summary."""
    seed_everything(cpu_settings.training.seed)
    model = build_model(cpu_settings, tokenizer)
    out = tmp_path_factory.mktemp("trained")
    summary = train(model, train_rows, build_collator(tokenizer, cpu_settings), cpu_settings, out)
    return model, summary


def test_evaluate(benchmark, record, headline, trained, eval_set, train_rows, tokenizer):
    """Held-out loss, accuracy and context gain of the 20-step model on texts masked as every run masks them."""
    model, summary = trained
    unigram = unigram_log_probs(train_rows, tokenizer)
    result = benchmark.pedantic(evaluate_mlm, args=(model, eval_set, unigram), rounds=EVAL_ROUNDS)
    assert 0.0 <= result.accuracy <= 1.0 and result.selected_tokens == eval_set.description["selected_tokens"]
    lengths = [len(ids) for ids in eval_set.input_ids]
    at_mask = result.by_treatment["mask"]
    record(
        samples=len(lengths),
        tokens=sum(lengths),
        nonpad_tokens=sum(lengths),
        metrics={
            "eval_accuracy": result.accuracy,
            "eval_loss": result.loss,
            "eval_unigram_loss": result.unigram_loss,
            "context_gain": result.context_gain,
            "mask_loss": at_mask["loss"],
            "mask_accuracy": at_mask["accuracy"],
        },
        eval_set=eval_set.description,
        by_treatment=result.by_treatment,
    )
    headline(
        f"tiny-zh after {summary.steps} steps: context gain {result.context_gain:+.3f} nats at [MASK] "
        f"({at_mask['tokens']} tokens), held-out loss {result.loss:.4f} (unigram {result.unigram_loss:.4f})"
    )


def test_context_run(benchmark, record, headline, tmp_path: Path):
    """The context workload (mlm_bench/contract/context.py): a tiny BERT learns a copy task only attention can solve.

    Its loss curve and [MASK] loss are the gate's learning signal for attention over context and word order.
    """
    workload = load_workload()
    runs: list[tuple[TrainSummary, ContextScore]] = []

    def run() -> None:
        _, summary, result = train_workload(workload, tmp_path / "context")
        runs.append((summary, result))

    benchmark.pedantic(run, rounds=TRAIN_RUN_ROUNDS)
    summary, result = runs[-1]
    assert summary.steps == WORKLOAD.training.max_steps and math.isfinite(result.loss)
    # Same seed, same process: a round that scores otherwise means the computation is not deterministic.
    assert all(r == result for _, r in runs)
    metrics = {
        "context_mask_loss": result.loss,
        "context_mask_accuracy": result.accuracy,
        "context_padded_mask_loss": result.padded_loss,
        "context_gain": result.context_gain,
        # Healthy: ~4e-6; a model that attends to padding: ~0.6. Compared with the metrics' absolute tolerance.
        "context_padding_shift": result.padding_shift,
    }
    # Copy-task rows are all max_length long.
    tokens = summary.steps * WORKLOAD.training.batch_size * WORKLOAD.data.max_length
    samples = summary.steps * WORKLOAD.training.batch_size
    record(samples=samples, tokens=tokens, nonpad_tokens=tokens, losses=losses_by_step(summary), metrics=metrics,
           settings=WORKLOAD.to_dict())  # fmt: skip
    headline(
        f"context workload: [MASK] loss {result.loss:.4f} nats after {summary.steps} steps (unigram "
        f"{result.unigram_loss:.3f}), context gain {result.context_gain:+.3f} nats, accuracy {result.accuracy:.3f}, "
        f"padding shift {result.padding_shift:.1e}"
    )


def test_fill_mask(benchmark, record, trained, tokenizer, cpu_settings: Settings):
    """Latency of one fill-mask probe through pipeline('fill-mask'), as the recipe calls it; the pipeline is built
    once, outside the timed call, which times the probe and not the pipeline's construction."""
    model, _ = trained
    probe = cpu_settings.eval.fill_mask_probe
    fill = fill_mask_pipeline(model, tokenizer)
    predictions = benchmark.pedantic(fill_mask, args=(fill, [probe]), rounds=100, warmup_rounds=2)
    top = predictions[0][0]
    assert len(predictions[0]) == 5
    length = len(tokenizer(probe)["input_ids"])
    record(
        samples=1,
        tokens=length,
        nonpad_tokens=length,
        metrics={"top1_score": top["score"]},
        top5=predictions[0],
    )
