"""Known upstream defects: library versions that break an invariant the suite checks, why, and the workaround.

The registry drives strict xfails of the raw-library contract tests (a listed version that starts passing fails
the suite, so a fix upstream is noticed), and the gate lists the defects of each side. The project's own training
path works around each one, so its runs are right on every version.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mlm_bench.runs.results import versions as installed_versions


@dataclass(frozen=True)
class Measured:
    """A defect's releases as `mlm-bench bisect` found them: the first affected (None: already at the floor, the
    oldest release bisected) and the first fixed (None: not fixed as of the newest bisected), with the date and the
    command, whose report is committed under results/bisect/<key>."""

    floor: str
    newest: str
    first_affected: str | None
    first_fixed: str | None
    date: str
    command: str

    @property
    def specifier(self) -> str:
        """The affected releases as a version specifier."""
        return ",".join([f">={self.first_affected}"] * bool(self.first_affected) +
                        [f"<{self.first_fixed}"] * bool(self.first_fixed))  # fmt: skip

    def describe(self) -> str:
        """The range in words."""
        start = f"from {self.first_affected}" if self.first_affected else f"affected at the floor ({self.floor})"
        end = f"fixed in {self.first_fixed}" if self.first_fixed else f"not fixed as of {self.newest}"
        return f"{start}, {end} (bisected {self.date})"


@dataclass(frozen=True)
class Defect:
    """One upstream defect: where it is (package and measured range), what breaks, and how the project avoids it."""

    key: str
    package: str
    measured: Measured
    breaks: str
    workaround: str
    test: str  # the raw-library contract test that shows it, by pytest node id (what `bisect defect:KEY` runs)
    upstream: str  # a thread read, or "no upstream report found"
    signature: str | None = None  # text of the library's error that names this defect where it refuses a file

    @property
    def versions(self) -> str:
        return self.measured.specifier

    def affects(self, found: dict[str, str]) -> bool:
        """Whether the package version in `found` (name -> version) lies in the defect's range."""
        version = found.get(self.package)
        if version is None or version == "not installed":
            return False
        return Version(version) in SpecifierSet(self.versions, prereleases=True)


DEFECTS: tuple[Defect, ...] = (
    Defect(
        key="bert-mlm-ga-loss",
        package="transformers",
        measured=Measured(
            floor="4.57.6",
            newest="5.25.0",
            first_affected="5.0.0",
            first_fixed=None,
            date="2026-12-07",
            command="mlm-bench bisect transformers --good 4.57.6 --bad 5.25.0 --check defect:bert-mlm-ga-loss "
            "--base-lock locks/tf5.txt --out runs/bisect/bert-mlm-ga-loss",
        ),
        breaks=(
            "BertForMaskedLM.forward takes **kwargs, so Trainer passes it num_items_in_batch and skips its own "
            "division by gradient_accumulation_steps, but BERT's loss ignores the count: under k-step accumulation "
            "the loss and gradients are k times too large (logged loss 7.83 for 3.92 at k=2)"
        ),
        workaround="MlmTrainer computes the loss itself (model.masked_lm_loss as Trainer's compute_loss_func)",
        test="tests/test_library.py::test_gradient_accumulation_changes_nothing",
        upstream="https://github.com/huggingface/transformers/issues/47688",
    ),
    Defect(
        key="collator-seed-zero",
        package="transformers",
        measured=Measured(
            floor="4.57.6",
            newest="5.25.0",
            first_affected=None,
            first_fixed="5.19.0",
            date="2026-12-07",
            command="mlm-bench bisect transformers --good 4.57.6 --bad 5.25.0 --check defect:collator-seed-zero "
            "--base-lock locks/tf5.txt --out runs/bisect/collator-seed-zero",
        ),
        # 4.57.6 to 5.18.0 test `if self.seed and ...`; 5.19.0 tests `is not None`.
        breaks="DataCollatorForLanguageModeling(seed=0) ignores the seed and masks from the global RNG",
        workaround="collate.MlmCollator creates the seeded generator for any seed, 0 included",
        test="tests/test_library.py::test_collator_seed_zero_is_a_seed",
        upstream="no upstream report found",
    ),
    Defect(
        key="tokenizer-5x-files-on-4.57",
        package="transformers",
        measured=Measured(
            floor="4.57.6",
            newest="5.25.0",
            first_affected=None,
            first_fixed="5.0.0",
            date="2026-12-07",
            command="mlm-bench bisect transformers --good 4.57.6 --bad 5.25.0 --check "
            "defect:tokenizer-5x-files-on-4.57 --base-lock locks/tf5.txt --out runs/bisect/tokenizer-5x-files-on-4.57",
        ),
        # A reader's defect: the versions are those that load the files, whichever 5.x wrote them.
        breaks=(
            "tokenizer files saved by 5.x name tokenizer_class TokenizersBackend, a class 4.57 does not have: "
            "AutoTokenizer.from_pretrained refuses them (ValueError), so a model trained on 5.x cannot be served on "
            "4.57 as saved"
        ),
        workaround="data.tokenizer.save_tokenizer names PreTrainedTokenizerFast, which 4.57 and 5.x both load "
        "(compat.portable_tokenizer_config); on 4.57, PreTrainedTokenizerFast.from_pretrained(DIR) loads such files",
        test="tests/test_library.py::test_tokenizer_files_as_5x_saves_them_load",
        # Read: the maintainer's answer there is that v4 is no longer supported.
        upstream="https://github.com/huggingface/transformers/issues/47553",
        signature="Tokenizer class TokenizersBackend does not exist",
    ),
    Defect(
        key="bert-untied-head-bias",
        package="transformers",
        measured=Measured(
            floor="4.57.6",
            newest="5.25.0",
            first_affected="5.0.0",
            first_fixed=None,
            date="2026-12-07",
            command="mlm-bench bisect transformers --good 4.57.6 --bad 5.25.0 --check defect:bert-untied-head-bias "
            "--base-lock locks/tf5.txt --out runs/bisect/bert-untied-head-bias",
        ),
        breaks=(
            "with tie_word_embeddings=False, BertLMPredictionHead keeps cls.predictions.bias apart from the decoder's "
            "bias and never uses it (4.57 made them one tensor, saved as cls.predictions.bias): a model 4.57 saved "
            "loads on 5.x without its output bias (the decoder's starts at zero, reported only as MISSING), one 5.x "
            "trained loads on 4.57 with the untrained one, and a Trainer checkpoint's optimizer state does not load "
            "across them either way (one parameter more)"
        ),
        workaround="modeling.load_model gives a decoder bias the file lacks the saved cls.predictions.bias "
        "(compat.restore_head_bias), runs save through compat.portable_head_bias (the unused bias set to the "
        "decoder's), and mlm-bench run --resume refuses a checkpoint of other versions",
        test="tests/test_library.py::test_an_untied_bert_head_has_one_output_bias",
        upstream="no upstream report found",
        signature="loaded state dict contains a parameter group that doesn't match the size of optimizer's group",
    ),
)


def active(found: dict[str, str] | None = None) -> list[Defect]:
    """The defects of the given package versions (default: the installed ones)."""
    found = installed_versions() if found is None else found
    return [defect for defect in DEFECTS if defect.affects(found)]


def lookup(key: str) -> Defect:
    """The registered defect named `key`."""
    for defect in DEFECTS:
        if defect.key == key:
            return defect
    raise KeyError(f"no known defect {key!r}: registered are {[d.key for d in DEFECTS]}")
