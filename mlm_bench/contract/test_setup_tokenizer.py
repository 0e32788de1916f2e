"""Your tokenizer (`pytest --pyargs mlm_bench.contract --mlm-model DIR`): its special tokens as your model needs
them and as your run recorded them, and its round trips through tokens, text and a save."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlm_bench.contract.setup import load_tokenizer
from mlm_bench.data.tokenizer import special_tokens


def test_special_tokens_are_distinct_and_inside_the_model(mlm_tokenizer, mlm_model) -> None:
    found = special_tokens(mlm_tokenizer)
    assert {"mask_token", "pad_token"} <= set(found), f"a masked LM's tokenizer needs [MASK] and [PAD]: {found}"
    ids = [token_id for _, token_id in found.values()]
    assert len(set(ids)) == len(ids), f"two special tokens share an id: {found}"
    vocab = mlm_model.config.vocab_size
    for name, (token, token_id) in found.items():
        assert mlm_tokenizer.convert_ids_to_tokens(token_id) == token, f"{name} {token!r} does not decode from its id"
        assert 0 <= token_id < vocab, f"{name} {token!r} is id {token_id}, outside the model's {vocab} embeddings"
    assert len(mlm_tokenizer) <= vocab, f"the tokenizer has {len(mlm_tokenizer)} tokens, the model {vocab} embeddings"
    pad, ours = mlm_model.config.pad_token_id, mlm_tokenizer.pad_token_id
    assert pad in (None, ours), f"the model pads with id {pad}, the tokenizer with {ours}"


def test_special_tokens_are_those_the_model_was_trained_with(mlm_setup, mlm_tokenizer) -> None:
    """Against the results.json of the `mlm-bench run` that saved the directory: a [MASK] that moved makes every
    prediction at [MASK] read another embedding."""
    recorded = mlm_setup.recorded.get("special_tokens")
    if recorded is None:
        pytest.skip(f"{mlm_setup.model_dir} has no results.json recording special_tokens (one `mlm-bench run` "
                    "writes): nothing to compare with")  # fmt: skip
    found = special_tokens(mlm_tokenizer)
    moved = {name: f"{recorded.get(name)} -> {found.get(name)}" for name in {*recorded, *found}
             if recorded.get(name) != found.get(name)}  # fmt: skip
    assert not moved, f"special tokens differ from those the run trained with (token, id): {moved}"


def test_ids_survive_the_round_trips_through_tokens_and_text(mlm_tokenizer, mlm_heldout) -> None:
    rows, column = mlm_heldout
    for text in rows[column]:
        ids = mlm_tokenizer(text, add_special_tokens=False)["input_ids"]
        tokens = mlm_tokenizer.convert_ids_to_tokens(ids)
        assert mlm_tokenizer.convert_tokens_to_ids(tokens) == ids, f"ids -> tokens -> ids changed {text[:40]!r}"
        again = mlm_tokenizer(mlm_tokenizer.decode(ids), add_special_tokens=False)["input_ids"]
        assert again == ids, f"ids -> text -> ids changed {text[:40]!r}: {ids[:12]} -> {again[:12]}"


def test_a_saved_and_reloaded_tokenizer_encodes_alike(mlm_tokenizer, mlm_heldout, tmp_path: Path) -> None:
    rows, column = mlm_heldout
    mlm_tokenizer.save_pretrained(str(tmp_path))
    reloaded = load_tokenizer(tmp_path)
    assert special_tokens(reloaded) == special_tokens(mlm_tokenizer)
    texts = list(rows[column])
    assert reloaded(texts)["input_ids"] == mlm_tokenizer(texts)["input_ids"]
