"""Run a bisect: list the releases, build each probed one's environment (the base's pins plus that release, by the
envs layer and its cache, the rule `upgrade` resolves by) and run the check in it, until search has the boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from mlm_bench.bisect import checks, index, search
from mlm_bench.envs import build as envs
from mlm_bench.envs.lock import moved
from mlm_bench.errors import BuildError, UsageError

# What can be bisected: the libraries the suite gates. torch is pip-installed from the user's own wheel source
# (envs.build), whose releases this index listing does not cover.
PACKAGES = ("transformers", "tokenizers", "datasets", "accelerate")
FIRST_GUESS = 90.0  # seconds per probe before one has run: a cold environment and one test on the 2-core VM


@dataclass(frozen=True)
class Plan:
    """What one `mlm-bench bisect` does."""

    package: str
    good: str
    bad: str
    check: str
    out: Path
    cache: Path
    base_lock: Path | None = None
    torch: str | None = None
    index_url: str = index.PYPI
    prereleases: bool = False
    yanked: bool = False


@dataclass(frozen=True)
class Outcome:
    """A finished bisect: the answer, the base it probed from, the UTC date it ran and how long it took."""

    answer: search.Answer
    base: envs.VersionSet
    date: str
    seconds: float


def run(plan: Plan, root: Path, say: Callable[[str], None] = print) -> Outcome:
    """Bisect the plan's package for the first release whose check result differs from --good's."""
    if plan.package not in PACKAGES:
        raise UsageError(f"cannot bisect {plan.package}: pass one of {', '.join(PACKAGES)}")
    started, date = time.perf_counter(), time.strftime("%Y-%m-%d", time.gmtime())
    check = checks.parse(plan.check, root)
    found = index.releases(index.fetch(plan.package, plan.index_url), plan.prereleases, plan.yanked)
    releases = index.between(found, plan.good, plan.bad)
    say(f"{len(releases)} releases of {plan.package} from {plan.good} to {plan.bad}: about "
        f"{search.expected_probes(len(releases))} probes; checking {plan.check}")  # fmt: skip
    base = envs.resolve(envs.frozen_base(plan.base_lock, plan.torch), [], root, prune=True)
    probe = _prober(plan, check, base, root, say, search.expected_probes(len(releases)))
    answer = search.bisect(releases, probe)
    return Outcome(answer, base, date, time.perf_counter() - started)


def _prober(
    plan: Plan, check: checks.Check, base: envs.VersionSet, root: Path, say: Callable[[str], None], expected: int
) -> Callable[[str], search.Probe]:
    """The probe search calls: build the release's environment, run the check, and name what else moved."""
    took: list[float] = []

    def probe(release: str) -> search.Probe:
        count = len(took) + 1
        left = max(expected - len(took), 1) * (sum(took) / len(took) if took else FIRST_GUESS)
        say(f"[probe {count}/~{expected}] {plan.package} {release} (about {left / 60:.0f} min left)")
        started = time.perf_counter()
        try:
            versions = envs.resolve(base, [Requirement(f"{plan.package}=={release}")], root, prune=True)
            python = envs.build(versions, root, plan.cache, say)
        except BuildError as err:
            took.append(time.perf_counter() - started)
            say(f"[probe {count}] {release}: skipped, {err}")
            return search.Probe(release, None, took[-1], f"skipped: {err}")
        result, why = check.run(python, root, plan.out / "probes" / release)
        others = [m for m in moved(base.as_dict(), versions.as_dict()) if not m.startswith(f"{plan.package} ")]
        note = "; ".join(filter(None, [why, f"also moved: {', '.join(others)}" if others else ""]))
        took.append(time.perf_counter() - started)
        say(f"[probe {count}] {release}: {result or 'skipped, ' + why} ({took[-1]:.0f} s)")
        return search.Probe(release, result, took[-1], note)

    return probe
