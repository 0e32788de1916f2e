"""Tokenizer: a char-level BERT tokenizer built from the corpus, or a pretrained one, checked for MLM."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from mlm_bench.compat import portable_tokenizer_config
from mlm_bench.errors import UsageError

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def build_tokenizer(texts: Iterable[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece vocabulary with no merges: every CJK character is its own token.

    Wrapped with PreTrainedTokenizerFast(tokenizer_object=...), never BertTokenizerFast(vocab_file=...):
    transformers 5.x silently ignores that vocab file (5-token vocab, every character [UNK]).
    """
    specials = list(SPECIAL_TOKENS.values())
    backend = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    # NFKC first: People's Daily writes digits and Latin full-width (１９９８); users type 1998.
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)]
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # vocab_size 0 keeps the alphabet alone: characters (and ##characters inside Latin/digit words).
    backend.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=0, special_tokens=specials))
    # The trainer numbers characters of equal count in hash-map order, which changes from process to process;
    # code-point order gives the same corpus the same ids in every run.
    trained = sorted(token for token in backend.get_vocab() if token not in specials)
    vocab = {token: i for i, token in enumerate([*specials, *trained])}
    backend.model = models.WordPiece(vocab, unk_token=SPECIAL_TOKENS["unk_token"])
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=model_max_length, **SPECIAL_TOKENS)


def check_mlm_tokenizer(tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Refuse tokenizers that cannot feed an MLM: no mask token, no pad token, or a near-empty vocab."""
    if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
        raise UsageError(
            f"tokenizer {name!r} has no mask token, so it cannot be used for masked-language modelling "
            "(decoder-only tokenizers such as bloom's have none): pass an encoder/BERT-style tokenizer "
            "with --tokenizer_name_or_path, or leave it unset to build one from the corpus"
        )
    if tokenizer.pad_token is None:
        raise UsageError(
            f"tokenizer {name!r} has no pad token: the collator cannot pad batches; pick a BERT-style tokenizer"
        )
    if len(tokenizer) <= len(SPECIAL_TOKENS):
        raise UsageError(
            f"tokenizer {name!r} has only {len(tokenizer)} tokens: its vocabulary did not load "
            "(transformers 5.x ignores BertTokenizerFast(vocab_file=...)); save it with save_pretrained "
            "and load that directory"
        )


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """A pretrained tokenizer from the Hub or a save_pretrained directory, checked for MLM use."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"could not load tokenizer {name_or_path!r} ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "Fix: pass a save_pretrained directory; offline, copy one from a machine with network"
        ) from err
    check_mlm_tokenizer(tokenizer, name_or_path)
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """save_pretrained, naming a tokenizer class both 4.57 and 5.x load (compat.portable_tokenizer_config)."""
    tokenizer.save_pretrained(str(directory))
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    portable = portable_tokenizer_config(config)
    if portable != config:
        config_path.write_text(json.dumps(portable, ensure_ascii=False, indent=2), encoding="utf-8")


def unk_rate(rows: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> float:
    """Share of non-special tokens that are [UNK]: a tokenizer that lost its vocabulary shows here."""
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    unk = total = 0
    for batch in rows.iter(batch_size=1000):
        for ids in batch["input_ids"]:
            kept = [i for i in ids if i not in special]
            total += len(kept)
            unk += sum(i == tokenizer.unk_token_id for i in kept)
    return unk / total if total else 0.0


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> dict[str, list[Any]]:
    """Each special token the tokenizer names, with its id (name -> [token, id]): what a model trained with it
    depends on, as results.json records it."""
    return {name: [str(getattr(tokenizer, name)), getattr(tokenizer, f"{name}_id")] for name in SPECIAL_TOKENS
            if getattr(tokenizer, name, None) is not None}  # fmt: skip
