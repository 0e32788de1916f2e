"""Train: the library's Trainer with version-portable TrainingArguments and exact token counting."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments

from mlm_bench.config import Settings
from mlm_bench.errors import UsageError
from mlm_bench.model import sparse_mlm_loss

CUDA_OPTIONS = ("bf16", "tf32", "torch_compile")
# torch.compile works on CPU too, so only these are refused there.
CUDA_ONLY = ("bf16", "tf32")


def uses_cuda(settings: Settings) -> bool:
    """Whether this run trains on CUDA (device auto picks it when available)."""
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but CUDA is not available: pass --device cpu or auto")
    return settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())


def speed_options(settings: Settings) -> dict[str, bool]:
    """Each CUDA speed option resolved to on/off: auto follows the device; 'on' without CUDA is refused."""
    cuda = uses_cuda(settings)
    resolved = {}
    for name in CUDA_OPTIONS:
        value = getattr(settings, name)
        if value == "on" and not cuda and name in CUDA_ONLY:
            raise UsageError(
                f"--{name} on needs CUDA but this run trains on CPU: pass --{name} auto (on only with CUDA) or off"
            )
        resolved[name] = value == "on" or (value == "auto" and cuda)
    return resolved


def _sampling(settings: Settings) -> dict[str, Any]:
    # 5.x replaced group_by_length=True with train_sampling_strategy="group_by_length".
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length" if settings.group_by_length else "random"}
    return {"group_by_length": settings.group_by_length}


def training_arguments(settings: Settings, output_dir: Path) -> TrainingArguments:
    """TrainingArguments valid on 4.57 and 5.x: no overwrite_output_dir (5.x raises TypeError on it)."""
    options = speed_options(settings)
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.batch_size,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler_type,
        logging_steps=settings.logging_steps,
        seed=settings.seed,
        use_cpu=settings.device == "cpu",
        report_to="none",
        save_strategy="no",
        # Our rows already carry special_tokens_mask, which the collator reads; the model does not.
        remove_unused_columns=False,
        dataloader_num_workers=0,
        bf16=options["bf16"],
        # None leaves the TF32 flags as seeding.seed_everything set them.
        tf32=True if options["tf32"] else None,
        torch_compile=options["torch_compile"],
        optim="adamw_torch_fused" if settings.fused_adamw else "adamw_torch",
        **_sampling(settings),
    )


@dataclass
class TokenCounts:
    """Tokens the model saw in training: every position, and those that were not padding."""

    samples: int = 0
    tokens: int = 0
    nonpad_tokens: int = 0


class MlmTrainer(Trainer):
    """Trainer that counts the tokens it trains on and can use the sparse MLM head."""

    def __init__(self, *args: Any, sparse_head: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sparse_head = sparse_head
        self.counts = TokenCounts()

    def compute_loss(
        self, model: PreTrainedModel, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        if model.training:
            mask = inputs["attention_mask"]
            self.counts.samples += mask.shape[0]
            self.counts.tokens += mask.numel()
            self.counts.nonpad_tokens += int(mask.sum())
        if self.sparse_head and not return_outputs:
            return sparse_mlm_loss(model, inputs)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)


@dataclass(frozen=True)
class TrainSummary:
    """What training measured: throughput, padding waste and the loss curve."""

    steps: int
    runtime_seconds: float
    train_loss: float
    samples_per_second: float
    steps_per_second: float
    nonpad_tokens_per_second: float
    tokens_per_second: float
    pad_fraction: float
    total_flos: float
    world_size: int = 1
    speed_options: dict[str, bool] = field(default_factory=dict)
    loss_curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def train(
    model: PreTrainedModel, train_dataset: datasets.Dataset, collator: Any, settings: Settings, output_dir: Path
) -> TrainSummary:
    """Run Trainer.train and summarise it; checkpoints (if any) go under output_dir."""
    trainer = MlmTrainer(
        model=model,
        args=training_arguments(settings, output_dir),
        train_dataset=train_dataset,
        data_collator=collator,
        sparse_head=settings.sparse_head,
    )
    result = trainer.train()
    metrics = result.metrics
    runtime = metrics["train_runtime"]
    # Under DDP each rank counted its own batches; the throughput is that of all ranks together.
    local = torch.tensor([trainer.counts.samples, trainer.counts.tokens, trainer.counts.nonpad_tokens])
    summed = trainer.accelerator.reduce(local.to(trainer.args.device), reduction="sum").tolist()
    counts = TokenCounts(*(int(n) for n in summed))
    curve = [
        {"step": entry["step"], "loss": entry["loss"], "learning_rate": entry.get("learning_rate", math.nan)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return TrainSummary(
        steps=result.global_step,
        runtime_seconds=runtime,
        train_loss=result.training_loss,
        samples_per_second=metrics["train_samples_per_second"],
        steps_per_second=metrics["train_steps_per_second"],
        nonpad_tokens_per_second=counts.nonpad_tokens / runtime,
        tokens_per_second=counts.tokens / runtime,
        pad_fraction=1.0 - counts.nonpad_tokens / counts.tokens if counts.tokens else 0.0,
        total_flos=float(trainer.state.total_flos),
        world_size=trainer.args.world_size,
        speed_options=speed_options(settings),
        loss_curve=curve,
    )
