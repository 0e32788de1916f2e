"""Your masked LM (`pytest --pyargs mlm_bench.contract --mlm-model DIR`): padding does not change its logits, eval
mode and the fill-mask pipeline run without dropout, and a save and load gives identical logits."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, pipeline

from mlm_bench.contract.setup import load_model

TEXTS = 8  # held-out texts per check, of different lengths
# Logits of a text alone and padded beside a longer one go through other kernels' reduction orders (float32).
PADDING_ATOL = 1e-4


def _texts(mlm_heldout, tokenizer, limit: int = 48) -> list[str]:
    """TEXTS held-out texts cut to at most `limit` tokens, so a batch of them needs padding."""
    rows, column = mlm_heldout
    texts = [text for text in rows[column] if text.strip()][:TEXTS]
    return [tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:limit]) for text in texts]


def test_padding_does_not_change_the_logits(mlm_model, mlm_tokenizer, mlm_heldout) -> None:
    texts = _texts(mlm_heldout, mlm_tokenizer)
    batch = mlm_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = mlm_model(**batch).logits
        for row, text in enumerate(texts):
            alone = mlm_model(**mlm_tokenizer(text, return_tensors="pt")).logits[0]
            real = batch["attention_mask"][row].bool()
            worst = (padded[row][real] - alone).abs().max().item()
            assert worst <= PADDING_ATOL, f"text {row} padded to {real.numel()} tokens: logits moved by {worst:.2e}"


def _dropout_rates(directory: Path) -> dict[str, float]:
    """Every dropout probability of the model's config at 0.1, so a forward with dropout on would differ."""
    config = AutoConfig.from_pretrained(str(directory))
    return {key: 0.1 for key, value in config.to_dict().items() if "dropout" in key and isinstance(value, float)}


def test_eval_mode_and_the_fill_mask_pipeline_run_without_dropout(mlm_setup, mlm_tokenizer, mlm_heldout) -> None:
    """With dropout at 0.1: two eval forwards agree, and so do two answers of the pipeline built from the directory
    as users build it, whose top 5 are eval mode's. (A pipeline given a model in train mode runs it with dropout:
    pipelines do not call eval(), measured on 5.25.0, so an in-memory model must be put in eval first.)"""
    rates = _dropout_rates(mlm_setup.model_dir)
    model = AutoModelForMaskedLM.from_pretrained(str(mlm_setup.model_dir), **rates)
    assert not model.training, "from_pretrained returned a model in train mode"
    text = _texts(mlm_heldout, mlm_tokenizer)[0]
    probe = mlm_tokenizer.mask_token + text[1:]
    inputs = mlm_tokenizer(probe, return_tensors="pt")
    with torch.no_grad():
        first, second = model(**inputs).logits, model(**inputs).logits
    assert torch.equal(first, second), "two forwards in eval mode differ: dropout is on"
    fill = pipeline("fill-mask", model=str(mlm_setup.model_dir), tokenizer=mlm_tokenizer, top_k=5, model_kwargs=rates)
    a, b = fill(probe), fill(probe)
    assert a == b, "the fill-mask pipeline gave two answers to one probe: dropout is on"
    where = (inputs["input_ids"][0] == mlm_tokenizer.mask_token_id).nonzero()[0, 0]
    expected = first[0, where].softmax(-1).topk(5).indices.tolist()
    assert [p["token"] for p in a] == expected, "the pipeline's top 5 are not eval mode's"


def test_a_saved_and_loaded_model_gives_identical_logits(mlm_model, mlm_tokenizer, mlm_heldout, tmp_path) -> None:
    batch = mlm_tokenizer(_texts(mlm_heldout, mlm_tokenizer), padding=True, return_tensors="pt")
    mlm_model.save_pretrained(str(tmp_path))
    reloaded = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(mlm_model(**batch).logits, reloaded(**batch).logits), "save -> load changed the logits"
