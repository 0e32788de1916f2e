"""GPU benchmarks of the recipe's compute shape (seed-shape: BERT-base, vocab 21128, batches of 64 texts of <= 384
tokens), one optimizer step per round, in one process so the variants share the machine's state:

- `recipe`: the recipe as written: fp32, TF32 off, unpacked rows padded to the batch's longest, dense head, eager;
- `packed-bf16`: texts joined and cut into full 384-token rows, bf16 autocast, TF32, dense head, eager;
- `fast`: the seed-shape-fast preset: each text masked alone, packed after masking, FlexAttention's document mask,
  a fixed-width sparse head, bf16, TF32, fused AdamW, torch.compile;
- `fast-256-eager`: fast's path with 256 texts a step (about packed-bf16's tokens), not compiled.

Each records non-pad tokens/s over all timed rounds, MFU as issue 13 defines it (6 x all parameters x non-pad
tokens/s; it counts the embeddings and the whole vocabulary projection, so a sparse head's skipped work counts as
done) against a bf16 matmul peak measured in the same process and against the datasheet, its warm-up time
(compile included) and, compiled, the graphs torch compiled during warm-up and after it and the graph breaks.
`scripts/gpu_summary.py` turns the --benchmark-json file into results/gpu/ JSON. With --gpu-dry-run the same code
runs on CPU with a tiny model (sdpa: flex has no CPU backward; aot_eager): a check of this file, not a measurement.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

from mlm_bench.config import Settings, preset
from mlm_bench.data.encode import encode
from mlm_bench.modeling.model import build_model, isolate_packed_rows
from mlm_bench.seeding import seed_everything

# Dense bf16 peaks from NVIDIA's datasheets (no sparsity), FLOP/s, by a substring of torch's device name.
DATASHEET_BF16 = {"H200": 989.4e12, "H100 PCIe": 756.5e12, "H100": 989.4e12, "A100": 312e12}
PEAK_SIZE, DRY_PEAK_SIZE = 8192, 512
STEP_ROUNDS, WARMUP_ROUNDS = 30, 8  # the warm-up holds compilation (and any recompile for a changed row count)
DRY_SHAPE = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "vocab_size": None,
    "batch_size": 8,
    "max_length": 128,
    "eval_max_length": 128,
}

# Each variant: the preset it starts from and the fields it changes.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("seed-shape", {"packing": False, "sparse_head": False, "fused_adamw": False}),
    "packed-bf16": (
        "seed-shape",
        {"packing": True, "sparse_head": False, "bf16": "on", "tf32": "on", "fused_adamw": False},
    ),
    "fast": ("seed-shape-fast", {}),
    # fast's path at about packed-bf16's tokens per step (256 texts of ~94 tokens), uncompiled: on the H200, fast's
    # 64 texts (~6,000 tokens) took 32 ms for 4.7 ms of matmul work, so the step's size may be what it lacks.
    "fast-256-eager": ("seed-shape-fast", {"batch_size": 256, "torch_compile": "off"}),
}


@pytest.fixture(scope="module")
def dry_run(request: pytest.FixtureRequest) -> bool:
    dry = request.config.getoption("--gpu-dry-run")
    if not dry and not torch.cuda.is_available():
        pytest.skip("needs CUDA (the seed-shape workload is GPU-sized); --gpu-dry-run checks this file on CPU")
    return dry


@pytest.fixture(scope="module")
def measured_peak(dry_run: bool) -> dict[str, Any]:
    """bf16 matmul FLOP/s measured here (median of 20 products of square matrices)."""
    device = "cpu" if dry_run else "cuda"
    size = DRY_PEAK_SIZE if dry_run else PEAK_SIZE
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    times = []
    for _ in range(25):
        _synchronize(device)
        started = time.perf_counter()
        a @ b
        _synchronize(device)
        times.append(time.perf_counter() - started)
    median = sorted(times[5:])[len(times[5:]) // 2]
    return {"bf16_matmul_size": size, "bf16_flops_per_second": 2 * size**3 / median}


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def variant_settings(name: str, dry_run: bool) -> Settings:
    """The variant's preset with its fields; tiny and CPU-able for a dry run."""
    start, fields = VARIANTS[name]
    base = preset(start).replace(**fields)
    if not dry_run:
        return base.replace(device="cuda")
    dry = base.replace(device="cpu", bf16="off", tf32="off", **DRY_SHAPE)
    return dry.replace(attn_implementation="sdpa") if dry.speed.attn_implementation == "flex_attention" else dry


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gpu_train_step(benchmark, record, collator_for, optimizer_step, name, dry_run, measured_peak, train_texts,
                        corpus, tokenizer):  # fmt: skip
    """Non-pad tokens/s, MFU, warm-up and recompiles of one seed-shape optimizer step of this variant."""
    settings = variant_settings(name, dry_run)
    seed_everything(settings.training.seed, allow_tf32=settings.speed.tf32 != "off" and not dry_run)
    rows = encode(train_texts, corpus.text_column, tokenizer, settings)
    model = build_model(settings, tokenizer).to(settings.training.device)
    if settings.speed.flatten:
        isolate_packed_rows(model)
    compiled = settings.speed.torch_compile != "off"
    runner = torch.compile(model, backend="aot_eager" if dry_run else "inductor") if compiled else model
    collator = collator_for(settings, seed=settings.training.seed)
    size = settings.training.batch_size
    batches = [_on(settings.training.device, collator([dict(r) for r in rows.select(range(i, i + size))]))
               for i in range(0, len(rows) - size + 1, size)]  # fmt: skip
    assert batches, f"{len(rows)} rows are fewer than one batch of {size}"
    bf16 = settings.speed.bf16 != "off" and not dry_run
    _, step, seen = optimizer_step(runner, settings, rows, collator, STEP_ROUNDS + WARMUP_ROUNDS, bf16=bf16)
    order = [batches[i % len(batches)] for i in range(STEP_ROUNDS + WARMUP_ROUNDS)]
    counters.clear()
    started = time.perf_counter()
    for batch in order[:WARMUP_ROUNDS]:
        step(batch)
    warmup_seconds = time.perf_counter() - started
    graphs_after_warmup = counters["stats"]["unique_graphs"]
    timed = iter(order[WARMUP_ROUNDS:])
    benchmark.pedantic(step, setup=lambda: ((next(timed),), {}), rounds=STEP_ROUNDS, warmup_rounds=0)
    assert all(math.isfinite(x) for x in seen), seen
    nonpad = sum(int(b["attention_mask"].sum()) for b in order[WARMUP_ROUNDS:])
    tokens = sum(b["attention_mask"].numel() for b in order[WARMUP_ROUNDS:])
    seconds = sum(benchmark.stats.stats.data)
    per_second = nonpad / seconds
    flops = 6 * model.num_parameters() * per_second
    datasheet = _datasheet_peak(settings.training.device)
    record(
        samples=settings.training.batch_size,
        tokens=tokens // STEP_ROUNDS,
        nonpad_tokens=nonpad // STEP_ROUNDS,
        device=torch.device(settings.training.device),
        variant=name,
        dry_run=dry_run,
        losses={f"call_{i}": loss for i, loss in enumerate(seen)},
        nonpad_tokens_per_second_all_rounds=per_second,
        model_flops_per_second=flops,
        parameters=model.num_parameters(),
        measured_peak=measured_peak,
        mfu_vs_measured_peak=flops / measured_peak["bf16_flops_per_second"],
        datasheet_bf16_flops_per_second=datasheet,
        mfu_vs_datasheet=flops / datasheet if datasheet else None,
        warmup_steps=WARMUP_ROUNDS,
        warmup_seconds=warmup_seconds,
        compiled=compiled,
        graphs_compiled_in_warmup=graphs_after_warmup,
        graphs_compiled_after_warmup=counters["stats"]["unique_graphs"] - graphs_after_warmup,
        graph_breaks=sum(counters["graph_break"].values()),
        settings=settings.to_dict(),
    )
    if compiled:
        assert counters["stats"]["unique_graphs"] == graphs_after_warmup, "torch compiled again after the warm-up"


def _on(device: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _datasheet_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in DATASHEET_BF16.items() if key in name), None)
