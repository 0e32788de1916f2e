"""Model: a BERT built from a config, or a pretrained masked-LM; and the sparse MLM loss."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import extract_model_from_parallel
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mlm_bench.compat import block_mask_argument, packed_texts, restore_head_bias
from mlm_bench.config import Settings
from mlm_bench.errors import UsageError

IGNORE_INDEX = -100
# Attribute of the MLM head holding the positions the sparse loss needs; None outside `selecting`.
SELECTED = "_mlm_bench_selected"
# Marks an encoder that already carries the block-mask hook, so a second train() does not stack another.
ISOLATING = "_mlm_bench_isolating"


def build_model(settings: Settings, tokenizer: PreTrainedTokenizerBase) -> BertForMaskedLM:
    """A randomly initialised BERT of the configured size (seeded by the caller)."""
    vocab_size = settings.model.vocab_size or len(tokenizer)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=settings.model.hidden_size,
        num_hidden_layers=settings.model.num_hidden_layers,
        num_attention_heads=settings.model.num_attention_heads,
        intermediate_size=settings.model.intermediate_size,
        max_position_embeddings=max(512, settings.data.max_length),
        hidden_dropout_prob=settings.model.dropout,
        attention_probs_dropout_prob=settings.model.attention_dropout_prob,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=settings.model.tie_word_embeddings,
        attn_implementation=settings.speed.attn_implementation,
    )
    try:
        return BertForMaskedLM(config)
    except (ValueError, ImportError) as err:
        raise _attention_error(settings.speed.attn_implementation, err) from err


def _attention_error(name: str | None, err: Exception) -> UsageError:
    return UsageError(
        f"attention implementation {name!r} is not usable here ({str(err).splitlines()[0]}): "
        "pass --attn_implementation sdpa or eager"
    )


def load_model(
    name_or_path: str,
    allow_pickle: bool = False,
    attn_implementation: str | None = None,
    attention_dropout: float | None = None,
) -> PreTrainedModel:
    """A pretrained masked-LM from the Hub or a save_pretrained dir; never runs remote code, nor pickles unasked.
    `attention_dropout` replaces the model's own attention-probability dropout (None keeps it)."""
    directory = Path(name_or_path)
    if not allow_pickle and directory.is_dir() and not any(directory.glob("*.safetensors")):
        pickles = sorted(p.name for p in directory.glob("*.bin"))
        if pickles:
            raise UsageError(
                f"model directory {name_or_path!r} has weights only as pickle ({', '.join(pickles)}), and loading "
                "a pickle can run any code in it: convert it to safetensors (save_pretrained where you trust it), "
                "or pass --allow_pickle true if you trust its source"
            )
    kwargs: dict[str, Any] = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    try:
        if attention_dropout is not None:
            config = AutoConfig.from_pretrained(name_or_path)
            setattr(config, _attention_dropout_field(config, name_or_path), attention_dropout)
            kwargs["config"] = config
        model, loading = AutoModelForMaskedLM.from_pretrained(
            name_or_path, trust_remote_code=False, use_safetensors=None if allow_pickle else True,
            output_loading_info=True, **kwargs
        )  # fmt: skip
        restore_head_bias(model, loading["missing_keys"])  # a BERT 4.57 saved loads on 5.x without its output bias
        return model
    except ImportError as err:
        raise _attention_error(attn_implementation, err) from err
    except (OSError, ValueError) as err:
        if attn_implementation is not None and "attention" in str(err).lower():
            raise _attention_error(attn_implementation, err) from err
        raise UsageError(
            f"could not load model {name_or_path!r} ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "Fix: pass a save_pretrained directory with --model_name_or_path; offline, copy one from a "
            "machine with network"
        ) from err


# Where model configs keep the attention-probability dropout: BERT and RoBERTa, then DistilBERT and ModernBERT.
ATTENTION_DROPOUT = ("attention_probs_dropout_prob", "attention_dropout")


def attention_dropout_name(config: PretrainedConfig) -> str | None:
    """The config field of this model's attention dropout (None: none mlm-bench knows)."""
    return next((name for name in ATTENTION_DROPOUT if hasattr(config, name)), None)


def _attention_dropout_field(config: PretrainedConfig, name_or_path: str) -> str:
    """The config field of this model's attention dropout, or a UsageError when it has none we know."""
    found = attention_dropout_name(config)
    if found is None:
        raise UsageError(
            f"model {name_or_path!r} ({type(config).__name__}) has no attention dropout setting mlm-bench knows "
            f"({', '.join(ATTENTION_DROPOUT)}): drop --attention_dropout"
        )
    return found


def check_compatible(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
    """Refuse a model that cannot embed every token id, or position, the tokenizer will produce, or that flatten
    would give positions it does not number as BERT does."""
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise UsageError(
            f"tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab}: use the model's own "
            "tokenizer, or build the model with --vocab_size >= the tokenizer's size"
        )
    if settings.speed.flatten:
        check_flattenable(model)
    field = attention_dropout_name(model.config)
    dropout = getattr(model.config, field) if field else 0.0
    if settings.speed.attn_implementation == "flex_attention" and dropout > 0:
        raise UsageError(
            f"the model's attention dropout is {dropout} and flex_attention has none (transformers refuses it in "
            "training): pass --attention_dropout 0, or --attn_implementation sdpa"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and settings.data.max_length > positions:
        raise UsageError(
            f"max_length {settings.data.max_length} exceeds the model's {positions} position embeddings: "
            f"pass --max_length {positions} or less"
        )


def isolate_packed_rows(model: PreTrainedModel) -> None:
    """Make texts packed side by side in a row (as collate.FlatteningCollator packs them, positions from 0 in each)
    attend only within themselves, as if each were alone in its own padded row.

    BERT reads packing from position ids on neither 4.57 nor 5.x, so a pre-hook on the encoder turns them into a
    block-diagonal attention mask (compat.packed_texts: a new text wherever the positions do not go up by one).
    Under flex_attention (5.x) the mask is a BlockMask: cost grows with the texts' lengths, not the row's, which is
    what variable-length kernels give.
    """
    check_flattenable(model)
    if not getattr(model.base_model, ISOLATING, False):
        model.base_model.register_forward_pre_hook(_block_diagonal_mask, with_kwargs=True)
        setattr(model.base_model, ISOLATING, True)


def check_flattenable(model: PreTrainedModel) -> None:
    """Refuse flatten for a model that does not number positions from 0 as BERT does."""
    if model.config.model_type != "bert":
        # RoBERTa-like models number positions from padding_idx + 1: texts numbered from 0 would shift them all.
        raise UsageError(
            f"--flatten numbers each packed text's positions from 0, as BERT does, not as {type(model).__name__} "
            "does: pass --flatten false"
        )


def _block_diagonal_mask(
    module: PreTrainedModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    positions, padding = kwargs.get("position_ids"), kwargs.get("attention_mask")
    if positions is None or padding is None or padding.dim() != 2:
        return None
    # Padding tokens (position 0 after a text) each come out as a text of their own.
    rows = packed_texts(positions)
    # 5.x says "nothing packed" with None (in eager mode only). 4.57's all zeros get a mask equal to the padding
    # mask: asking the tensor whether any text is packed would stop torch.compile's graph there (a host read).
    if rows is None:
        return None
    if module.config._attn_implementation == "flex_attention":
        kwargs["attention_mask"] = _document_block_mask(rows, padding.bool())
        return args, kwargs
    # Each padding token still attends to itself: a query with no key at all would make SDPA return NaN. So no
    # row is ever fully blocked, and the -inf that finfo(float32).min becomes under bf16 autocast is harmless.
    keys = padding.bool()[:, None, :] | torch.eye(padding.shape[1], dtype=torch.bool, device=padding.device)
    allowed = (rows[:, :, None] == rows[:, None, :]) & keys
    kwargs["attention_mask"] = block_mask_argument(allowed, module.dtype)
    return args, kwargs


def mark_rows_dynamic(batch: dict[str, Any]) -> None:
    """Tell torch.compile that a batch's row count varies (flatten packs each batch into as many rows as its texts
    fill), so it compiles one graph for every count instead of one for the first and another once it changes."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            torch._dynamo.maybe_mark_dynamic(value, 0)


def _document_block_mask(texts: torch.Tensor, real: torch.Tensor) -> Any:
    """FlexAttention's document mask: a query attends to the real keys of its own text (and to itself, as the
    dense mask lets padding do); blocks of 128x128 with no allowed pair are skipped, not computed and masked."""
    # Imported here: torch < 2.5 has no flex_attention, and only this attention needs it.
    from torch.nn.attention.flex_attention import create_block_mask

    def same_text(batch: Any, head: Any, query: Any, key: Any) -> Any:
        return ((texts[batch, query] == texts[batch, key]) & real[batch, key]) | (query == key)

    length = texts.shape[1]
    return create_block_mask(same_text, B=texts.shape[0], H=None, Q_LEN=length, KV_LEN=length, device=texts.device)


@contextlib.contextmanager
def selecting(model: torch.nn.Module, labels: torch.Tensor, capacity: float = 0.0) -> Iterator[None]:
    """Within the block, the MLM head of `model` (or of the model a DDP/DataParallel wrapper holds) projects only
    the labelled positions: BERT's loss at a sixth of the head's compute at 15% masking, which transformers has no
    option for. The call still goes through `model` itself, so DDP and torch.compile wrappers act.

    With `capacity` > 0 the head takes a fixed share of each row's positions, labelled ones first (selected_first),
    so its shape never changes and torch.compile traces it without a graph break."""
    core = extract_model_from_parallel(model)
    if not hasattr(core, "cls") or not hasattr(core, "bert"):
        raise UsageError(
            f"--sparse_head supports BERT-family masked LMs, not {type(core).__name__}: pass --sparse_head false"
        )
    if not hasattr(core.cls, SELECTED):
        # Registered once, not per call: a new hook each step would make torch.compile recompile every step.
        core.cls.register_forward_pre_hook(_keep_selected)
    chosen = labels != IGNORE_INDEX
    # Rows marked dynamic (mark_rows_dynamic, torch's own marker), so are these: else one more compile.
    if getattr(labels, "_dynamo_weak_dynamic_indices", None):
        torch._dynamo.maybe_mark_dynamic(chosen, 0)
    setattr(core.cls, SELECTED, (chosen, head_width(labels.shape[-1], capacity)))
    try:
        yield
    finally:
        setattr(core.cls, SELECTED, None)


def head_width(row_length: int, capacity: float) -> int:
    """Positions per row the sparse head projects at this capacity (a share of the row, at most all of it); 0 for
    exactly the labelled ones, however many they are."""
    return min(math.ceil(capacity * row_length), row_length)


def selected_first(selected: torch.Tensor, width: int) -> torch.Tensor:
    """Per row, the indices of the first `width` positions with the selected ones first, in order: a fixed-shape
    stand-in for nonzero(), whose output size depends on the data."""
    return torch.sort(selected.to(torch.uint8), dim=-1, descending=True, stable=True).indices[..., :width]


def overflow(labels: torch.Tensor, capacity: float) -> torch.Tensor:
    """Labelled tokens beyond the sparse head's width in their row: left out of the loss, so a run must stop."""
    width = head_width(labels.shape[-1], capacity)
    if width == 0:
        return labels.new_zeros(())
    return ((labels != IGNORE_INDEX).sum(dim=-1) - width).clamp(min=0).sum()


def masked_lm_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Cross-entropy at the labelled positions: of the dense logits, of the sparse head's (one row per labelled
    position), or of a fixed-width head's (rows x width, labelled positions first). Given Trainer's count of
    labelled tokens over the accumulated micro-batches, it is the sum over this one divided by that count, so
    gradient accumulation adds up to the full batch's mean on every version.

    Trainer's `compute_loss_func`: BertForMaskedLM accepts num_items_in_batch through **kwargs on 5.x but drops it,
    so its own loss is k times too large under k-step accumulation (mlm_bench.contract.defects, bert-mlm-ga-loss).
    """
    logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
    if logits.dim() == 2:
        scores, targets = logits, labels[labels != IGNORE_INDEX]
    else:
        width = logits.shape[-2]
        targets = (
            labels if width == labels.shape[-1] else labels.gather(-1, selected_first(labels != IGNORE_INDEX, width))
        )
        scores, targets = logits.flatten(0, -2), targets.flatten()
    if num_items_in_batch is None:
        return F.cross_entropy(scores.float(), targets, ignore_index=IGNORE_INDEX)
    return F.cross_entropy(scores.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum") / num_items_in_batch


def sparse_mlm_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor], capacity: float = 0.0) -> torch.Tensor:
    """BERT's MLM loss with the vocabulary projection applied only at labelled positions (the same value)."""
    with selecting(model, inputs["labels"], capacity):
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
    return masked_lm_loss(outputs, inputs["labels"])


def _keep_selected(head: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
    """Pre-hook of the MLM head: only the selected hidden states reach it while a sparse loss is computed."""
    state = getattr(head, SELECTED)
    if state is None:
        return None
    selected, width = state
    hidden = args[0]
    # DataParallel scatters the inputs to its device; the labels the mask came from may still be elsewhere.
    selected = selected.to(hidden.device, non_blocking=True)
    if width == 0:
        return (hidden[selected], *args[1:])
    if width == hidden.shape[1]:
        return None
    index = selected_first(selected, width)
    return (hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1])), *args[1:])
