"""The user's own setup, as the public contract checks it (`pytest --pyargs mlm_bench.contract --mlm-model DIR`): a
saved masked LM and its tokenizer, the settings it was trained with, and what the run that saved it recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mlm_bench.config import Settings, preset, settings_file
from mlm_bench.data.corpus import load_corpus
from mlm_bench.errors import UsageError
from mlm_bench.runs.results import RESULTS_FILE

# Held-out rows the checks encode: enough eligible tokens for the masking rates' binomial bounds, few for seconds.
ROWS = 200


@dataclass(frozen=True)
class Setup:
    """Where the user's model and tokenizer are, the settings they train with, and the record of the run that saved
    them (results.json; empty when the directory was saved some other way)."""

    model_dir: Path
    tokenizer_dir: Path
    settings: Settings
    recorded: dict[str, Any]

    def tokenizer(self) -> PreTrainedTokenizerBase:
        return load_tokenizer(self.tokenizer_dir)

    def model(self) -> PreTrainedModel:
        return load_model(self.model_dir)

    def heldout(self) -> tuple[datasets.Dataset, str]:
        """Up to ROWS held-out rows of the settings' corpus, split as their run split it, and its text column."""
        corpus = load_corpus(self.settings)
        return corpus.heldout.select(range(min(ROWS, len(corpus.heldout)))), corpus.text_column


def load_setup(model_dir: Path, tokenizer_dir: Path | None = None, config: Path | None = None) -> Setup:
    """The setup in `model_dir` (tokenizer there too unless given), with the settings of `config`, else of the
    run that saved the directory (its results.json), else tiny-zh's."""
    if not (model_dir / "config.json").is_file():
        raise UsageError(f"{model_dir} holds no config.json: pass a directory written by save_pretrained or by "
                         "`mlm-bench run` as --mlm-model")  # fmt: skip
    results = model_dir / RESULTS_FILE
    recorded = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else {}
    fields = settings_file(config) if config else settings_file(results) if recorded else {}
    name = fields.pop("preset", "tiny-zh")
    return Setup(model_dir, tokenizer_dir or model_dir, preset(name, **fields), recorded)


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in `directory`, as a user loads it."""
    return AutoTokenizer.from_pretrained(str(directory))


def load_model(directory: Path) -> PreTrainedModel:
    """The masked LM saved in `directory`, in eval mode, as a user loads it."""
    return AutoModelForMaskedLM.from_pretrained(str(directory)).eval()
