"""Compat: each bridged version difference does what the installed transformers needs."""

from __future__ import annotations

import torch

from mlm_bench import compat


def test_packed_texts_numbers_each_text_where_positions_restart() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 0]])
    assert compat.packed_texts(positions).tolist() == [[0, 0, 0, 1, 1, 2, 3]]


def test_block_mask_argument_blocks_exactly_what_is_not_allowed() -> None:
    """Whatever form this version wants (0/1 or additive), the allowed pairs score 0 and the others -inf-like."""
    allowed = torch.tensor([[[True, False], [False, True]]])
    mask = compat.block_mask_argument(allowed, torch.float32)
    if compat.TRANSFORMERS_MAJOR < 5:
        assert mask.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]
    else:
        assert mask.shape == (1, 1, 2, 2) and (mask[0, 0][allowed[0]] == 0).all()
        assert (mask[0, 0][~allowed[0]] == torch.finfo(torch.float32).min).all()


def test_a_saved_tokenizer_names_a_class_both_lines_load() -> None:
    assert compat.portable_tokenizer_config({"tokenizer_class": "TokenizersBackend", "x": 1}) == {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "x": 1,
    }
    bert = {"tokenizer_class": "BertTokenizerFast"}
    assert compat.portable_tokenizer_config(bert) == bert
