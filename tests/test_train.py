"""Training: a few seeded steps change the weights and lower the loss; the lr follows its schedule; speed settings
reach Trainer, and CUDA-only ones are refused on CPU, never dropped."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
import torch
from transformers import Trainer, TrainerCallback, default_data_collator

from mlm_bench.compat import groups_by_length
from mlm_bench.config import Settings, preset
from mlm_bench.contract.training import check_schedule, check_training_progress
from mlm_bench.data.collate import build_collator
from mlm_bench.errors import RunError, UsageError
from mlm_bench.modeling.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.testing import faults
from mlm_bench.training import train as train_module
from mlm_bench.training.train import MlmTrainer, TrainSummary, speed_options, train, training_arguments

STEPS, WARMUP = 6, 2


def expected_lr(scheduler: str, peak: float, step: int, warmup: int, total: int) -> float:
    """The learning rate of optimizer step `step` (1-based) written out from the schedules' definitions."""
    done = step - 1
    if done < warmup:
        return peak * done / warmup
    progress = (done - warmup) / (total - warmup)
    if scheduler == "linear":
        return peak * (1 - progress)
    if scheduler == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    return peak


@dataclass
class Trained:
    """A short seeded training run and what was measured around it."""

    summary: TrainSummary
    model: torch.nn.Module
    weights_before: dict[str, torch.Tensor]
    loss_before: float
    loss_after: float


def fixed_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.fixture(scope="module")
def trained(tokenizer, heldout_rows, tiny_settings, tmp_path_factory) -> Trained:
    """Six linear-schedule steps (2 warmup) of the tiny model on the held-out rows, at the settings' seed."""
    settings = tiny_settings.replace(max_steps=STEPS, warmup_steps=WARMUP, lr_scheduler_type="linear")
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    batch = build_collator(tokenizer, settings, seed=7)([dict(r) for r in heldout_rows.select(range(32))])
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    before = fixed_loss(model, batch)
    summary = train(model, heldout_rows, build_collator(tokenizer, settings), settings, tmp_path_factory.mktemp("t"))
    return Trained(summary, model, weights, before, fixed_loss(model, batch))


def test_training_changes_weights_and_lowers_loss(trained):
    """Six seeded steps change every parameter tensor and lower the loss on a fixed masked batch."""
    check_training_progress(trained.loss_before, trained.loss_after, trained.weights_before, trained.model)
    assert trained.summary.steps == STEPS
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in trained.summary.loss_curve)


def test_logged_lr_follows_the_linear_schedule(trained, tiny_settings):
    """The learning rate logged at every training step is linear warmup then linear decay to 0."""
    logged = [e["learning_rate"] for e in trained.summary.loss_curve]
    peak = tiny_settings.training.learning_rate
    check_schedule(logged, [expected_lr("linear", peak, s, WARMUP, STEPS) for s in range(1, STEPS + 1)])


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant_with_warmup"])
def test_configured_scheduler_step_by_step(tokenizer, tiny_settings, tmp_path, scheduler):
    """The Trainer built from our settings steps the configured scheduler exactly as its definition says."""
    settings = tiny_settings.replace(max_steps=STEPS, warmup_steps=WARMUP, lr_scheduler_type=scheduler)
    model = build_model(settings, tokenizer)
    trainer = MlmTrainer(model=model, args=training_arguments(settings, tmp_path))
    trainer.create_optimizer_and_scheduler(num_training_steps=STEPS)
    rates = []
    for _ in range(STEPS):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    peak = settings.training.learning_rate
    check_schedule(rates, [expected_lr(scheduler, peak, s, WARMUP, STEPS) for s in range(1, STEPS + 1)])


@pytest.mark.parametrize("name", ["bf16", "tf32"])
def test_cuda_only_options_are_refused_on_cpu(tiny_settings: Settings, name: str) -> None:
    with pytest.raises(UsageError, match=f"--{name} on needs CUDA.*pass --{name} auto"):
        speed_options(tiny_settings.replace(**{name: "on"}))


def test_flex_attention_is_refused_for_training_on_cpu(tiny_settings: Settings) -> None:
    with pytest.raises(UsageError, match=r"flex_attention cannot train on CPU .* pass --attn_implementation sdpa"):
        speed_options(tiny_settings.replace(attn_implementation="flex_attention"))


def test_auto_is_off_on_cpu_and_on_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_cpu = preset("fast", device="cpu")
    assert speed_options(fast_cpu) == {"bf16": False, "tf32": False, "torch_compile": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert speed_options(preset("fast", device="auto")) == {"bf16": True, "tf32": True, "torch_compile": True}
    assert speed_options(preset("tiny-zh", device="auto")) == {"bf16": False, "tf32": False, "torch_compile": False}


def test_speed_settings_reach_training_arguments(tiny_settings: Settings, tmp_path: Path) -> None:
    args = training_arguments(tiny_settings.replace(torch_compile="on"), tmp_path)
    assert (args.bf16, args.torch_compile, args.dataloader_pin_memory) == (False, True, False)
    assert args.optim == "adamw_torch_fused"
    args = training_arguments(tiny_settings.replace(fused_adamw=False), tmp_path)
    assert args.optim == "adamw_torch"


def test_group_by_length_reaches_the_sampler(tiny_settings: Settings, tmp_path: Path) -> None:
    grouped = training_arguments(tiny_settings.replace(packing=False, group_by_length=True), tmp_path)
    plain = training_arguments(tiny_settings, tmp_path)
    assert (groups_by_length(grouped), groups_by_length(plain)) == (True, False)


def test_flatten_trains_exactly_as_padded_batches(tokenizer, unpacked_rows, tiny_settings, tmp_path: Path) -> None:
    """flatten repeats the padded run (same rows, masks, loss) in another layout: after six steps every weight
    agrees to float rounding (1e-5), and fewer tokens were computed."""
    settings = tiny_settings.replace(packing=False, max_steps=STEPS, batch_size=16, short_row_length=0)
    runs = {}
    for flatten in (False, True):
        run = settings.replace(flatten=flatten)
        seed_everything(run.training.seed)
        model = build_model(run, tokenizer)
        summary = train(model, unpacked_rows, build_collator(tokenizer, run), run, tmp_path / str(flatten))
        runs[flatten] = (summary, dict(model.named_parameters()))
    (padded, padded_weights), (flat, flat_weights) = runs[False], runs[True]
    gaps = {name: float((flat_weights[name] - weight).detach().abs().max()) for name, weight in padded_weights.items()}
    assert max(gaps.values()) < 1e-5, max(gaps.items(), key=lambda item: item[1])
    assert math.isclose(flat.train_loss, padded.train_loss, rel_tol=1e-5)
    assert round(flat.nonpad_tokens_per_second * flat.runtime_seconds) == round(
        padded.nonpad_tokens_per_second * padded.runtime_seconds
    )
    assert flat.pad_fraction < padded.pad_fraction


class _RowWidths(TrainerCallback):
    """Width of the rows the model computed at each optimizer step (read by a forward pre-hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seen: list[int] = []
        self.widths: list[int] = []
        model.bert.register_forward_pre_hook(self._see, with_kwargs=True)

    def _see(self, _module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids")
        self.seen.append((args[0] if ids is None else ids).shape[1])

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.widths.append(self.seen[-1])


@pytest.mark.parametrize(
    ("length", "fraction", "steps", "expected"),
    [(8, 0.5, 4, [8, 8, 64, 64]), (16, 0.25, 8, [16, 16, 64, 64, 64, 64, 64, 64]), (0, 0.5, 2, [64, 64])],
)
def test_short_rows_come_first_then_whole_rows(
    tokenizer, heldout_rows, tiny_settings, tmp_path, length, fraction, steps, expected
) -> None:
    """The sequence-length schedule: the first round(fraction x max_steps) steps compute rows of short_row_length,
    the rest whole max_length rows, and the summary says how many were short."""
    settings = tiny_settings.replace(short_row_length=length, short_row_fraction=fraction, max_steps=steps)
    widths, summary = _row_widths(tokenizer, heldout_rows, settings, tmp_path)
    assert widths == expected
    assert summary.short_row_steps == expected.count(length)


def test_schedule_check_fails_when_rows_are_not_cut(tokenizer, heldout_rows, tiny_settings, tmp_path, breakers):
    """The check above reports a trainer that keeps whole rows throughout."""
    breakers.plant_fault(faults.rows_not_cut)
    widths, _ = _row_widths(tokenizer, heldout_rows, tiny_settings, tmp_path)
    assert widths != [8, 8, 64, 64]


def _row_widths(tokenizer, rows, settings: Settings, tmp_path: Path) -> tuple[list[int], TrainSummary]:
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    widths = _RowWidths(model)
    summary = train(model, rows, build_collator(tokenizer, settings), settings, tmp_path, callbacks=[widths])
    return widths.widths, summary


@pytest.fixture(scope="module")
def premasked_rows(tokenizer, heldout_rows, tiny_settings):
    """32 packed rows masked once (seeded), with as many targets as the masking drew: micro-batches hold different
    numbers of them, so only a loss normalised over the whole accumulated batch is invariant."""
    masked = build_collator(tokenizer, tiny_settings, seed=5)([dict(r) for r in heldout_rows.select(range(32))])
    counts = (masked["labels"] != -100).sum(dim=1)
    assert counts.unique().numel() > 1
    return datasets.Dataset.from_dict({k: masked[k].tolist() for k in ("input_ids", "attention_mask", "labels")})


def _accumulated_run(tokenizer, rows, settings: Settings, tmp_path: Path, accumulation: int) -> MlmTrainer:
    run = settings.replace(batch_size=16 // accumulation, gradient_accumulation_steps=accumulation)
    seed_everything(run.training.seed)
    trainer = MlmTrainer(
        model=build_model(run, tokenizer),
        args=training_arguments(run, tmp_path / str(accumulation)),
        train_dataset=rows,
        data_collator=default_data_collator,
        sparse_head=run.speed.sparse_head,
        sparse_capacity=run.speed.sparse_capacity,
    )
    trainer.train()
    return trainer


def check_accumulation(trainers: list[MlmTrainer]) -> None:
    """Every run's logged losses, grad norms (relative 1e-4: float sums in another grouping) and weights (1e-5)
    match the first's."""
    first, *others = trainers
    logged = [(e["loss"], e["grad_norm"]) for e in first.state.log_history if "loss" in e]
    weights = dict(first.model.named_parameters())
    for other in others:
        for (loss, norm), entry in zip(logged, [e for e in other.state.log_history if "loss" in e], strict=True):
            assert math.isclose(entry["loss"], loss, rel_tol=1e-4), f"loss {entry['loss']} vs {loss}"
            assert math.isclose(entry["grad_norm"], norm, rel_tol=1e-4), f"grad norm {entry['grad_norm']} vs {norm}"
        gap = max(float((p - weights[n]).detach().abs().max()) for n, p in other.model.named_parameters())
        assert gap < 1e-5, gap


@pytest.mark.parametrize("sparse_head", [True, False], ids=["sparse", "dense"])
def test_gradient_accumulation_trains_as_one_batch(tokenizer, premasked_rows, tiny_settings, tmp_path, sparse_head):
    """MlmTrainer normalises the loss by the targets of the whole accumulated batch (Trainer's count): 1 x 16,
    2 x 8 and 4 x 4 rows per step log the same losses and grad norms and end at the same weights, on 4.57 and 5.x
    alike (where the library's own BERT loss is k times too large on 5.x: tests/test_library.py)."""
    settings = tiny_settings.replace(max_steps=3, logging_steps=1, warmup_steps=0, sparse_head=sparse_head)
    check_accumulation([_accumulated_run(tokenizer, premasked_rows, settings, tmp_path, k) for k in (1, 2, 4)])


def test_accumulation_check_fails_with_per_micro_batch_means(tokenizer, premasked_rows, tiny_settings, tmp_path,
                                                             breakers) -> None:  # fmt: skip
    """The check above reports a loss that ignores Trainer's count and averages over each micro-batch alone."""
    breakers.plant_fault(faults.micro_batch_mean)
    settings = tiny_settings.replace(max_steps=3, logging_steps=1, warmup_steps=0)
    with pytest.raises(AssertionError):
        check_accumulation([_accumulated_run(tokenizer, premasked_rows, settings, tmp_path, k) for k in (1, 2)])


def test_fixed_width_sparse_head_trains_as_the_exact_one(tokenizer, premasked_rows, tiny_settings, tmp_path):
    """Half of each row is wider than any row's labels: the same losses, grad norms and weights as exact selection."""
    settings = tiny_settings.replace(max_steps=3, logging_steps=1, warmup_steps=0)
    runs = [settings, settings.replace(sparse_capacity=0.5)]
    trainers = [_accumulated_run(tokenizer, premasked_rows, run, tmp_path / str(i), 1) for i, run in enumerate(runs)]
    check_accumulation(trainers)


def test_a_row_overflowing_the_sparse_head_stops_the_run(tokenizer, premasked_rows, tiny_settings, tmp_path):
    settings = tiny_settings.replace(max_steps=3, logging_steps=1, warmup_steps=0, sparse_capacity=0.05)
    with pytest.raises(RunError, match=r"masked tokens fell outside the sparse head's width .* --sparse_capacity"):
        _accumulated_run(tokenizer, premasked_rows, settings, tmp_path, 1)


def test_resolved_optimizer_is_recorded(trained) -> None:
    resolved = trained.summary.optimizer
    assert (resolved["class"], resolved["betas"], resolved["eps"]) == ("AdamW", [0.9, 0.999], 1e-8)
    assert (resolved["max_grad_norm"], resolved["gradient_accumulation_steps"]) == (1.0, 1)


# Tensor methods that copy a value to the host: on CUDA each waits for every queued kernel.
HOST_READS = ("item", "tolist", "__float__", "__int__", "__bool__")


class _StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.step = 0

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.step = state.global_step + 1


def host_reads_by_step(monkeypatch, run) -> dict[int, list[str]]:
    """Calls `run(clock)` and returns, per optimizer step, the host reads made by the training loop: mlm_bench
    (but its collator, which reads host tensors before they reach the device), Trainer, accelerate and the fault
    registry (where the reading step of the test of the test below lives).

    The model's own forward is left out: transformers' masking_utils reads the padding mask in eager mode to skip
    an all-ones mask (a check torch.compile traces away)."""
    clock, reads = _StepClock(), {}
    package = Path(train_module.__file__).parent
    loop = (str(package), str(Path(Trainer.__module__.replace(".", "/"))), "/accelerate/", faults.__file__)
    data = str(package / "collate.py")

    def is_loop(caller: str) -> bool:
        return not caller.startswith(data) and any(part in caller for part in loop)

    def watch(name: str):
        original = getattr(torch.Tensor, name)

        def reading(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if is_loop(caller):
                reads.setdefault(clock.step, []).append(f"{name} from {Path(caller).name}")
            return original(self, *args, **kwargs)

        return reading

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, watch(name))
    run(clock)
    return reads


def _six_steps_logged_at_the_last(tokenizer, heldout_rows, tiny_settings, tmp_path, **changes):
    settings = tiny_settings.replace(max_steps=STEPS, logging_steps=STEPS, save_steps=0, **changes)
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    collator = build_collator(tokenizer, settings)
    return lambda clock: train(model, heldout_rows, collator, settings, tmp_path, callbacks=[clock])


def test_training_steps_read_nothing_back_from_the_device(
    tokenizer, heldout_rows, tiny_settings, tmp_path, monkeypatch
):
    """Loss, token counts and the non-finite check stay on the device between the steps Trainer logs or saves at:
    steps 1-5 of 6 read no tensor back to the host (on CUDA, each read would stall the host behind the GPU)."""
    run = _six_steps_logged_at_the_last(tokenizer, heldout_rows, tiny_settings, tmp_path)
    reads = host_reads_by_step(monkeypatch, run)
    assert not {step: where for step, where in reads.items() if 0 < step < STEPS}, reads
    assert reads.get(STEPS), "the last step logs, so it must read the loss: the watch saw nothing"


def test_host_read_check_fails_on_a_per_step_read(tokenizer, heldout_rows, tiny_settings, tmp_path, monkeypatch,
                                                   breakers):  # fmt: skip
    """Test of the test above: a step that turns its loss into a float (as train.py once did) is caught."""
    breakers.plant_fault(faults.step_reads_loss)
    run = _six_steps_logged_at_the_last(tokenizer, heldout_rows, tiny_settings, tmp_path)
    reads = host_reads_by_step(monkeypatch, run)
    assert all(reads.get(step) for step in range(1, STEPS)), reads


TRAINER_COUNTS = ["include_num_input_tokens_seen=non_padding"]


def test_trainers_own_token_count_reads_the_device_every_step(
    tokenizer, heldout_rows, tiny_settings, tmp_path, monkeypatch
):
    """Why the tally counts non-pad tokens, not Trainer: include_num_input_tokens_seen=non_padding reads its count
    back every step (`.item()`) on 4.57 and 5.x. A version that stops doing so fails this: then Trainer's count can
    replace the tally's."""
    run = _six_steps_logged_at_the_last(tokenizer, heldout_rows, tiny_settings, tmp_path, trainer_args=TRAINER_COUNTS)
    reads = host_reads_by_step(monkeypatch, run)
    assert all(any("trainer.py" in where for where in reads.get(step, [])) for step in range(1, STEPS)), reads


class _TokensSeen(TrainerCallback):
    def on_train_end(self, args, state, control, **kwargs) -> None:
        self.seen = state.num_input_tokens_seen


def test_tally_counts_the_non_padding_tokens_trainer_counts(tokenizer, unpacked_rows, tiny_settings, tmp_path):
    """The tally's non-pad count equals Trainer's own (include_num_input_tokens_seen=non_padding) on a padded run."""
    settings = tiny_settings.replace(max_steps=STEPS, save_steps=0, packing=False, trainer_args=TRAINER_COUNTS)
    seed_everything(settings.training.seed)
    seen = _TokensSeen()
    summary = train(build_model(settings, tokenizer), unpacked_rows, build_collator(tokenizer, settings), settings,
                    tmp_path, callbacks=[seen])  # fmt: skip
    assert 0 < summary.nonpad_tokens == seen.seen < summary.tokens, (summary.nonpad_tokens, seen.seen, summary.tokens)


def test_token_count_check_fails_on_a_tally_that_counts_padding(
    tokenizer, unpacked_rows, tiny_settings, tmp_path, monkeypatch
):
    """Test of the test above."""
    faults.tally_counts_padding.apply(patch=monkeypatch.setattr)  # a class: planted uncounted
    with pytest.raises(AssertionError):
        test_tally_counts_the_non_padding_tokens_trainer_counts(tokenizer, unpacked_rows, tiny_settings, tmp_path)


def test_trainer_args_reach_training_arguments_typed_by_the_library(tiny_settings, tmp_path) -> None:
    settings = tiny_settings.replace(trainer_args=["save_total_limit=3", "disable_tqdm=true", "report_to=none"])
    args = training_arguments(settings, tmp_path)
    assert (args.save_total_limit, args.disable_tqdm) == (3, True)
    assert training_arguments(tiny_settings, tmp_path).save_total_limit == 1  # mlm-bench's default otherwise


@pytest.mark.parametrize(("value", "expected"), [("non_padding", "non_padding"), ("true", "all"), ("no", "no")])
def test_a_str_or_bool_trainer_arg_takes_both(tiny_settings, tmp_path, value: str, expected: str) -> None:
    """HfArgumentParser alone types include_num_input_tokens_seen as bool and refuses non_padding."""
    settings = tiny_settings.replace(trainer_args=[f"include_num_input_tokens_seen={value}"])
    assert training_arguments(settings, tmp_path).include_num_input_tokens_seen == expected


def test_a_str_or_bool_trainer_arg_refuses_other_strings(tiny_settings, tmp_path) -> None:
    """5.x takes any string other than "no" as "count every token": a typo would count the padding too."""
    settings = tiny_settings.replace(trainer_args=["include_num_input_tokens_seen=non-padding"])
    with pytest.raises(UsageError, match="give true, false or one of all, non_padding, no"):
        training_arguments(settings, tmp_path)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("report_to", "takes KEY=VALUE items"),
        ("lerning_rate=1e-3", "has no field 'lerning_rate': did you mean learning_rate"),
        ("learning_rate=1e-3", "one of mlm-bench's settings sets it"),
        ("dataloader_persistent_workers=true", "mlm-bench fixes it"),
        ("save_only_model=true", "a resume needs the optimizer"),
        ("ignore_data_skip=true", "must skip the batches"),
        ("torch_compile_mode=max-autotune", "turns torch.compile on: pass --torch_compile on"),
        ("save_total_limit=abc", "--trainer_args: argument --save_total_limit"),
        ("report_to=none report_to=tensorboard", "gives report_to twice"),
        ("eval_strategy=steps", "with --eval_steps N"),
        ("resume_from_checkpoint=runs/a", "--resume continues a run"),
    ],
)
def test_trainer_args_refused_naming_the_fix(tiny_settings, tmp_path, item: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        training_arguments(tiny_settings.replace(trainer_args=item.split()), tmp_path)


def _loss_curve_with_workers(tokenizer, heldout_rows, tiny_settings, tmp_path, workers: int) -> list[float]:
    """12 steps of batch 8 over 32 rows: 4 batches an epoch, so three epoch boundaries."""
    settings = tiny_settings.replace(max_steps=12, logging_steps=1, trainer_args=[f"dataloader_num_workers={workers}"])
    seed_everything(settings.training.seed)
    model = build_model(settings, tokenizer)
    rows = heldout_rows.select(range(32))
    summary = train(model, rows, build_collator(tokenizer, settings), settings, tmp_path / str(workers))
    return [point["loss"] for point in summary.loss_curve]


def test_dataloader_workers_mask_exactly_as_the_main_process(tokenizer, heldout_rows, tiny_settings, tmp_path):
    """Each batch's masks are seeded by its index in the run, which a worker derives from its id: two workers train
    bit for bit as no worker does, across epoch boundaries."""
    alone = _loss_curve_with_workers(tokenizer, heldout_rows, tiny_settings, tmp_path, 0)
    assert _loss_curve_with_workers(tokenizer, heldout_rows, tiny_settings, tmp_path, 2) == alone


def test_worker_check_fails_when_workers_count_batches_alone(tokenizer, heldout_rows, tiny_settings, tmp_path,
                                                             monkeypatch):  # fmt: skip
    """Test of the test above: a worker that numbers its batches by its own count repeats the other's masks."""
    # Not a counted breaker: DataLoader workers call it in their own processes, where no count reaches this one.
    faults.workers_unseen.apply(patch=monkeypatch.setattr)
    alone = _loss_curve_with_workers(tokenizer, heldout_rows, tiny_settings, tmp_path, 0)
    assert _loss_curve_with_workers(tokenizer, heldout_rows, tiny_settings, tmp_path, 2) != alone
