"""Compat: every difference between the transformers lines mlm-bench supports (4.57 and 5.x) that its code must
bridge, each with why and the versions it covers. Other modules and the tests ask here instead of checking versions.

Differences the project avoids rather than bridges are noted where they are avoided: TrainingArguments'
overwrite_output_dir (gone in 5.x: train.training_arguments never passes it), BertTokenizerFast(vocab_file=...)
(ignored by 5.x: tokenizer.build_tokenizer builds a tokenizers.Tokenizer), the collator's seed 0 (unseeded in 4.57:
collate.MlmCollator), and the upstream defects in mlm_bench/contract/defects.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch
import transformers
from transformers import TrainingArguments

# transformers' own masking_utils, not public API on either line: it is where both find packed texts.
from transformers.masking_utils import find_packed_sequence_indices

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])
# BERT takes attn_implementation="flex_attention" from 5.0 (4.57's BERT has no flex path).
BERT_HAS_FLEX_ATTENTION = TRANSFORMERS_MAJOR >= 5
# 5.x replaced TrainingArguments(group_by_length=True) with train_sampling_strategy="group_by_length".
_SAMPLING_STRATEGY = "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}


def sampling_arguments(group_by_length: bool) -> dict[str, Any]:
    """TrainingArguments keywords for random or length-grouped batches, in this version's spelling."""
    if _SAMPLING_STRATEGY:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}


def groups_by_length(args: TrainingArguments) -> bool:
    """Whether these TrainingArguments batch rows of similar length together, read back in either spelling."""
    return args.train_sampling_strategy == "group_by_length" if _SAMPLING_STRATEGY else args.group_by_length


def packed_texts(position_ids: torch.Tensor) -> torch.Tensor | None:
    """Per token, the index of its text in the row (a new text wherever positions do not go up by one); None when
    nothing is packed, which 5.x says in eager mode only and 4.57 says with all zeros (then returned as they are)."""
    return find_packed_sequence_indices(position_ids)


def block_mask_argument(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The attention_mask argument that makes BERT attend only where `allowed` (batch x query x key) is True:
    4.57 takes a 3D 0/1 mask and makes it additive itself (get_extended_attention_mask); 5.x passes a 4D mask
    through as it is and adds it to the scores."""
    if TRANSFORMERS_MAJOR < 5:
        return allowed.to(dtype)
    blocked = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )
    return blocked[:, None]


# 5.x saves a fast tokenizer's class as "TokenizersBackend", which 4.57 cannot load; both load this one.
_PORTABLE_TOKENIZER_CLASS = {"TokenizersBackend": "PreTrainedTokenizerFast"}


def portable_tokenizer_config(config: dict[str, Any]) -> dict[str, Any]:
    """tokenizer_config.json's content naming a tokenizer class that 4.57 and 5.x both load."""
    name = config.get("tokenizer_class")
    return {**config, "tokenizer_class": _PORTABLE_TOKENIZER_CLASS.get(name, name)} if name else config


HEAD_BIAS = "cls.predictions.decoder.bias"


def _untied_head_biases(model: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A BERT masked-LM head's `bias` and its decoder's bias where they are two tensors (5.x, untied embeddings),
    else None (4.57, tied embeddings, or no such head)."""
    head = getattr(getattr(model, "cls", None), "predictions", None)
    decoder_bias = getattr(getattr(head, "decoder", None), "bias", None)
    head_bias = getattr(head, "bias", None)
    return None if decoder_bias is None or head_bias is None or head_bias is decoder_bias else (head_bias, decoder_bias)


def portable_head_bias(model: Any) -> None:
    """5.x's BERT masked-LM head with untied embeddings keeps `cls.predictions.bias` apart from the decoder's bias
    and never uses it (registry: bert-untied-head-bias); 4.57 reads it as the decoder's. Set it to the decoder's
    before saving, so every version loads the trained bias (a no-op where the two are one tensor)."""
    biases = _untied_head_biases(model)
    if biases:
        with torch.no_grad():
            biases[0].copy_(biases[1])


def restore_head_bias(model: Any, missing: Iterable[str]) -> None:
    """5.x loading a BERT masked LM that 4.57 saved with untied embeddings finds no decoder bias (4.57 wrote its one
    output bias as `cls.predictions.bias`) and starts it at zero (registry: bert-untied-head-bias): take the saved
    one. A no-op where the decoder's bias was loaded or is that same tensor."""
    biases = _untied_head_biases(model)
    if biases and HEAD_BIAS in set(missing):
        with torch.no_grad():
            biases[1].copy_(biases[0])
