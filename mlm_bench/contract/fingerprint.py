"""Fingerprint: what the installed transformers/tokenizers/torch make of fixed inputs, stored per version set.

The same version set must reproduce its stored fingerprint exactly, and a contract violation always fails. A field
that differs between two version sets fails too, until a reviewed entry in the accept file (ACCEPTED, beside the
fingerprints) says what changed and why it is fine, as snapshot tests work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

from mlm_bench.config import preset
from mlm_bench.contract import masking as contract
from mlm_bench.contract.accepted import (
    ACCEPTED,
    KEY_PACKAGES,
    SHIPPED,
    Change,
    field_changes,
    record,
    version_set_key,
)
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.tokenizer import build_tokenizer
from mlm_bench.modeling.model import build_model
from mlm_bench.runs.results import versions, write_json_atomic
from mlm_bench.seeding import seed_everything
from mlm_bench.training.train import resolved_optimizer

# The golden fingerprints and the accept file ship with the package (package data), beside this module.
FINGERPRINT_DIR = SHIPPED
# The inputs: the tests' tiny settings (mlm_bench.testing.helpers.TINY), so the suite can fingerprint its own
# fixtures. The recipe's masking and BERT's tied embedding are pinned: tuning tiny-zh must not change what a
# version is keyed on.
SETTINGS = preset(
    "tiny-zh",
    max_length=64,
    eval_max_length=64,
    mlm_probability=0.15,
    tie_word_embeddings=True,
    eval_rows=40,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    device="cpu",
)
# Fields that decide the fingerprint's inputs: a caller passing its own rows must have built them with these.
INPUT_FIELDS = (
    "dataset",
    "text_column",
    "train_rows",
    "heldout_fraction",
    "eval_rows",
    "max_length",
    "packing",
    "mlm_probability",
    "pad_to_multiple_of",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "dropout",
    "tie_word_embeddings",
)
TEXTS = (
    "今天天气很好",
    "今天[MASK]情很好",  # the recipe's probe: [MASK] must stay one token
    "１９９８年１月１日，ＡＢＣ公司成立。",  # full-width digits and Latin: NFKC must fold them
    "Hello, World! 2024年",  # Latin words split into ##-continued characters, lowercased
    "龘😀",  # characters outside the vocabulary: [UNK]
    "  多个   空格\t制表符\n换行",
)
COLLATOR_SEED = 1234
MODEL_SEED = 42
BATCH_ROWS = 8


def version_key() -> str:
    """File stem naming the running (transformers, tokenizers, torch) versions."""
    return version_set_key(versions())


def fingerprint_inputs() -> tuple[PreTrainedTokenizerBase, datasets.Dataset, datasets.Dataset]:
    """The tokenizer built from the builtin corpus, and its held-out rows encoded per token and per word."""
    corpus = load_corpus(SETTINGS)
    tokenizer = build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=SETTINGS.data.max_length)
    token_rows = encode(corpus.heldout, corpus.text_column, tokenizer, SETTINGS)
    wwm_rows = encode(corpus.heldout, corpus.text_column, tokenizer, SETTINGS.replace(mask="wwm"))
    return tokenizer, token_rows, wwm_rows


def _digest(batch: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(batch):
        digest.update(key.encode())
        digest.update(batch[key].to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _collated(tokenizer: PreTrainedTokenizerBase, rows: datasets.Dataset, mask: str) -> dict[str, Any]:
    """Collate the fixed rows with a seeded collator, check the contract on them, and summarise the batch."""
    examples = [dict(r) for r in rows.select(range(BATCH_ROWS))]
    collator = build_collator(tokenizer, SETTINGS.replace(mask=mask), seed=COLLATOR_SEED)
    batch, ref = contract.check_contract(collator, examples, tokenizer, SETTINGS.speed.pad_to_multiple_of)
    counts = contract.count_masking(batch, ref, tokenizer.mask_token_id)
    if mask == "wwm":
        contract.check_whole_words(batch, ref, tokenizer.mask_token_id)
    return {
        "seed": COLLATOR_SEED,
        "rows": BATCH_ROWS,
        "sha256": _digest(batch),
        "counts": dataclasses.asdict(counts),
        "batch": batch,
    }


def fingerprint(
    tokenizer: PreTrainedTokenizerBase, token_rows: datasets.Dataset, wwm_rows: datasets.Dataset
) -> dict[str, Any]:
    """Token ids of fixed texts, digests of seeded token and whole-word batches, and a seeded model's first loss;
    raises contract.ContractViolation if the masking contract fails on the fixed batches."""
    found = versions()
    token = _collated(tokenizer, token_rows, "token")
    wwm = _collated(tokenizer, wwm_rows, "wwm")
    batch = token.pop("batch")
    wwm.pop("batch")
    seed_everything(MODEL_SEED)
    model = build_model(SETTINGS, tokenizer).eval()
    with torch.no_grad():
        loss = float(model(**batch).loss)
    return {
        "versions": {name: found[name] for name in KEY_PACKAGES},
        "tokenizer": {
            "size": len(tokenizer),
            "special_ids": dict(zip(tokenizer.all_special_tokens, tokenizer.all_special_ids, strict=True)),
            "ids": {text: tokenizer(text)["input_ids"] for text in TEXTS},
        },
        "collator": token,
        "wwm_collator": wwm,
        "model": {"seed": MODEL_SEED, "initial_loss": loss},
        "training_defaults": training_defaults(model),
    }


def training_defaults(model: torch.nn.Module) -> dict[str, Any]:
    """The optimizer, clipping and schedule a Trainer built with default TrainingArguments resolves to."""
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(output_dir=scratch, report_to="none", use_cpu=True)
        trainer = Trainer(model=model, args=arguments)
        trainer.create_optimizer_and_scheduler(num_training_steps=10)
        return resolved_optimizer(trainer)


def changes(stored: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Fields that differ between two fingerprints (floats beyond 1e-5 relative); versions are ignored."""
    return field_changes(
        {k: v for k, v in stored.items() if k != "versions"}, {k: v for k, v in current.items() if k != "versions"}
    )


def diff(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`field: stored -> current` for every field that differs."""
    return [str(change) for change in changes(stored, current)]


def accept(accept_file: Path, found: list[Change], why: str) -> Path:
    """Record `found` (changes from another version set to the running one) as reviewed, with the reason."""
    return record(accept_file, found, version_key(), why)


def load(path: Path) -> dict[str, Any]:
    """A stored fingerprint."""
    return json.loads(path.read_text(encoding="utf-8"))


def stored(directory: Path) -> dict[str, dict[str, Any]]:
    """Every stored fingerprint, by version key (the accept file is not one)."""
    return {path.stem: load(path) for path in sorted(directory.glob("*.json")) if path.name != ACCEPTED}


def save(payload: dict[str, Any], directory: Path) -> Path:
    """Write the fingerprint of the running versions into `directory` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{version_key()}.json"
    write_json_atomic(path, payload)
    return path
