"""Tokenizer: built from the corpus, round-trips through save_pretrained, refuses what cannot feed an MLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from mlm_bench.data.tokenizer import (
    SPECIAL_TOKENS,
    build_tokenizer,
    check_mlm_tokenizer,
    load_tokenizer,
    save_tokenizer,
    unk_rate,
)
from mlm_bench.errors import UsageError


def test_vocab_is_every_character_of_the_corpus(tokenizer, corpus) -> None:
    chars = {c for text in corpus.train["completion"][:2000] for c in text if "\u4e00" <= c <= "\u9fff"}
    vocab = tokenizer.get_vocab()
    assert chars <= set(vocab)
    assert 4000 < len(tokenizer) < 6000  # 4.7K characters: no merges, no lost vocabulary
    assert all(vocab[t] < 5 for t in SPECIAL_TOKENS.values())


def test_cjk_characters_are_single_tokens_and_width_is_normalised(tokenizer) -> None:
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("今天心情很好，１９９８年")["input_ids"])
    assert tokens == ["[CLS]", "今", "天", "心", "情", "很", "好", ",", "1", "##9", "##9", "##8", "年", "[SEP]"]


def test_heldout_unk_rate_is_below_half_a_percent(tokenizer, heldout_rows) -> None:
    assert unk_rate(heldout_rows, tokenizer) < 0.005


def test_unk_rate_sees_a_lost_vocabulary(tokenizer, heldout_rows) -> None:
    empty = build_tokenizer([], model_max_length=64)
    rows = heldout_rows.map(lambda r: {"input_ids": empty(r["input_ids"] and "今天心情很好")["input_ids"]})
    assert unk_rate(rows, empty) == 1.0


def test_saved_tokenizer_loads_identically(tmp_path: Path, tokenizer) -> None:
    save_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # loadable by transformers 4.57 and 5.x
    loaded = load_tokenizer(str(tmp_path))
    text = ["今天[MASK]情很好", "中共中央总书记、国家主席江泽民。ABC 123"]
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (len(loaded), loaded.mask_token_id) == (len(tokenizer), tokenizer.mask_token_id)
    assert AutoTokenizer.from_pretrained(str(tmp_path)).get_vocab() == tokenizer.get_vocab()


def test_tokenizer_without_mask_token_is_refused(tmp_path: Path, tokenizer) -> None:
    decoder_only = build_tokenizer(["一二三"], model_max_length=64)
    decoder_only.mask_token = None
    with pytest.raises(UsageError, match="no mask token"):
        check_mlm_tokenizer(decoder_only, "bloom-like")


def test_tokenizer_whose_vocab_did_not_load_is_refused() -> None:
    with pytest.raises(UsageError, match="only 5 tokens"):
        check_mlm_tokenizer(build_tokenizer([], model_max_length=64), "vocab_file")


def test_missing_tokenizer_dir_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="could not load tokenizer"):
        load_tokenizer(str(tmp_path / "nothing"))
