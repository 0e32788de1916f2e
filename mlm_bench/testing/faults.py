"""Faults: every deliberate breakage the suite injects, each defined once, by name, with what it breaks.

A fault replaces one attribute (`where`, "module:Owner.attribute") with what its maker builds from the attribute as
it is (`make(original, *params)`; the maker's docstring says what it breaks). One definition, three ways in:

- a test of a test plants it counted, through the breakers fixture: `breakers.plant_fault(fault, *params)`
  (mlm_bench.testing.breakers: reached or not, `required` faults must be reached on every version set);
- a test that needs it uncounted (a class, a constant, code run in DataLoader workers) patches it for the test:
  `fault.apply(*params, patch=monkeypatch.setattr)`;
- a subprocess gets it as source that imports this registry and applies it (`fault.source(*params)`): the
  regression battery's sitecustomize.py (mlm_bench.studies.regression_battery), or `cli_script(fault, *params)`,
  the mlm-bench CLI with the fault applied (the kill and SIGTERM runs of tests/test_resume.py).

Not a pytest plugin and nothing imported at the top but torch, so a sitecustomize may import it before pytest starts;
a fault's target is imported only when it is applied.
"""

from __future__ import annotations

import errno
import functools
import importlib
import inspect
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

BERT = "transformers.models.bert.modeling_bert"
TRAIN = "mlm_bench.training.train"
FINGERPRINT = "mlm_bench.contract.fingerprint"


@dataclass(frozen=True)
class Fault:
    """One named breakage: the attribute it replaces and the maker of its replacement."""

    name: str
    where: str
    make: Callable[..., Any]
    required: bool = False  # a breaker its check must reach on every version set (public, stable code, or ours)

    def target(self) -> tuple[Any, str]:
        """The object holding the attribute this fault replaces (its module imported now), and the attribute's name."""
        module, _, path = self.where.partition(":")
        *owners, name = path.split(".")
        return functools.reduce(getattr, owners, importlib.import_module(module)), name

    def apply(self, *params: Any, patch: Callable[[Any, str, Any], Any] = setattr) -> None:
        """Puts the fault in place through `patch` (for good by default; monkeypatch.setattr undoes it after a test)."""
        owner, name = self.target()
        patch(owner, name, self.make(getattr(owner, name), *params))

    def source(self, *params: Any) -> str:
        """Python that applies this fault with `params` (their reprs) when run: a sitecustomize or a script's head."""
        return f"from mlm_bench.testing.faults import FAULTS\nFAULTS[{self.name!r}].apply(*{params!r})\n"


FAULTS: dict[str, Fault] = {}


def fault(name: str, where: str, required: bool = False) -> Callable[[Callable[..., Any]], Fault]:
    """Registers the decorated maker as the fault `name` on `where`, and returns that Fault in its place."""

    def register(make: Callable[..., Any]) -> Fault:
        if name in FAULTS:
            raise ValueError(f"two faults are named {name!r}")
        FAULTS[name] = Fault(name, where, make, required)
        return FAULTS[name]

    return register


def cli_script(injected: Fault, *params: Any) -> str:
    """A `python -c` script: the mlm-bench CLI on its arguments (sys.argv[1:]), `injected` applied first."""
    return injected.source(*params) + "import sys\nfrom mlm_bench import cli\nsys.exit(cli.main(sys.argv[1:]))\n"


def slowed(call: Callable[..., Any], fraction: float) -> Callable[..., Any]:
    """`call` made `fraction` slower: after each call, a busy wait of that fraction of the call's own time."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = call(*args, **kwargs)
        # Spin, not sleep: a sub-millisecond sleep overshoots (measured +30% for a planted 20%).
        until = time.perf_counter() + fraction * (time.perf_counter() - started)
        while time.perf_counter() < until:
            pass
        return out

    return slow


def _changed_default(post_init: Callable[[Any], None], field: str, old: Any, new: Any) -> Callable[[Any], None]:
    """`post_init` that then turns `field` from its default `old` to `new`, as a release changing a default would."""

    def changed(self: Any) -> None:
        post_init(self)
        if getattr(self, field) == old:
            setattr(self, field, new)

    return changed


# Library regressions, as a release could bring them: the regression battery runs the suite and the gate against
# each (mlm_bench.studies.regression_battery); tests of tests plant some of them too.


@fault("linear warmup one step ahead", "transformers.optimization:_get_linear_schedule_with_warmup_lr_lambda")
def warmup_ahead(lr_lambda: Callable[..., float]) -> Callable[..., float]:
    """The linear schedule's learning rate taken one step ahead."""
    return lambda step, **kwargs: lr_lambda(step + 1, **kwargs)


@fault("BERT attention ignores the padding mask", f"{BERT}:BertModel.forward", required=True)
def mask_dropped(forward: Callable[..., Any]) -> Callable[..., Any]:
    """BERT's encoder called without its attention mask, so real tokens attend to padding."""

    @functools.wraps(forward)
    def encode(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["attention_mask"] = None
        return forward(self, *args, **kwargs)

    return encode


@fault("tokenizer normalisation: NFKC becomes NFC", "tokenizers.normalizers:NFKC")
def nfc_for_nfkc(nfkc: type) -> type:
    """The NFKC normaliser replaced by NFC, so full-width and compatibility characters stay as they are."""
    from tokenizers.normalizers import NFC

    return NFC


@fault("BERT init std 0.01 instead of 0.02", f"{BERT}:BertPreTrainedModel._init_weights")
def init_std_halved(init_weights: Callable[..., Any]) -> Callable[..., Any]:
    """BERT's weights initialised with std 0.01 instead of the config's 0.02."""

    def init(self: Any, module: Any) -> Any:
        self.config.initializer_range = 0.01
        return init_weights(self, module)

    return init


@fault("collator selects 16% instead of 15%", "transformers:DataCollatorForLanguageModeling.__post_init__")
def selects_sixteen(post_init: Callable[[Any], None]) -> Callable[[Any], None]:
    """The library's MLM collator selecting 16% of tokens where 15% was asked."""
    return _changed_default(post_init, "mlm_probability", 0.15, 0.16)


@fault(
    "Trainer stops dividing the loss by gradient_accumulation_steps", "transformers:Trainer.compute_loss", required=True
)
def loss_not_divided(compute_loss: Callable[..., Any]) -> Callable[..., Any]:
    """Trainer's loss k times too large under k-step gradient accumulation."""

    @functools.wraps(compute_loss)
    def undivided(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = compute_loss(self, *args, **kwargs)
        k = self.args.gradient_accumulation_steps
        return out if k == 1 else (out[0] * k, *out[1:]) if isinstance(out, tuple) else out * k

    return undivided


@fault("default max_grad_norm silently 0 (no clipping)", "transformers:TrainingArguments.__post_init__")
def clipping_off_by_default(post_init: Callable[[Any], None]) -> Callable[[Any], None]:
    """TrainingArguments' default max_grad_norm 0 instead of 1, so nothing is clipped."""
    return _changed_default(post_init, "max_grad_norm", 1.0, 0.0)


@fault("weight decay applied to LayerNorm and biases", "transformers:Trainer.get_decay_parameter_names", required=True)
def decay_everything(names: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """Weight decay on every parameter, LayerNorm weights and biases too."""
    return lambda self, model: [name for name, _ in model.named_parameters()]


@fault("dropout left on under eval()", "torch.nn:Dropout.forward", required=True)
def dropout_in_eval(forward: Callable[..., Any]) -> Callable[..., Any]:
    """Dropout applied under eval() as under train()."""
    return lambda self, x: torch.nn.functional.dropout(x, self.p, True)


@fault("collator selects special tokens", "transformers:DataCollatorForLanguageModeling.torch_mask_tokens", True)
def specials_selectable(mask_tokens: Callable[..., Any]) -> Callable[..., Any]:
    """Masking told that no position is special, so [CLS], [SEP] and padding can be selected."""

    def mask(self: Any, inputs: torch.Tensor, special_tokens_mask: Any = None, **kwargs: Any) -> Any:
        return mask_tokens(self, inputs, special_tokens_mask=torch.zeros_like(inputs, dtype=torch.bool), **kwargs)

    return mask


@fault("weights saved in bfloat16", "transformers:PreTrainedModel.save_pretrained", required=True)
def saved_in_bfloat16(save_pretrained: Callable[..., Any]) -> Callable[..., Any]:
    """save_pretrained writing every weight rounded through bfloat16."""

    def save(self: Any, *args: Any, **kwargs: Any) -> Any:
        rounded = {key: value.to(torch.bfloat16).to(value.dtype) for key, value in self.state_dict().items()}
        return save_pretrained(self, *args, **{**kwargs, "state_dict": rounded})

    return save


@fault("decode drops the last token", "transformers:PreTrainedTokenizerBase.decode", required=True)
def decode_drops_last(decode: Callable[..., Any]) -> Callable[..., Any]:
    """decode() losing the last id of what it is given."""
    return lambda self, token_ids, *args, **kwargs: decode(self, list(token_ids)[:-1], *args, **kwargs)


@fault("default adam epsilon 1e-8 -> 1e-6", "transformers:TrainingArguments.__post_init__")
def adam_epsilon_changed(post_init: Callable[[Any], None]) -> Callable[[Any], None]:
    """TrainingArguments' default adam_epsilon 1e-6 instead of 1e-8."""
    return _changed_default(post_init, "adam_epsilon", 1e-8, 1e-6)


@fault("BERT forward 10% slower", f"{BERT}:BertForMaskedLM.forward")
def forward_slower(forward: Callable[..., Any], fraction: float = 0.1) -> Callable[..., Any]:
    """BERT's masked-LM forward `fraction` slower (10% unless the gate's calibration plants another)."""
    # Trainer reads the forward's signature: keep it, so only the speed changes.
    return functools.wraps(forward)(slowed(forward, fraction))


@fault("self-attention made causal (sdpa)", "torch.nn.functional:scaled_dot_product_attention", required=True)
def causal(sdpa: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Scaled dot-product attention that lets each token see only those before it."""

    @functools.wraps(sdpa)
    def attend(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        allowed = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
        if attn_mask is None:
            attn_mask = allowed
        elif attn_mask.dtype == torch.bool:
            attn_mask = attn_mask & allowed
        else:
            attn_mask = attn_mask.masked_fill(~allowed, torch.finfo(attn_mask.dtype).min)
        return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, **kwargs)

    return attend


@fault(
    "collator masks special and padding tokens (transformers#11155)",
    "transformers:DataCollatorForLanguageModeling.torch_mask_tokens",
)
def specials_masked(mask_tokens: Callable[..., Any]) -> Callable[..., Any]:
    """The library's MLM collator free to select [CLS], [SEP] and padding."""

    def select_any(self: Any, inputs: torch.Tensor, special_tokens_mask: Any = None, **kwargs: Any) -> Any:
        return mask_tokens(self, inputs, special_tokens_mask=torch.zeros_like(inputs, dtype=torch.bool), **kwargs)

    return select_any


@fault("SDPA attention dropout left on in eval (pytorch#124464)", "torch.nn.functional:scaled_dot_product_attention")
def sdpa_dropout_in_eval(sdpa: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Scaled dot-product attention dropping at least 10% of attention weights, in eval() too."""

    def attend(q, k, v, attn_mask=None, dropout_p=0.0, *args, **kwargs):
        return sdpa(q, k, v, attn_mask, max(dropout_p, 0.1), *args, **kwargs)

    return attend


@fault("BERT ignores position ids", f"{BERT}:BertEmbeddings.forward", required=True)
def positions_ignored(forward: Callable[..., Any]) -> Callable[..., Any]:
    """BERT's embeddings given position 0 for every token, so word order is lost."""

    @functools.wraps(forward)
    def embed(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids")
        ids = args[0] if ids is None else ids
        kwargs["position_ids"] = torch.zeros_like(ids)
        return forward(self, *args, **kwargs)

    return embed


# The library broken where only tests of tests plant it (tests/test_library.py). Accelerator clips on 4.57 and 5.x
# (required); torch's function clipped under it until accelerate 1.16.


def _norm_only(clip: Callable[..., Any]) -> Callable[..., Any]:
    """`clip` measuring the norm with max_norm infinite, so nothing is clipped."""
    signature = inspect.signature(clip)

    @functools.wraps(clip)
    def measure(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["max_norm"] = float("inf")
        return clip(*bound.args, **bound.kwargs)

    return measure


@fault("clipping skipped (Accelerator)", "accelerate:Accelerator.clip_grad_norm_", required=True)
def accelerator_clips_nothing(clip: Callable[..., Any]) -> Callable[..., Any]:
    """Accelerator measuring the gradient norm without clipping it."""
    return _norm_only(clip)


@fault("clipping skipped (torch)", "torch.nn.utils:clip_grad_norm_")
def torch_clips_nothing(clip: Callable[..., Any]) -> Callable[..., Any]:
    """torch measuring the gradient norm without clipping it."""
    return _norm_only(clip)


# This project's code broken as a regression of it would: each planted by the test of the test that must catch it.


@fault("rows not cut", f"{TRAIN}:cut_rows", required=True)
def rows_not_cut(cut_rows: Callable[..., Any]) -> Callable[..., Any]:
    """The short-row phase keeping whole rows."""
    return lambda batch, length: batch


@fault("loss averaged per micro-batch", f"{TRAIN}:masked_lm_loss", required=True)
def micro_batch_mean(loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The MLM loss averaged over each micro-batch alone, ignoring Trainer's count of the accumulated batch."""
    return lambda outputs, labels, num_items_in_batch=None: loss(outputs, labels)


@fault("training step reads its loss", f"{TRAIN}:MlmTrainer.training_step", required=True)
def step_reads_loss(training_step: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A training step that turns its loss into a float, reading the device every step (as train.py once did)."""

    def reading(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = training_step(self, *args, **kwargs)
        float(loss)
        return loss

    return reading


@fault("tally counts padding", f"{TRAIN}:_DeviceTally")
def tally_counts_padding(tally: type) -> type:
    """A token tally that counts padding as real tokens, as one summing mask.numel() would."""

    class CountsPadding(tally):
        @property
        def nonpad_tokens(self) -> int:
            return self.tokens

        @nonpad_tokens.setter
        def nonpad_tokens(self, value: Any) -> None:
            pass

    return CountsPadding


@fault("workers count batches alone", "torch.utils.data:get_worker_info")
def workers_unseen(get_worker_info: Callable[[], Any]) -> Callable[[], None]:
    """DataLoader workers that do not know their id, so each numbers its batches from its own count."""
    return lambda: None


@fault("resume offset lost", f"{TRAIN}:BatchSeededCollator")
def seeded_from_the_start(collator: type) -> type:
    """Batches seeded from index 0 again after a resume."""

    class FromTheStart(collator):
        def __init__(self, inner: Any, seed: int, start: int = 0) -> None:
            super().__init__(inner, seed, start=0)

    return FromTheStart


@fault("periodic eval drops the training loss", f"{TRAIN}:_PeriodicEval.on_step_end", required=True)
def eval_clears_should_log(on_step_end: Callable[..., None]) -> Callable[..., None]:
    """The periodic held-out pass leaving Trainer.log to clear should_log, dropping that step's training loss."""

    def clearing(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            self.trainer.log(self.score(self.trainer.model))
            self.trainer.model.train()

    return clearing


@fault("report_to forced off", f"{TRAIN}:extra_training_arguments", required=True)
def reports_nowhere(extra: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """report_to held at none whatever --trainer_args says (as before --trainer_args)."""
    return lambda settings: {**extra(settings), "report_to": "none"}


@fault("flattened cut keeps positions", "mlm_bench.data.collate:_restart_positions", required=True)
def positions_not_restarted(restart: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A cut of flattened rows copying the position ids as they were."""
    return lambda positions: positions


@fault("document mask ignores texts", "mlm_bench.modeling.model:_document_block_mask", required=True)
def document_mask_leaks(block_mask: Callable[..., Any]) -> Callable[..., Any]:
    """A flex BlockMask that lets every real key be seen across the texts packed in a row."""
    return lambda texts, real: block_mask(torch.zeros_like(texts), real)


@fault("flex dropout refusal removed", "mlm_bench.config:Settings._check_dropout", required=True)
def dropout_refusal_removed(check: Callable[[Any], None]) -> Callable[[Any], None]:
    """Settings taking attention dropout with flex_attention, which transformers then refuses mid-run."""
    return lambda self: None


@fault("batch_size has no interval", "mlm_bench.config:interval")
def batch_size_unbounded(interval: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """batch_size left out of the declared intervals, so 0 is taken."""
    return lambda name: None if name == "batch_size" else interval(name)


@fault("SIGTERM not repeated", "mlm_bench.runs.stop:REPEAT_SECONDS")
def sigterm_once(seconds: float) -> float:
    """SIGTERM raised once only, so one swallowed inside a callback is lost."""
    return 0


@fault("fingerprinted collator unmasks attention", f"{FINGERPRINT}:build_collator")
def attention_unmasked(build_collator: Callable[..., Any]) -> Callable[..., Any]:
    """The fingerprinted collator zeroing every attention mask: a masking contract violation."""
    from mlm_bench.data.collate import MlmCollator

    class UnmaskedAttention(MlmCollator):
        def torch_call(self, examples: list[Any]) -> Any:
            batch = super().torch_call(examples)
            batch["attention_mask"] = torch.zeros_like(batch["attention_mask"])
            return batch

    return lambda tokenizer, settings, seed: UnmaskedAttention(tokenizer, seed=seed)


@fault("assertion inside a library", f"{FINGERPRINT}:fingerprint")
def library_assertion(fingerprint: Callable[..., Any]) -> Callable[..., Any]:
    """Fingerprinting failing on an assert inside a library: a bug, not a contract violation."""

    def library_bug(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inside a library")

    return library_bug


@fault("fingerprint directory read-only", f"{FINGERPRINT}:save")
def fingerprint_unwritable(save: Callable[..., Any]) -> Callable[..., Any]:
    """Saving a fingerprint refused (the shipped set in a read-only site-packages)."""

    def read_only(payload: Any, directory: Any) -> None:
        raise PermissionError(13, "Permission denied")

    return read_only


# Runs stopped mid-way, as machines and people stop them: what resume and the error messages must survive.


def _before_step(training_step: Callable[..., Any], step: int, stop: Callable[[], None]) -> Callable[..., Any]:
    """`training_step` that first calls `stop` when the trainer is at global step `step`."""

    def stopping(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.state.global_step == step:
            stop()
        return training_step(self, *args, **kwargs)

    return stopping


def _interrupt() -> None:
    """What Ctrl-C raises."""
    raise KeyboardInterrupt


@fault("Ctrl-C after a step", f"{TRAIN}:MlmTrainer.training_step")
def interrupted_after(training_step: Callable[..., Any], step: int) -> Callable[..., Any]:
    """The run interrupted (KeyboardInterrupt) as it starts the step after global step `step`."""
    return _before_step(training_step, step, _interrupt)


@fault("SIGTERM after a step", f"{TRAIN}:MlmTrainer.training_step")
def terminated_after(training_step: Callable[..., Any], step: int) -> Callable[..., Any]:
    """The run sent SIGTERM (what schedulers and `kill` send) as it starts the step after global step `step`."""
    return _before_step(training_step, step, functools.partial(os.kill, os.getpid(), signal.SIGTERM))


@fault("SIGKILL while saving a checkpoint", "transformers:Trainer._save_rng_state")
def killed_while_saving(save_rng_state: Callable[..., None], step: int) -> Callable[..., None]:
    """The run SIGKILLed while checkpoint-`step` is half-written: weights, optimizer and scheduler on disk, RNG state
    and trainer_state.json not."""

    def kill_midway(self: Any, output_dir: str) -> None:
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        save_rng_state(self, output_dir)

    return kill_midway


@fault("training loss turns NaN", f"{TRAIN}:masked_lm_loss")
def loss_turns_nan(loss: Callable[..., torch.Tensor], step: int) -> Callable[..., torch.Tensor]:
    """The training loss NaN from the `step`-th loss computed on."""
    calls = []

    def nan_from(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        calls.append(1)
        value = loss(outputs, labels, num_items_in_batch)
        return value * float("nan") if len(calls) >= step else value

    return nan_from


@fault("disk full while saving weights", "transformers.modeling_utils:safe_save_file")
def disk_full_at(save: Callable[..., Any], call: int) -> Callable[..., Any]:
    """The `call`-th safetensors write finding the disk full (ENOSPC), the start of its file left behind."""
    calls = []

    def save_until_full(tensors: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(filename)
        if len(calls) == call:
            Path(filename).write_bytes(b"\0" * 1000)  # what a full disk leaves: the start of the file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return save(tensors, filename, *args, **kwargs)

    return save_until_full


@fault("optimizer save fails without an errno", "torch:save")
def zip_writer_fails(save: Callable[..., Any]) -> Callable[..., Any]:
    """torch.save of optimizer.pt failing as its zip writer does on a full disk: a RuntimeError with no errno."""

    def save_on_a_full_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if str(f).endswith("optimizer.pt"):
            Path(f).write_bytes(b"PK")  # the start of the zip it could not finish
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return save(obj, f, *args, **kwargs)

    return save_on_a_full_disk


@fault("disk reports no free space", "shutil:disk_usage")
def no_free_space(disk_usage: Callable[..., Any]) -> Callable[..., Any]:
    """Every disk 1 GiB, all of it used."""
    return lambda path: SimpleNamespace(total=2**30, used=2**30, free=0)


def move_mask_token(directory: Path) -> tuple[int, int]:
    """A tokenizer change saved into a model directory: [MASK] swaps ids with the next token of tokenizer.json's
    vocabulary (what a rebuilt vocabulary does); the old and new [MASK] ids."""
    path = directory / "tokenizer.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    vocab = saved["model"]["vocab"]
    old = vocab["[MASK]"]
    neighbour = next(token for token, token_id in vocab.items() if token_id == old + 1)
    vocab["[MASK]"], vocab[neighbour] = old + 1, old
    for added in saved["added_tokens"]:
        added["id"] = {"[MASK]": old + 1, neighbour: old}.get(added["content"], added["id"])
    path.write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
    return old, old + 1
