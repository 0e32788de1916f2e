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
class Defect:
    """One upstream defect: where it is (package and version range), what breaks, and how the project avoids it."""

    key: str
    package: str
    versions: str
    breaks: str
    workaround: str
    upstream: str | None = None

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
        # Seen on 5.24.0; 4.57.6 is right. No fixed release yet.
        versions=">=5.0",
        breaks=(
            "BertForMaskedLM.forward takes **kwargs, so Trainer passes it num_items_in_batch and skips its own "
            "division by gradient_accumulation_steps, but BERT's loss ignores the count: under k-step accumulation "
            "the loss and gradients are k times too large (logged loss 7.83 for 3.92 at k=2)"
        ),
        workaround="MlmTrainer computes the loss itself (model.masked_lm_loss as Trainer's compute_loss_func)",
        upstream="https://github.com/huggingface/transformers/issues/47688",
    ),
    Defect(
        key="collator-seed-zero",
        package="transformers",
        # Seen on 4.57.6 (`if self.seed and ...`); 5.24.0 tests `is not None`.
        versions="<5.0",
        breaks="DataCollatorForLanguageModeling(seed=0) ignores the seed and masks from the global RNG",
        workaround="collate.MlmCollator creates the seeded generator for any seed, 0 included",
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
