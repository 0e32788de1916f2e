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
