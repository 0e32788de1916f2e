"""Run: the recipe end to end (corpus, tokenize, collate, train, evaluate, fill-mask) into one run directory."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.compat import portable_head_bias
from mlm_bench.config import Settings
from mlm_bench.data.collate import build_collator
from mlm_bench.data.corpus import Corpus, distinct_texts_needed, load_corpus
from mlm_bench.data.encode import encode
from mlm_bench.data.hub import check_hub
from mlm_bench.data.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from mlm_bench.data.wwm import WORD_IDS
from mlm_bench.errors import Interrupted, RunError, Terminated, UsageError
from mlm_bench.modeling.model import build_model, check_compatible, load_model
from mlm_bench.runs import stop
from mlm_bench.runs.card import write_card
from mlm_bench.runs.report import SCHEMA_VERSION, build_results
from mlm_bench.runs.results import RESULTS_FILE, command_line, versions, write_json_atomic
from mlm_bench.runs.resume import RunDir, claim, follow, preflight, publish, staging_dir
from mlm_bench.seeding import seed_everything
from mlm_bench.training.evaluate import EvalSet, build_eval_set, eval_settings, evaluate_mlm, unigram_log_probs
from mlm_bench.training.infer import cloze_sentences, fill_mask, fill_mask_pipeline
from mlm_bench.training.train import EVAL_PREFIX, check_training_arguments, speed_options, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Everything validated before the run directory is created: bad input fails here, leaving nothing."""

    corpus: Corpus
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    train_rows: datasets.Dataset
    heldout_rows: datasets.Dataset
    eval_sets: dict[str, EvalSet]  # "token", and "wwm" for a whole-word run: masked before training, checked
    unigram: torch.Tensor  # the train rows' token log-frequencies: the baseline every held-out pass scores against


def _tokenizer_for(settings: Settings, corpus: Corpus) -> PreTrainedTokenizerBase:
    name = settings.model.tokenizer_name_or_path or settings.model.model_name_or_path
    if name:
        return load_tokenizer(name)
    return build_tokenizer(list(corpus.train[corpus.text_column]), model_max_length=settings.data.max_length)


def prepare(settings: Settings) -> Prepared:
    """Load and check data, tokenizer and model; encode train and held-out rows."""
    seed_everything(settings.training.seed, allow_tf32=speed_options(settings)["tf32"])
    check_training_arguments(settings)  # refused now, not after loading
    corpus = load_corpus(settings)
    if len(corpus.heldout) == 0:
        distinct = len(set(corpus.train[corpus.text_column]))
        raise UsageError(
            f"no held-out rows to evaluate on: none of the corpus's {distinct} distinct texts fell on the held-out "
            f"side at --heldout_fraction {settings.eval.heldout_fraction} (each goes to one side by its hash): give at "
            f"least {distinct_texts_needed(settings.eval.heldout_fraction)} distinct rows, or raise --heldout_fraction"
        )
    logger.info(
        f"corpus: {settings.data.dataset} - {len(corpus.train)} train rows, {len(corpus.heldout)} held-out rows, "
        f"{corpus.dropped_empty_rows} empty rows dropped"
    )
    tokenizer = _tokenizer_for(settings, corpus)
    source = settings.model
    if source.model_name_or_path:
        model = load_model(
            source.model_name_or_path, source.allow_pickle, settings.speed.attn_implementation, source.attention_dropout
        )
    else:
        model = build_model(settings, tokenizer)
    check_compatible(model, tokenizer, settings)
    logger.info(
        f"model: {type(model).__name__}, {model.num_parameters() / 1e6:.2f}M parameters, vocab {len(tokenizer)}"
    )
    train_rows = encode(corpus.train, corpus.text_column, tokenizer, settings)
    if len(train_rows) == 0:
        raise UsageError(
            f"the corpus yields no train row of {settings.data.max_length} tokens: too little text to pack; pass "
            "--packing false or a smaller --max_length"
        )
    # Held-out texts are scored one by one, whole up to eval_max_length, whatever the training layout.
    heldout_rows = encode(corpus.heldout, corpus.text_column, tokenizer, eval_settings(settings))
    eval_sets = _eval_sets(settings, heldout_rows, list(corpus.heldout[corpus.text_column]), tokenizer)
    unigram = unigram_log_probs(train_rows, tokenizer)
    return Prepared(corpus, tokenizer, model, train_rows, heldout_rows, eval_sets, unigram)


def _eval_sets(
    settings: Settings, heldout: datasets.Dataset, texts: list[str], tokenizer: PreTrainedTokenizerBase
) -> dict[str, EvalSet]:
    """The held-out texts masked for scoring: per token in every run (so token and wwm runs compare), per whole
    word too in a wwm run. Refused when no position is masked: there would be nothing to score after training."""
    token_rows = heldout.remove_columns([WORD_IDS]) if WORD_IDS in heldout.column_names else heldout
    sets = {"token": build_eval_set(token_rows, texts, tokenizer, settings)}
    if settings.data.mask == "wwm":
        sets["wwm"] = build_eval_set(heldout, texts, tokenizer, settings, mask="wwm")
    for kind, masked in sets.items():
        if not masked.description["selected_tokens"]:
            raise UsageError(
                f"the {len(texts)} held-out texts have no position masked for scoring ({kind} masking at "
                f"--eval_mlm_probability {settings.eval.eval_mlm_probability}): give more held-out text (more rows, or "
                "a higher --heldout_fraction)"
            )
    return sets


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# A write that failed with less free space than this is taken for a full disk: torch's zip writer reports a short
# write as RuntimeError("[enforce fail at inline_container.cc] ... unexpected pos ...") with no errno.
NEARLY_FULL_BYTES = 1 << 20


def _disk_full(err: BaseException, output_dir: Path) -> bool:
    """True when err, or what caused it, is a full disk (torch.save and safetensors re-wrap the OSError), or when a
    write error leaves the output's disk all but full. Call it before cleaning up, which frees space again."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        if "No space left on device" in str(seen) or "StorageFull" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    torch_write = isinstance(err, RuntimeError) and "inline_container" in str(err)  # torch's zip writer
    if not (isinstance(err, OSError) or torch_write):
        return False
    try:
        return shutil.disk_usage(output_dir).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _left_behind(output_dir: Path, kept: Path | None) -> str:
    if kept is None:
        return f"nothing was kept in {output_dir}"
    return f"the last complete checkpoint ({kept.name}) is kept in {output_dir}"


def run(
    settings: Settings, output_dir: Path, force: bool = False, resume: bool = False, hub_checked: bool = False
) -> dict[str, Any]:
    """Run the recipe into output_dir: checkpoints as it trains, model and tokenizer, then results.json last.

    A run that fails keeps its complete checkpoints (`resume=True` continues from the last one); one that
    failed before its first checkpoint, or was refused, leaves nothing behind. `hub_checked`: the caller already
    ran hub.check_hub (the CLI does, before its heavy imports), so its network probe is not repeated.
    """
    started = time.perf_counter()
    if not is_main_process(settings):
        return _follow(settings, output_dir, resume)
    preflight(output_dir, force=force, resume=resume, settings=settings.to_dict())
    if not hub_checked:
        check_hub(settings)
    prepared = prepare(settings)
    record = {
        "schema_version": SCHEMA_VERSION,
        "settings": settings.to_dict(),
        "corpus_fingerprint": prepared.corpus.fingerprint,
        "versions": versions(),
        "command": command_line(),
    }
    run_dir = claim(output_dir, record, force=force, resume=resume)
    for discarded in run_dir.discarded:
        logger.info(f"resume: deleted {discarded}, which a kill or error left half-written")
    if resume:
        logger.info(f"resume: {run_dir.resume_from or 'no complete checkpoint, starting from step 0'}")
    try:
        results = _train_and_report(settings, prepared, run_dir)
        results["wall_seconds"] = time.perf_counter() - started
        write_json_atomic(output_dir / RESULTS_FILE, results)
    except BaseException as err:
        if isinstance(err, Terminated):
            stop.taken()
        full = _disk_full(err, output_dir)
        kept = run_dir.abandon()
        left = _left_behind(output_dir, kept)
        if full:
            raise UsageError(
                f"no space left on the device while writing to {output_dir}: free some space or pass an "
                f"--output-dir on another disk; {left}" + (", continue with --resume" if kept else "")
            ) from err
        if isinstance(err, RunError):
            raise type(err)(f"{err}; {left}") from err
        logger.warning(f"run stopped ({'SIGTERM' if isinstance(err, Terminated) else type(err).__name__}): {left}")
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted(kept) from err
        raise
    run_dir.release()
    return results


def is_main_process(settings: Settings) -> bool:
    """True except on the non-zero ranks of a torchrun launch: only the main process writes the run directory."""
    return PartialState(cpu=settings.training.device == "cpu").is_main_process


def _follow(settings: Settings, output_dir: Path, resume: bool) -> dict[str, Any]:
    """A non-main DDP rank: train in step with rank 0, which alone claims, saves and reports."""
    # One copy of each progress line is enough: rank 0 says them.
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    prepared = prepare(settings)
    run_dir = follow(output_dir, resume)
    return _train_and_report(settings, prepared, run_dir, save=False)


def _held_out_figures(prepared: Prepared) -> Callable[[PreTrainedModel], dict[str, float]]:
    """What a periodic held-out pass logs (settings.eval_steps): context gain and loss at [MASK]."""

    def score(model: PreTrainedModel) -> dict[str, float]:
        result = evaluate_mlm(model, prepared.eval_sets["token"], prepared.unigram)
        at_mask = result.by_treatment["mask"]
        return {f"{EVAL_PREFIX}context_gain": result.context_gain, f"{EVAL_PREFIX}mask_loss": at_mask["loss"]}

    return score


def _evaluate(prepared: Prepared, model: PreTrainedModel) -> dict[str, Any]:
    """`eval` under per-token masking, `eval_wwm` too for a wwm run, and the sets (`eval_set`, `eval_wwm_set`)
    naming the texts and masks they were scored on."""
    scores: dict[str, Any] = {}
    for kind, masked in prepared.eval_sets.items():
        suffix = "" if kind == "token" else f"_{kind}"
        scores[f"eval{suffix}_set"] = masked.description
        scores[f"eval{suffix}"] = evaluate_mlm(model, masked, prepared.unigram).to_dict()
    return scores


def _train_and_report(settings: Settings, prepared: Prepared, run_dir: RunDir, save: bool = True) -> dict[str, Any]:
    tokenizer, model, corpus = prepared.tokenizer, prepared.model, prepared.corpus
    column = corpus.text_column
    logger.info(
        f"train: {len(prepared.train_rows)} rows of <= {settings.data.max_length} tokens, "
        f"batch {settings.training.batch_size}"
    )
    collator = build_collator(tokenizer, settings)
    summary = train(
        model,
        prepared.train_rows,
        collator,
        settings,
        run_dir.checkpoint_dir,
        run_dir.resume_from,
        periodic_eval=_held_out_figures(prepared) if settings.eval.eval_steps else None,
    )
    scores = _evaluate(prepared, model)
    heldout_texts = list(corpus.heldout[column])
    cloze = cloze_sentences(heldout_texts, settings.eval.cloze_probes, tokenizer.mask_token)
    probes = [(settings.eval.fill_mask_probe, ""), *cloze]
    predictions = fill_mask(fill_mask_pipeline(model, tokenizer), [text for text, _ in probes])
    results = build_results(
        settings,
        prepared.corpus,
        tokenizer,
        model,
        len(prepared.train_rows),
        prepared.heldout_rows,
        summary,
        scores,
        list(zip(probes, predictions, strict=True)),
    )
    if save:
        staging = staging_dir(run_dir.path)
        portable_head_bias(model)  # a 4.57 reader takes the unused head bias of 5.x for the trained one
        model.save_pretrained(str(staging))
        save_tokenizer(tokenizer, staging)
        write_card(staging, results)
        publish(staging, run_dir.path)
    return results
