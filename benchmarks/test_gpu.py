"""GPU benchmarks of the recipe's compute shape (seed-shape: BERT-base, vocab 21128, 64x384): one train step.

Two variants: the recipe as written (fp32, library defaults, TF32 off) and bf16 autocast with TF32 on. Each reports
samples/s, tokens/s and model FLOP utilisation (MFU) by two FLOP counts: the Trainer's own (6 x non-embedding
parameters x tokens, what it sums into total_flos) and 6 x all parameters x tokens.
"""

from __future__ import annotations

import math

import datasets
import pytest
import torch

from mlm_bench.config import preset
from mlm_bench.corpus import Corpus
from mlm_bench.encode import encode
from mlm_bench.model import build_model
from mlm_bench.seeding import seed_everything

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs CUDA: the seed-shape workload (BERT-base, 64x384 tokens per step) is GPU-sized",
)

# Dense peaks of an H100 SXM (NVIDIA datasheet, without sparsity), in FLOP/s. MFU is quoted against bf16, the
# number training papers use; fp32 (CUDA cores) and TF32 (tensor cores) peaks are recorded beside it.
H100_PEAK = {"bf16": 989e12, "tf32": 494.7e12, "fp32": 66.9e12}
STEP_ROUNDS = 20
WARMUP_ROUNDS = 3  # CUDA context, cuBLAS heuristics and allocator warm-up stay out of the timing


@pytest.mark.parametrize("precision", ["fp32", "bf16-tf32"])
def test_gpu_train_step(
    benchmark,
    record,
    collator_for,
    optimizer_step,
    precision: str,
    train_texts: datasets.Dataset,
    corpus: Corpus,
    tokenizer,
):
    """Samples/s, tokens/s and MFU of one seed-shape optimizer step (forward, backward, AdamW, scheduler)."""
    settings = preset("seed-shape", device="cuda")
    fast = precision != "fp32"
    seed_everything(settings.seed, allow_tf32=fast)
    rows = encode(train_texts, corpus.text_column, tokenizer, settings)
    model = build_model(settings, tokenizer)
    collator = collator_for(settings, seed=settings.seed)
    trainer, step, seen = optimizer_step(model, settings, rows, collator, STEP_ROUNDS + WARMUP_ROUNDS, bf16=fast)
    batch_size = settings.batch_size
    batches = [
        {k: v.to(model.device) for k, v in collator([dict(r) for r in rows.select(range(i, i + batch_size))]).items()}
        for i in range(0, len(rows) - batch_size + 1, batch_size)
    ]
    assert batches, f"{len(rows)} packed rows are fewer than one batch of {batch_size}"
    cycle = iter(batches * (STEP_ROUNDS + WARMUP_ROUNDS))
    benchmark.pedantic(step, setup=lambda: ((next(cycle),), {}), rounds=STEP_ROUNDS, warmup_rounds=WARMUP_ROUNDS)
    assert all(math.isfinite(x) for x in seen)
    mask = batches[0]["attention_mask"]
    tokens, nonpad = mask.numel(), int(mask.sum())
    median = benchmark.stats.stats.median
    flops = {
        "trainer": trainer.floating_point_ops(batches[0]),
        "6nd": 6 * model.num_parameters() * tokens,
    }
    record(
        samples=batch_size,
        tokens=tokens,
        nonpad_tokens=nonpad,
        device=model.device,
        losses={f"call_{i}": loss for i, loss in enumerate(seen)},
        precision=precision,
        flops_per_step=flops,
        achieved_tflops={k: v / median / 1e12 for k, v in flops.items()},
        mfu_vs_h100_bf16={k: v / median / H100_PEAK["bf16"] for k, v in flops.items()},
        peak_flops_assumed=H100_PEAK,
        peak_note="H100 SXM dense peaks; on another GPU divide achieved_tflops by its own peak",
        settings=settings.to_dict(),
    )
