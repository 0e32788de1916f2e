"""Encode: truncation to max_length as the recipe does, packing into full rows as run_mlm.py does."""

from __future__ import annotations

from mlm_bench.data.encode import ENCODED_COLUMNS, encode


def test_truncated_rows_never_exceed_max_length(unpacked_rows) -> None:
    lengths = [len(ids) for ids in unpacked_rows["input_ids"]]
    assert max(lengths) == 64 and min(lengths) < 64
    assert unpacked_rows.column_names == ENCODED_COLUMNS


def test_truncated_rows_keep_cls_and_sep(unpacked_rows, tokenizer) -> None:
    for ids in unpacked_rows["input_ids"][:50]:
        assert (ids[0], ids[-1]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)


def test_packed_rows_are_full_and_lose_only_the_tail(corpus, tokenizer, tiny_settings) -> None:
    rows = corpus.train.select(range(100))
    packed = encode(rows, corpus.text_column, tokenizer, tiny_settings)
    whole = tokenizer(list(rows[corpus.text_column]))["input_ids"]
    total = sum(len(ids) for ids in whole)
    assert {len(ids) for ids in packed["input_ids"]} == {64}
    assert len(packed) == total // 64
    assert [i for ids in packed["input_ids"] for i in ids] == [i for ids in whole for i in ids][: len(packed) * 64]
    specials = {tokenizer.cls_token_id, tokenizer.sep_token_id}
    for ids, mask in zip(packed["input_ids"], packed["special_tokens_mask"], strict=True):
        assert mask == [int(i in specials) for i in ids]
