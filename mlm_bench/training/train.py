"""Train: the library's Trainer with version-portable TrainingArguments and exact token counting."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from argparse import ArgumentTypeError
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import datasets
import torch
from transformers import HfArgumentParser, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.hf_argparser import string_to_bool
from transformers.integrations import get_available_reporting_integrations, get_reporting_integration_callbacks

from mlm_bench.compat import sampling_arguments
from mlm_bench.config import Settings
from mlm_bench.data.collate import BatchSeededCollator, cut_rows
from mlm_bench.errors import RunError, UsageError
from mlm_bench.modeling.model import isolate_packed_rows, mark_rows_dynamic, masked_lm_loss, overflow, selecting

CUDA_OPTIONS = ("bf16", "tf32", "torch_compile")
# Keys of the held-out figures logged during training (run.py's periodic eval writes them).
EVAL_PREFIX = "eval_"
# torch.compile works on CPU too, so only these are refused there.
CUDA_ONLY = ("bf16", "tf32")


def uses_cuda(settings: Settings) -> bool:
    """Whether this run trains on CUDA (device auto picks it when available)."""
    if settings.training.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but CUDA is not available: pass --device cpu or auto")
    return settings.training.device == "cuda" or (settings.training.device == "auto" and torch.cuda.is_available())


def speed_options(settings: Settings) -> dict[str, bool]:
    """Each CUDA speed option resolved to on/off: auto follows the device; 'on' without CUDA is refused."""
    cuda = uses_cuda(settings)
    if settings.speed.attn_implementation == "flex_attention" and not cuda:
        raise UsageError(
            "flex_attention cannot train on CPU (torch has no CPU backward for it): pass --attn_implementation sdpa"
        )
    resolved = {}
    for name in CUDA_OPTIONS:
        value = getattr(settings.speed, name)
        if value == "on" and not cuda and name in CUDA_ONLY:
            raise UsageError(
                f"--{name} on needs CUDA but this run trains on CPU: pass --{name} auto (on only with CUDA) or off"
            )
        resolved[name] = value == "on" or (value == "auto" and cuda)
    return resolved


def training_arguments(settings: Settings, output_dir: Path) -> TrainingArguments:
    """TrainingArguments valid on 4.57 and 5.x: no overwrite_output_dir (5.x raises TypeError on it)."""
    return TrainingArguments(**{**_set_by_settings(settings, output_dir), **extra_training_arguments(settings)})


def check_training_arguments(settings: Settings) -> None:
    """Build the TrainingArguments once before anything is loaded, so what the library refuses is refused now."""
    try:
        args = training_arguments(settings, Path("unused"))
    except UsageError:
        raise
    except ValueError as err:
        extra = settings.training.trainer_args
        given = f" with --trainer_args {' '.join(extra)}" if extra else ""
        raise UsageError(f"TrainingArguments refused these settings{given}: {err}") from err
    # Trainer itself refuses these, but only once it is built, after loading.
    try:
        get_reporting_integration_callbacks(args.report_to)
    except ValueError as err:  # a name transformers does not know
        raise UsageError(f"--trainer_args report_to: {err}") from err
    missing = sorted(set(args.report_to) - set(get_available_reporting_integrations()))
    if missing:
        raise UsageError(f"--trainer_args report_to={missing[0]}: its package is not installed: install it first")
    if args.dataloader_num_workers < 0:
        raise UsageError(f"--trainer_args dataloader_num_workers={args.dataloader_num_workers}: pass 0 or more")


# TrainingArguments that mlm-bench fixes, and why; --trainer_args may not change them.
FIXED_TRAINING_ARGUMENTS = {
    "output_dir": "checkpoints go under the run directory (--output-dir)",
    "remove_unused_columns": "the collator reads special_tokens_mask, which the model does not take",
    "dataloader_persistent_workers": "each epoch's workers must start from that epoch's first batch index",
    "save_only_model": "a resume needs the optimizer, scheduler and RNG state in every checkpoint",
    "save_safetensors": "checkpoints count as complete by their safetensors weights",
    "ignore_data_skip": "a resume must skip the batches it already trained on to repeat the run bit for bit",
    "resume_from_checkpoint": "--resume continues a run from its last complete checkpoint",
    **dict.fromkeys(
        ("eval_strategy", "eval_steps", "do_eval", "eval_on_start", "load_best_model_at_end", "metric_for_best_model"),
        "Trainer has no eval set here: mlm-bench scores its own held-out set during training with --eval_steps N",
    ),
}
# These switch torch.compile on by themselves: allowed only when the torch_compile setting has it on.
COMPILE_TUNING = ("torch_compile_mode", "torch_compile_backend")
# Defaults mlm-bench picks that --trainer_args may change: no setting of ours says otherwise.
TRAINING_DEFAULTS = ("report_to", "save_total_limit", "dataloader_pin_memory", "logging_nan_inf_filter")


def _set_by_settings(settings: Settings, output_dir: Path) -> dict[str, Any]:
    options = speed_options(settings)
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.training.batch_size,
        gradient_accumulation_steps=settings.training.gradient_accumulation_steps,
        max_grad_norm=settings.training.max_grad_norm,
        num_train_epochs=settings.training.num_train_epochs,
        max_steps=settings.training.max_steps,
        learning_rate=settings.training.learning_rate,
        warmup_steps=settings.training.warmup_steps,
        weight_decay=settings.training.weight_decay,
        lr_scheduler_type=settings.training.lr_scheduler_type,
        logging_steps=settings.training.logging_steps,
        seed=settings.training.seed,
        use_cpu=settings.training.device == "cpu",
        report_to="none",
        # Its check reads the loss back every step (a host sync); MlmTrainer's tally stops a non-finite run instead.
        logging_nan_inf_filter=False,
        save_strategy="steps" if settings.training.save_steps > 0 else "no",
        save_steps=settings.training.save_steps or 500,  # unused when saving is off, but must be positive
        # One complete checkpoint: Trainer deletes the older one only after the newer is written whole, so a kill
        # mid-save still leaves the previous one to resume from.
        save_total_limit=1,
        # Our rows already carry special_tokens_mask, which the collator reads; the model does not.
        remove_unused_columns=False,
        # Pinned memory only speeds host-to-GPU copies; on CPU torch warns that it is unused.
        dataloader_pin_memory=uses_cuda(settings),
        bf16=options["bf16"],
        # None leaves the TF32 flags as seeding.seed_everything set them.
        tf32=True if options["tf32"] else None,
        torch_compile=options["torch_compile"],
        optim="adamw_torch_fused" if settings.speed.fused_adamw else "adamw_torch",
        **sampling_arguments(settings.data.group_by_length),
    )


def extra_training_arguments(settings: Settings) -> dict[str, Any]:
    """settings.trainer_args as TrainingArguments keywords, typed by the library's own parser; a malformed item,
    an unknown field or one the settings already set is refused naming the fix."""
    if not settings.training.trainer_args:
        return {}
    pairs = [item.partition("=") for item in settings.training.trainer_args]
    malformed = [key + eq + value for key, eq, value in pairs if not key or not eq]
    if malformed:
        raise UsageError(f"--trainer_args takes KEY=VALUE items, got {malformed[0]!r}: e.g. report_to=tensorboard")
    keys = [key for key, _, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UsageError(f"--trainer_args gives {repeated[0]} twice: give each field once")
    known = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    from_settings = (
        set(_set_by_settings(settings, Path("unused"))) - set(FIXED_TRAINING_ARGUMENTS) - set(TRAINING_DEFAULTS)
    )
    for key, _, _ in pairs:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f": did you mean {close[0]}?" if close else ": see TrainingArguments in the transformers docs"
            raise UsageError(f"--trainer_args {key}: TrainingArguments has no field {key!r}{hint}")
        if key in FIXED_TRAINING_ARGUMENTS:
            raise UsageError(f"--trainer_args {key}: mlm-bench fixes it ({FIXED_TRAINING_ARGUMENTS[key]})")
        if key in COMPILE_TUNING and not speed_options(settings)["torch_compile"]:
            raise UsageError(f"--trainer_args {key} turns torch.compile on: pass --torch_compile on with it")
        if key in from_settings:
            raise UsageError(
                f"--trainer_args {key}: one of mlm-bench's settings sets it: use that setting (`mlm-bench run "
                "--help`), so results.json records the value once"
            )
    return _typed({key: value for key, _, value in pairs})


def _typed(items: dict[str, str]) -> dict[str, Any]:
    """TrainingArguments values from strings, by the library's parser; it types a str-or-bool field as bool alone
    (include_num_input_tokens_seen=non_padding fails there), so such a field takes a bool or else the string."""
    hints = typing.get_type_hints(TrainingArguments)
    either = {key for key in items if {str, bool} <= set(typing.get_args(hints[key]))}
    argv = ["--output_dir", "unused", *(part for key in items.keys() - either for part in (f"--{key}", items[key]))]
    parsed, _ = _TrainerArgsParser(TrainingArguments).parse_known_args(argv)
    return {key: _bool_or_string(key, value) if key in either else getattr(parsed, key) for key, value in items.items()}


# The string values of TrainingArguments' str-or-bool fields (the library checks none of them).
STR_OR_BOOL_CHOICES = {"include_num_input_tokens_seen": ("all", "non_padding", "no")}


def _bool_or_string(key: str, value: str) -> bool | str:
    try:
        return string_to_bool(value)
    except ArgumentTypeError:
        choices = STR_OR_BOOL_CHOICES.get(key)
        if choices and value not in choices:
            raise UsageError(f"--trainer_args {key}={value}: give true, false or one of {', '.join(choices)}") from None
        return value


class _TrainerArgsParser(HfArgumentParser):
    """The library's parser of TrainingArguments, whose errors come back as one line, not a usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"--trainer_args: {message}")


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite: every later step would only train on garbage."""


class _DeviceTally:
    """What training adds up step by step, kept on the device: reading a GPU value stalls the host until the GPU
    catches up, so they are read only where the Trainer reads its own (logging, saving) and at the end."""

    def __init__(self, capacity: float = 0.0) -> None:
        self.capacity = capacity  # the sparse head's width, for the message when a row overflows it
        self.tokens = 0  # from shapes: known on the host without asking the device
        self.nonpad_tokens: torch.Tensor | int = 0
        self.loss_sum: torch.Tensor | float = 0.0
        self.nonfinite: torch.Tensor | None = None  # step, loss and learning rate of the first non-finite loss
        self.dropped: torch.Tensor | int = 0  # labelled tokens past the sparse head's width (model.overflow)

    def add_loss(self, loss: torch.Tensor, step: int, learning_rate: float) -> None:
        # float64: a float32 sum drifts over a long run; Trainer's own sum was a Python float.
        loss = loss.detach().double()
        if self.nonfinite is None:
            self.nonfinite = torch.full((3,), -1.0, device=loss.device)
        first = ~torch.isfinite(loss) & (self.nonfinite[0] < 0)
        # full_like fills on the device; torch.tensor(step, device=...) would copy from the host every step.
        here = torch.stack([torch.full_like(loss, step), loss, torch.full_like(loss, learning_rate)])
        self.nonfinite = torch.where(first, here, self.nonfinite)
        self.loss_sum = self.loss_sum + loss

    def check(self) -> None:
        """Raise NonFiniteLossError naming the first step whose loss was not finite, or a RunError if a row had more
        labels than the sparse head's width (reads the device). Under DDP every rank raises when any rank must, so
        none is left waiting in the next collective."""
        if self.nonfinite is None:
            return
        dropped = int(self.dropped)
        step, value, learning_rate = self.nonfinite.tolist()
        # Every rank joins the collective before any raises.
        anywhere = _any_rank_flags(self.nonfinite.device, dropped > 0 or step >= 0)
        if dropped:
            raise RunError(
                f"{dropped} masked tokens fell outside the sparse head's width ({self.capacity:g} of each row) and "
                "were left out of the loss: raise --sparse_capacity, or pass 0 for exactly the masked ones"
            )
        if step >= 0:
            raise NonFiniteLossError(
                f"training loss is {value} at step {int(step)} (learning rate {learning_rate:.3g}): "
                "lower --learning_rate or raise --warmup_steps, then start over"
            )
        if anywhere:
            raise RunError("another rank's loss was not finite or overflowed the sparse head: its log says which")


def _any_rank_flags(device: torch.device, flagged: bool) -> bool:
    """Whether any DDP rank flagged (always this rank's own answer outside DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flagged
    found = torch.tensor([float(flagged)], device=device)
    torch.distributed.all_reduce(found, op=torch.distributed.ReduceOp.MAX)
    return bool(found.item())


class _StopOnBadLoss(TrainerCallback):
    """Checks the loss where Trainer is about to log or save, so no checkpoint after the last good step exists."""

    def __init__(self, tally: _DeviceTally) -> None:
        self.tally = tally

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_log or control.should_save or control.should_evaluate or state.global_step >= state.max_steps:
            self.tally.check()

    def on_epoch_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.tally.check()


class _EpochSeeds(TrainerCallback):
    """Tells the batch-seeded collator where each epoch's batches start, before the epoch's loader (and its
    workers) starts: the run's first batch index (past a resume's), then the start of each following epoch."""

    def __init__(self, collator: BatchSeededCollator) -> None:
        self.collator = collator
        self.next_first = collator.first

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        per_epoch = len(kwargs["train_dataloader"])
        self.collator.start_epoch(self.next_first)
        self.next_first = (self.next_first // per_epoch + 1) * per_epoch


class _PeriodicEval(TrainerCallback):
    """Every `every` optimizer steps, `score(model)` into Trainer's log, so reporters and log_history get it."""

    def __init__(self, trainer: Trainer, score: Callable[[PreTrainedModel], dict[str, float]], every: int) -> None:
        self.trainer, self.score, self.every = trainer, score, every

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            model, should_log = self.trainer.model, control.should_log
            self.trainer.log(self.score(model))
            # Trainer.log clears should_log, which would drop this step's training loss from the log.
            control.should_log = should_log
            model.train()


class MlmTrainer(Trainer):
    """Trainer that counts the tokens it trains on, stops on a non-finite loss, can use the sparse MLM head, and
    computes the masked-LM loss itself (`model.masked_lm_loss`), right under gradient accumulation on 4.57 and 5.x."""

    def __init__(
        self,
        *args: Any,
        sparse_head: bool = False,
        sparse_capacity: float = 0.0,
        short_rows: tuple[int, float] | None = None,
        rows_vary: bool = False,
        periodic_eval: tuple[Callable[[PreTrainedModel], dict[str, float]], int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, compute_loss_func=masked_lm_loss, **kwargs)
        self.sparse_head = sparse_head
        self.short_rows = short_rows
        self.rows_vary = rows_vary  # flatten: each batch's row count is its own
        self.sparse_capacity = sparse_capacity
        self.tally = _DeviceTally(sparse_capacity)
        self.add_callback(_StopOnBadLoss(self.tally))
        if periodic_eval is not None:
            self.add_callback(_PeriodicEval(self, *periodic_eval))

    @property
    def short_row_steps(self) -> int:
        """Optimizer steps trained on short rows: the first short_row_fraction of this run's max_steps."""
        return 0 if self.short_rows is None else round(self.short_rows[1] * self.state.max_steps)

    def training_step(self, model: PreTrainedModel, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        loss = super().training_step(model, inputs, *args, **kwargs)
        # Trainer's logging_nan_inf_filter would hide a NaN step from the logged loss; the tally stops the run.
        self.tally.add_loss(loss, self.state.global_step + 1, self.optimizer.param_groups[0]["lr"])
        return loss

    def compute_loss(
        self, model: PreTrainedModel, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        if model.training and self.state.global_step < self.short_row_steps:
            inputs = cut_rows(inputs, self.short_rows[0])
        if model.training:
            mask = inputs["attention_mask"]
            self.tally.tokens += mask.numel()
            self.tally.nonpad_tokens = self.tally.nonpad_tokens + mask.sum()
        # A copy: Trainer's compute_loss pops `labels` from the dict it is given, and a caller may reuse its batch.
        inputs = dict(inputs)
        if self.rows_vary and self.args.torch_compile:
            mark_rows_dynamic(inputs)  # on the device copies: marks do not survive a .to(device)
        if not self.sparse_head or return_outputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        if model.training:
            self.tally.dropped = self.tally.dropped + overflow(inputs["labels"], self.sparse_capacity)
        with selecting(model, inputs["labels"], self.sparse_capacity):
            return super().compute_loss(model, inputs, **kwargs)


def resolved_optimizer(trainer: Trainer) -> dict[str, Any]:
    """What Trainer made of the settings and its own defaults: the optimizer's class and hyperparameters, which
    parameters it decays, clipping, schedule and accumulation. Recorded, so a changed library default shows."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    names = {id(p): name for name, p in trainer.model.named_parameters()}
    undecayed = sorted(
        {_kind(names[id(p)]) for group in optimizer.param_groups if not group["weight_decay"] for p in group["params"]}
    )
    first, args = optimizer.param_groups[0], trainer.args
    return {
        "class": type(optimizer).__name__,
        "learning_rate": first.get("initial_lr", first["lr"]),
        "betas": list(first.get("betas", [])),
        "eps": first.get("eps"),
        "weight_decay": max(group["weight_decay"] for group in optimizer.param_groups),
        "undecayed_parameters": undecayed,
        "fused": first.get("fused"),
        "max_grad_norm": args.max_grad_norm,
        "lr_scheduler": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warmup_steps": args.warmup_steps,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
    }


def _kind(name: str) -> str:
    """A parameter's kind, its name without the layer it sits in: "LayerNorm.weight", "bias", ..."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if "LayerNorm" in name else parts[-1]


@dataclass(frozen=True)
class TrainSummary:
    """What training measured: throughput, padding waste and the loss curve."""

    steps: int
    resumed_from_step: int
    runtime_seconds: float
    train_loss: float
    samples_per_second: float
    steps_per_second: float
    nonpad_tokens_per_second: float
    tokens_per_second: float
    pad_fraction: float
    total_flos: float
    # Tokens this call trained on, all ranks together: row positions, and those that are not padding.
    tokens: int = 0
    nonpad_tokens: int = 0
    world_size: int = 1
    short_row_steps: int = 0
    speed_options: dict[str, bool] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    # Held-out figures logged during training (settings.eval_steps): each entry's step and its logged values.
    eval_curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _eval_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [
        {key: value for key, value in entry.items() if key == "step" or key.startswith(EVAL_PREFIX)}
        for entry in log_history
        if any(key.startswith(EVAL_PREFIX) for key in entry)
    ]


def _loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [
        {"step": entry["step"], "loss": entry["loss"], "learning_rate": entry.get("learning_rate", math.nan)}
        for entry in log_history
        if "loss" in entry
    ]


def _finished(model: PreTrainedModel, checkpoint: Path, state: dict[str, Any]) -> TrainSummary:
    """A checkpoint of the last step: take its weights as they are, since Trainer would train one step more."""
    model.load_state_dict(type(model).from_pretrained(str(checkpoint)).state_dict())
    return TrainSummary(
        steps=state["global_step"],
        resumed_from_step=state["global_step"],
        runtime_seconds=0.0,
        train_loss=math.nan,
        samples_per_second=math.nan,
        steps_per_second=math.nan,
        nonpad_tokens_per_second=math.nan,
        tokens_per_second=math.nan,
        pad_fraction=math.nan,
        total_flos=float(state["total_flos"]),
        loss_curve=_loss_curve(state["log_history"]),
        eval_curve=_eval_curve(state["log_history"]),
    )


def _short_rows(settings: Settings) -> tuple[int, float] | None:
    """(length, fraction) of the short-row phase, or None without one."""
    if not settings.data.short_row_length:
        return None
    return settings.data.short_row_length, settings.data.short_row_fraction


def train(
    model: PreTrainedModel,
    train_dataset: datasets.Dataset,
    collator: Any,
    settings: Settings,
    output_dir: Path,
    resume_from: Path | None = None,
    callbacks: list[TrainerCallback] | None = None,
    periodic_eval: Callable[[PreTrainedModel], dict[str, float]] | None = None,
) -> TrainSummary:
    """Run Trainer.train (from a checkpoint if given) and summarise it; checkpoints go under output_dir.

    Throughput and train_loss cover the steps this call ran: after a resume, those past resumed_from_step.
    """
    args = training_arguments(settings, output_dir)
    resumed_from_step = 0
    if resume_from is not None:
        state = json.loads((resume_from / "trainer_state.json").read_text(encoding="utf-8"))
        resumed_from_step = state["global_step"]
        # Trainer 4.57 and 5.x both run one extra step when resumed from the last one.
        if resumed_from_step >= state["max_steps"] > 0:
            summary = _finished(model, resume_from, state)
            model.to(args.device)
            return summary
    if settings.speed.flatten:
        isolate_packed_rows(model)
    # Each DDP rank masks its own batches from its own stream.
    start = resumed_from_step * args.gradient_accumulation_steps
    seeded = BatchSeededCollator(collator, settings.training.seed + args.process_index, start=start)
    trainer = MlmTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=seeded,
        sparse_head=settings.speed.sparse_head,
        sparse_capacity=settings.speed.sparse_capacity,
        short_rows=_short_rows(settings),
        rows_vary=settings.speed.flatten,
        periodic_eval=(periodic_eval, settings.eval.eval_steps) if periodic_eval and settings.eval.eval_steps else None,
        callbacks=[_EpochSeeds(seeded), *(callbacks or [])],
    )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return _summary(trainer, result, settings, resumed_from_step)


def _summary(trainer: MlmTrainer, result: Any, settings: Settings, resumed_from_step: int) -> TrainSummary:
    """What Trainer.train returned and the trainer's tally, as the steps this call ran measured them."""
    metrics = result.metrics
    steps_run = result.global_step - resumed_from_step
    runtime = metrics["train_runtime"]
    # Under DDP each rank counted its own batches; the throughput is that of all ranks together.
    tally = trainer.tally
    local = torch.tensor([tally.tokens, int(tally.nonpad_tokens)], device=trainer.args.device)
    tokens, nonpad_tokens = (int(n) for n in trainer.accelerator.reduce(local, reduction="sum").tolist())
    return TrainSummary(
        steps=result.global_step,
        resumed_from_step=resumed_from_step,
        runtime_seconds=runtime,
        # Trainer 4.57 divides a resumed run's loss sum by all steps, 5.x by those run: ours is the same on both.
        train_loss=float(tally.loss_sum) / steps_run if steps_run else math.nan,
        samples_per_second=metrics["train_samples_per_second"],
        steps_per_second=metrics["train_steps_per_second"],
        nonpad_tokens_per_second=nonpad_tokens / runtime,
        tokens_per_second=tokens / runtime,
        pad_fraction=1.0 - nonpad_tokens / tokens if tokens else 0.0,
        total_flos=float(trainer.state.total_flos),
        tokens=tokens,
        nonpad_tokens=nonpad_tokens,
        loss_curve=_loss_curve(trainer.state.log_history),
        eval_curve=_eval_curve(trainer.state.log_history),
        world_size=trainer.args.world_size,
        short_row_steps=trainer.short_row_steps,
        speed_options=speed_options(settings),
        optimizer=resolved_optimizer(trainer),
    )
