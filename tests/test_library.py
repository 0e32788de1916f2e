"""The library as users call it (stock Trainer + BertForMaskedLM, the collator, the fill-mask pipeline): the
training-loop invariants the recipe relies on. Where a registered upstream defect (mlm_bench/contract/defects.py) breaks
one on the installed versions, its test is a strict xfail: it must fail there, and passes everywhere else.

Each check is shown failing on a library broken on purpose (a fault of mlm_bench/testing/faults.py the test of the
test plants through the `breakers` fixture, mlm_bench/testing/breakers.py): a breaker the installed versions never
call makes its test a skip that names it, and every check keeps a breaker that public, version-stable code calls
(Trainer and Accelerator methods).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoTokenizer,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    default_data_collator,
    pipeline,
)

from mlm_bench.compat import portable_head_bias
from mlm_bench.data.collate import MlmCollator
from mlm_bench.data.tokenizer import save_tokenizer
from mlm_bench.modeling.model import load_model
from mlm_bench.testing import faults
from mlm_bench.testing.helpers import known_defect, tiny_bert
from mlm_bench.training.train import resolved_optimizer

VOCAB, LENGTH, ROWS, LABELS_PER_ROW = 40, 16, 64, 3
# Float32 sums of the same numbers in another grouping (one batch of 16 vs two of 8) agree to ~1e-7 relative; a
# logged loss or grad norm off by a factor (the accumulation defect: 2x) is far outside.
RTOL = 1e-4


def _model(seed: int = 0, **overrides) -> BertForMaskedLM:
    torch.manual_seed(seed)
    return tiny_bert(overrides.pop("vocab_size", VOCAB), **{"hidden_dropout_prob": 0.0, **overrides})


@pytest.fixture(scope="module")
def masked_rows() -> datasets.Dataset:
    """Rows masked once, each with exactly LABELS_PER_ROW labelled positions: every micro-batch of equal size then
    holds the same number of targets, so a per-micro-batch mean accumulated over k micro-batches (4.57's Trainer)
    equals the full batch's mean, and accumulation may change nothing but the summation order."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB, (ROWS, LENGTH), generator=generator)
    labels = torch.full_like(ids, -100)
    for row in range(ROWS):
        positions = torch.randperm(LENGTH, generator=generator)[:LABELS_PER_ROW]
        labels[row, positions] = ids[row, positions]
        ids[row, positions] = 4  # the mask id of this toy vocabulary
    return datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(), "labels": labels.tolist()}
    )


def _train(rows, tmp_path: Path, accumulation: int, batch: int, steps: int = 3, **args) -> Trainer:
    settings = {"learning_rate": 1e-3, "max_grad_norm": 1.0, **args}
    arguments = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
        max_steps=steps, logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", seed=0,
        disable_tqdm=True, **settings,
    )  # fmt: skip
    trainer = Trainer(model=_model(), args=arguments, train_dataset=rows, data_collator=default_data_collator)
    trainer.train()
    return trainer


def _logged(trainer: Trainer) -> list[tuple[float, float]]:
    return [(entry["loss"], entry["grad_norm"]) for entry in trainer.state.log_history if "loss" in entry]


def check_accumulation_invariance(full: Trainer, accumulated: Trainer) -> None:
    """Logged loss and grad norm at every step, and every weight after them, as without accumulation."""
    for (loss, norm), (loss_k, norm_k) in zip(_logged(full), _logged(accumulated), strict=True):
        assert math.isclose(loss_k, loss, rel_tol=RTOL), f"logged loss {loss_k} with accumulation, {loss} without"
        assert math.isclose(norm_k, norm, rel_tol=RTOL), f"grad norm {norm_k} with accumulation, {norm} without"
    weights = dict(full.model.named_parameters())
    gap = max(float((p - weights[name]).detach().abs().max()) for name, p in accumulated.model.named_parameters())
    assert gap < 1e-5, f"weights {gap:.2e} apart after {full.state.global_step} steps"


@known_defect("bert-mlm-ga-loss")
def test_gradient_accumulation_changes_nothing(masked_rows, tmp_path) -> None:
    """Two micro-batches of 8 accumulated into one step train as one batch of 16."""
    full = _train(masked_rows, tmp_path / "full", accumulation=1, batch=16)
    check_accumulation_invariance(full, _train(masked_rows, tmp_path / "ga", accumulation=2, batch=8))


def test_accumulation_check_fails_when_the_loss_is_not_divided(masked_rows, tmp_path, breakers) -> None:
    """The check above reports a Trainer that no longer divides each of two micro-batches' losses by 2."""
    full = _train(masked_rows, tmp_path / "full", accumulation=1, batch=16)
    breakers.plant_fault(faults.loss_not_divided)
    with pytest.raises(AssertionError, match="logged loss"):
        check_accumulation_invariance(full, _train(masked_rows, tmp_path / "ga", accumulation=2, batch=8))


def check_clipping(trainer: Trainer, before: dict[str, torch.Tensor], max_norm: float, lr: float) -> None:
    """With plain SGD the step is -lr x the clipped gradient: its norm is at most lr x max_norm, while the logged
    (pre-clip) norm is larger."""
    step = torch.cat([(p.detach() - before[name]).flatten() for name, p in trainer.model.named_parameters()])
    (_, logged_norm), *_ = _logged(trainer)
    assert logged_norm > max_norm, f"logged norm {logged_norm} does not exceed {max_norm}: nothing to clip"
    assert float(step.norm()) <= lr * max_norm * (1 + 1e-4), f"update {float(step.norm()):.4g} > lr x max_grad_norm"


def _clipped_run(rows, tmp_path: Path, max_norm: float) -> tuple[Trainer, dict[str, torch.Tensor]]:
    before = {name: p.detach().clone() for name, p in _model().named_parameters()}
    trainer = _train(rows, tmp_path, accumulation=1, batch=16, steps=1, optim="sgd", learning_rate=1.0,
                     max_grad_norm=max_norm, lr_scheduler_type="constant")  # fmt: skip
    return trainer, before


def test_clipping_bounds_the_update(masked_rows, tmp_path) -> None:
    trainer, before = _clipped_run(masked_rows, tmp_path, max_norm=0.05)
    check_clipping(trainer, before, max_norm=0.05, lr=1.0)


# Where the norm is clipped: Accelerator.clip_grad_norm_ is what Trainer calls on 4.57 and 5.x alike (required: the
# check's live breaker); torch's function is what accelerate called under it until 1.16 (its DTensor-aware path
# clips with clip_grads_with_norm_), so that self-test is a skip from 1.16 on.
CLIPPERS = {"accelerator": faults.accelerator_clips_nothing, "torch": faults.torch_clips_nothing}


@pytest.mark.parametrize("clipper", list(CLIPPERS))
def test_clipping_check_fails_when_clipping_is_skipped(masked_rows, tmp_path, breakers, clipper: str) -> None:
    """The check above reports a Trainer that logs the norm but does not clip."""
    breakers.plant_fault(CLIPPERS[clipper])
    trainer, before = _clipped_run(masked_rows, tmp_path, max_norm=0.05)
    with pytest.raises(AssertionError, match="update"):
        check_clipping(trainer, before, max_norm=0.05, lr=1.0)


def check_decay_groups(trainer: Trainer) -> None:
    """With weight decay on, no LayerNorm weight and no bias is decayed, and every other weight is."""
    resolved = resolved_optimizer(trainer)
    assert resolved["weight_decay"] > 0
    assert resolved["undecayed_parameters"] == ["LayerNorm.bias", "LayerNorm.weight", "bias"], resolved


def _decaying_trainer(tmp_path: Path) -> Trainer:
    args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.1, report_to="none", use_cpu=True)
    trainer = Trainer(model=_model(), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    return trainer


def test_layernorm_and_biases_are_not_decayed(tmp_path) -> None:
    check_decay_groups(_decaying_trainer(tmp_path))


def test_decay_check_fails_when_everything_is_decayed(tmp_path, breakers) -> None:
    breakers.plant_fault(faults.decay_everything)
    with pytest.raises(AssertionError):
        check_decay_groups(_decaying_trainer(tmp_path))


# What the recipe got by leaving the optimizer to the library: TrainingArguments' defaults, transformers 4.x.
RECIPE_DEFAULTS = {
    "class": "AdamW",
    "learning_rate": 5e-5,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "lr_scheduler": "linear",
    "warmup_steps": 0,
    "gradient_accumulation_steps": 1,
}


def check_recipe_defaults(resolved: dict) -> None:
    """The optimizer and schedule TrainingArguments() resolves to are the ones the recipe trained with."""
    changed = {key: (want, resolved[key]) for key, want in RECIPE_DEFAULTS.items() if resolved[key] != want}
    assert not changed, f"library defaults changed (recipe's, now): {changed}"


def _default_trainer(tmp_path: Path, **args) -> Trainer:
    trainer = Trainer(model=_model(), args=TrainingArguments(output_dir=str(tmp_path), report_to="none", **args))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    return trainer


def test_library_defaults_are_the_recipes(tmp_path) -> None:
    check_recipe_defaults(resolved_optimizer(_default_trainer(tmp_path, use_cpu=True)))


@pytest.mark.parametrize("changed", [{"adam_epsilon": 1e-6}, {"max_grad_norm": 0.0}, {"warmup_steps": 10}])
def test_defaults_check_fails_on_a_changed_default(tmp_path, changed) -> None:
    with pytest.raises(AssertionError, match="library defaults changed"):
        check_recipe_defaults(resolved_optimizer(_default_trainer(tmp_path, use_cpu=True, **changed)))


def check_no_dropout_in_eval(model: BertForMaskedLM, tokenizer) -> None:
    """Under eval() the same input gives the same logits twice, and the fill-mask pipeline the same scores."""
    batch = tokenizer(["今天[MASK]情很好", "北京是中国的首都"], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        first, second = model(**batch).logits, model(**batch).logits
    assert torch.equal(first, second), "eval() logits differ between two identical calls: dropout is on"
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
    assert fill("今天[MASK]情很好") == fill("今天[MASK]情很好"), "fill-mask scores differ between two calls"


def _dropout_model(tokenizer) -> BertForMaskedLM:
    return _model(vocab_size=len(tokenizer), hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def test_dropout_is_off_in_eval_and_in_the_pipeline(tokenizer) -> None:
    model = _dropout_model(tokenizer)
    model.train()
    batch = tokenizer(["今天[MASK]情很好"], return_tensors="pt")
    assert not torch.equal(model(**batch).logits, model(**batch).logits)  # dropout 0.1 is on in training
    check_no_dropout_in_eval(model, tokenizer)


def test_dropout_check_fails_when_dropout_ignores_eval(tokenizer, breakers) -> None:
    breakers.plant_fault(faults.dropout_in_eval)
    with pytest.raises(AssertionError, match="dropout is on"):
        check_no_dropout_in_eval(_dropout_model(tokenizer), tokenizer)


def check_padding_invariance(model: BertForMaskedLM, ids: list[list[int]], pad_id: int) -> None:
    """Each text's logits alone equal its logits inside a batch padded to the longest text (to 1e-5)."""
    width = max(map(len, ids))
    padded = torch.tensor([row + [pad_id] * (width - len(row)) for row in ids])
    attention = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    model.eval()
    with torch.no_grad():
        together = model(input_ids=padded, attention_mask=attention).logits
        for row, text in enumerate(ids):
            alone = model(input_ids=torch.tensor([text])).logits[0]
            gap = float((together[row, : len(text)] - alone).abs().max())
            assert gap < 1e-5, f"text {row} ({len(text)} tokens) moves by {gap:.2e} inside the padded batch"


PADDING_TEXTS = [[2, 7, 9, 11, 3], [2, 8, 13, 21, 30, 31, 17, 6, 3], [2, 5, 3]]


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_a_text_computes_the_same_alone_and_padded(attention: str) -> None:
    check_padding_invariance(_model(attn_implementation=attention), PADDING_TEXTS, pad_id=0)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_padding_check_fails_when_the_mask_is_dropped(attention: str, breakers) -> None:
    breakers.plant_fault(faults.mask_dropped)
    with pytest.raises(AssertionError, match="inside the padded batch"):
        check_padding_invariance(_model(attn_implementation=attention), PADDING_TEXTS, pad_id=0)


def _labels_under_two_global_seeds(make_collator, heldout_rows) -> list[torch.Tensor]:
    """The labels a freshly made collator gives the same 8 rows after torch.manual_seed(1), then (2)."""
    examples = [dict(heldout_rows[i]) for i in range(8)]
    labels = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        labels.append(make_collator()(examples)["labels"])
    return labels


@known_defect("collator-seed-zero")
def test_collator_seed_zero_is_a_seed(tokenizer, heldout_rows) -> None:
    """The library's collator with seed=0 masks the same way twice whatever the global RNG does."""
    first, second = _labels_under_two_global_seeds(
        lambda: DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0), heldout_rows
    )
    assert torch.equal(first, second)


@known_defect("tokenizer-5x-files-on-4.57")
def test_tokenizer_files_as_5x_saves_them_load(tokenizer, corpus, tmp_path: Path) -> None:
    """Tokenizer files as 5.x's save_pretrained writes them (tokenizer_class TokenizersBackend, measured on 5.25.0)
    load and encode alike: a team that upgrades its training machines first serves what they save."""
    tokenizer.save_pretrained(str(tmp_path))
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "tokenizer_class": "TokenizersBackend"}))
    texts = list(corpus.heldout[corpus.text_column][:20])
    assert AutoTokenizer.from_pretrained(str(tmp_path))(texts)["input_ids"] == tokenizer(texts)["input_ids"]


def test_the_projects_saved_tokenizer_loads_on_every_version(tokenizer, corpus, tmp_path: Path) -> None:
    """The workaround of tokenizer-5x-files-on-4.57: save_tokenizer names a class 4.57 and 5.x both load."""
    save_tokenizer(tokenizer, tmp_path)
    texts = list(corpus.heldout[corpus.text_column][:20])
    assert AutoTokenizer.from_pretrained(str(tmp_path))(texts)["input_ids"] == tokenizer(texts)["input_ids"]


@known_defect("bert-untied-head-bias")
def test_an_untied_bert_head_has_one_output_bias() -> None:
    """With tie_word_embeddings=False, BERT's masked-LM head has one output bias: `cls.predictions.bias` is the
    decoder's, as 4.57 builds it. Checkpoints are laid out over the parameters, and a 4.57 reader takes that bias
    for the decoder's."""
    head = tiny_bert(50, tie_word_embeddings=False).cls.predictions
    assert head.decoder.bias is head.bias


def test_the_projects_saved_model_gives_its_output_bias_to_every_version(tmp_path: Path) -> None:
    """The workaround of bert-untied-head-bias: before saving, the head's bias is set to the decoder's, so a reader
    that takes either one gets the trained bias."""
    model = tiny_bert(50, tie_word_embeddings=False)
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(0.5)
    portable_head_bias(model)
    model.save_pretrained(str(tmp_path))
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert torch.equal(saved["cls.predictions.bias"], torch.full((50,), 0.5))


def test_the_projects_loaded_model_keeps_the_output_bias_4_57_saved(tmp_path: Path) -> None:
    """The workaround's other half: a directory as 4.57 saves an untied BERT (its one output bias as
    cls.predictions.bias, no decoder bias) loads through modeling.load_model with that bias in the decoder, where
    5.x's from_pretrained starts the decoder's at zero."""
    model = tiny_bert(50, tie_word_embeddings=False)
    with torch.no_grad():
        model.cls.predictions.decoder.bias.fill_(0.5)
    portable_head_bias(model)
    model.save_pretrained(str(tmp_path))
    weights = tmp_path / "model.safetensors"
    saved = load_file(str(weights))
    save_file({k: v for k, v in saved.items() if k != "cls.predictions.decoder.bias"}, str(weights),
              metadata={"format": "pt"})  # fmt: skip
    loaded = load_model(str(tmp_path))
    assert torch.equal(loaded.cls.predictions.decoder.bias, torch.full((50,), 0.5))


def test_the_projects_collator_takes_seed_zero_on_every_version(tokenizer, heldout_rows) -> None:
    """The workaround of collator-seed-zero: collate.MlmCollator seeds itself for 0 too."""
    first, second = _labels_under_two_global_seeds(
        lambda: MlmCollator(tokenizer, mlm_probability=0.15, seed=0), heldout_rows
    )
    assert torch.equal(first, second)
