"""Run: the recipe end to end (corpus, tokenize, collate, train, evaluate, fill-mask) into one run directory."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.collate import build_collator
from mlm_bench.config import Settings
from mlm_bench.corpus import Corpus, load_corpus
from mlm_bench.encode import encode
from mlm_bench.errors import UsageError
from mlm_bench.evaluate import evaluate_mlm, unigram_log_probs
from mlm_bench.infer import cloze_sentences, fill_mask
from mlm_bench.model import build_model, check_compatible, load_model
from mlm_bench.results import RESULTS_FILE, command_line, device_info, versions, write_json_atomic
from mlm_bench.seeding import seed_everything
from mlm_bench.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from mlm_bench.train import speed_options, train

SCHEMA_VERSION = 1
Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """Everything validated before the run directory is created: bad input fails here, leaving nothing."""

    corpus: Corpus
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    train_rows: datasets.Dataset
    heldout_rows: datasets.Dataset


def _tokenizer_for(settings: Settings, corpus: Corpus) -> PreTrainedTokenizerBase:
    name = settings.tokenizer_name_or_path or settings.model_name_or_path
    if name:
        return load_tokenizer(name)
    return build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=settings.max_length)


def prepare(settings: Settings, log: Log) -> Prepared:
    """Load and check data, tokenizer and model; encode train and held-out rows."""
    seed_everything(settings.seed, allow_tf32=speed_options(settings)["tf32"])
    corpus = load_corpus(settings)
    log(
        f"corpus: {settings.dataset} - {len(corpus.train)} train rows, {len(corpus.heldout)} held-out rows, "
        f"{corpus.dropped_empty_rows} empty rows dropped"
    )
    tokenizer = _tokenizer_for(settings, corpus)
    if settings.model_name_or_path:
        model = load_model(settings.model_name_or_path, settings.attn_implementation)
    else:
        model = build_model(settings, tokenizer)
    check_compatible(model, tokenizer, settings)
    log(f"model: {type(model).__name__}, {model.num_parameters() / 1e6:.2f}M parameters, vocab {len(tokenizer)}")
    train_rows = encode(corpus.train, corpus.text_column, tokenizer, settings)
    heldout_rows = encode(corpus.heldout, corpus.text_column, tokenizer, settings)
    if len(train_rows) == 0 or len(heldout_rows) == 0:
        raise UsageError(
            f"the corpus yields {len(train_rows)} train and {len(heldout_rows)} held-out rows of {settings.max_length} "
            "tokens: too little text to pack; pass --packing false or a smaller --max_length"
        )
    return Prepared(corpus, tokenizer, model, train_rows, heldout_rows)


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


def check_output_dir(output_dir: Path, force: bool) -> bool:
    """Refuse to overwrite an existing run unless forced; True when there is one to replace."""
    taken = output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir()))
    if taken and not force:
        raise UsageError(f"{output_dir} exists and is not empty: pass --force to overwrite it, or a new --output-dir")
    return taken


def claim_output_dir(output_dir: Path, replace: bool) -> None:
    """Create the run directory, removing a forced-over old run only now that the new one is ready to start."""
    if replace and output_dir.is_dir():
        shutil.rmtree(output_dir)
    elif replace:
        output_dir.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)


def is_main_process(settings: Settings) -> bool:
    """True except on the non-zero ranks of a torchrun launch: only the main process writes the run directory."""
    return PartialState(cpu=settings.device == "cpu").is_main_process


def run(settings: Settings, output_dir: Path, force: bool = False, log: Log = print) -> dict[str, Any]:
    """Run the recipe and write model, tokenizer and results.json (last, atomically) to output_dir."""
    started = time.perf_counter()
    main = is_main_process(settings)
    replace = check_output_dir(output_dir, force) if main else False
    prepared = prepare(settings, log if main else _quiet)
    if main:
        claim_output_dir(output_dir, replace)
    try:
        results = _train_and_report(settings, prepared, output_dir, log if main else _quiet, save=main)
    except BaseException:
        # Nothing half-written: a run that did not finish leaves no directory behind.
        if main:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    results["wall_seconds"] = time.perf_counter() - started
    if main:
        write_json_atomic(output_dir / RESULTS_FILE, results)
    return results


def _quiet(_message: str) -> None:
    """The log of non-main ranks: one copy of each line is enough."""


def _train_and_report(settings: Settings, prepared: Prepared, output_dir: Path, log: Log, save: bool) -> dict[str, Any]:
    tokenizer, model, corpus = prepared.tokenizer, prepared.model, prepared.corpus
    log(f"train: {len(prepared.train_rows)} rows of <= {settings.max_length} tokens, batch {settings.batch_size}")
    summary = train(
        model, prepared.train_rows, build_collator(tokenizer, settings), settings, output_dir / "checkpoints"
    )
    vocab = model.get_input_embeddings().num_embeddings
    evaluation = evaluate_mlm(
        model,
        prepared.heldout_rows,
        build_collator(tokenizer, settings, seed=settings.eval_seed),
        unigram_log_probs(prepared.train_rows, tokenizer, vocab),
        batch_size=settings.batch_size,
    )
    heldout_texts = list(corpus.heldout[corpus.text_column])
    cloze = cloze_sentences(heldout_texts, settings.cloze_probes, tokenizer.mask_token)
    probes = [(settings.fill_mask_probe, ""), *cloze]
    predictions = fill_mask(model, tokenizer, [text for text, _ in probes])
    if save:
        model.save_pretrained(str(output_dir))
        save_tokenizer(tokenizer, output_dir)
    return {
        "schema_version": SCHEMA_VERSION,
        "settings": settings.to_dict(),
        "command": command_line(),
        "seed": settings.seed,
        "versions": versions(),
        "device": device_info(model.device),
        "corpus": {
            "name": corpus.name,
            "fingerprint": corpus.fingerprint,
            "train_rows": len(corpus.train),
            "heldout_rows": len(corpus.heldout),
            "dropped_empty_rows": corpus.dropped_empty_rows,
            "train_sequences": len(prepared.train_rows),
            "heldout_sequences": len(prepared.heldout_rows),
            "heldout_unk_rate": unk_rate(prepared.heldout_rows, tokenizer),
        },
        "vocab_size": len(tokenizer),
        "model_parameters": model.num_parameters(),
        "train": summary.to_dict(),
        "eval": evaluation.to_dict(),
        "fill_mask": [
            {"text": text, "answer": answer or None, "predictions": preds}
            for (text, answer), preds in zip(probes, predictions, strict=True)
        ],
    }
