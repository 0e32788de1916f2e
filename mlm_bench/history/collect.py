"""Collect: each release's environment (the base's pins plus that release, by the envs layer and its cache, the rule
`upgrade` and `bisect` resolve by) and what ran in it, written once per release and reused while the release's
version set and the stages asked for are the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from mlm_bench.envs import build as envs
from mlm_bench.errors import BuildError, UsageError
from mlm_bench.runs.results import flatten, write_json_atomic
from mlm_bench.upgrade import stages
from mlm_bench.upgrade.outcomes import read_junit

RECORD = "record.json"  # written last: a release folder without it is run again
FIRST_GUESS = 120.0  # seconds per release before one has run: an environment, the fast suite and the fingerprint


@dataclass(frozen=True)
class Plan:
    """What one `mlm-bench history` covers and where it keeps what ran."""

    package: str
    releases: tuple[str, ...]
    out: Path
    cache: Path
    base_lock: Path | None = None
    torch: str | None = None
    benchmarks: bool = False
    processes: int = 2
    tests: str | None = None  # pytest -k of the contract tests (all by default)


def last_of_each_minor(found: list[Version], since: str) -> list[str]:
    """The newest release of each minor line from `since` (e.g. 4.57) on, oldest first."""
    floor = Version(since).release[:2]
    newest: dict[tuple[int, ...], Version] = {}
    for version in found:
        if version.release[:2] >= floor:
            newest[version.release[:2]] = max(version, newest.get(version.release[:2], version))
    return [str(newest[line]) for line in sorted(newest)]


def base_set(plan: Plan, root: Path) -> envs.VersionSet:
    """The pins every release is added to: the running environment frozen, or the lock, resolved with the checkout."""
    return envs.resolve(envs.frozen_base(plan.base_lock, plan.torch), [], root, prune=True)


def collect(plan: Plan, root: Path, say: Callable[[str], None] = print) -> tuple[envs.VersionSet, list[dict]]:
    """The base, and every release's record, run now or reused, in the plan's order."""
    if len(plan.releases) < 2:
        raise UsageError(f"a history needs two releases or more, got {len(plan.releases)}: pass more --releases")
    base, records, took = base_set(plan, root), [], []
    for number, release in enumerate(plan.releases, 1):
        left = (len(plan.releases) - len(took)) * (sum(took) / len(took) if took else FIRST_GUESS)
        say(f"[{number}/{len(plan.releases)}] {plan.package} {release} (about {left / 60:.0f} min left)")
        started = time.perf_counter()
        records.append(_release(plan, base, release, root, say))
        took.append(time.perf_counter() - started)
    return base, records


def _release(plan: Plan, base: envs.VersionSet, release: str, root: Path, say: Callable[[str], None]) -> dict:
    """One release's record: reused when its version set and stages match, else run; a set that cannot be resolved,
    built or imported is recorded as such."""
    folder = plan.out / "releases" / release
    wanted = {"release": release, "with_benchmarks": plan.benchmarks, "processes": plan.processes,
              "tests_k": plan.tests}  # fmt: skip
    try:
        versions = envs.resolve(base, [Requirement(f"{plan.package}=={release}")], root, prune=True)
        wanted["versions"] = versions.as_dict()
        kept = _kept(folder, wanted)
        if kept:
            say(f"{release}: reusing {folder / RECORD}")
            return kept
        python = envs.build(versions, root, plan.cache, say)
    except BuildError as err:
        say(f"{release}: cannot build ({err})")
        return {**wanted, "error": str(err)}
    return _run(plan, wanted, stages.Side(release, python, folder), root, say)


def _kept(folder: Path, wanted: dict) -> dict | None:
    """The release's earlier record where it ran the same version set and stages."""
    path = folder / RECORD
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if all(record.get(key) == value for key, value in wanted.items()) else None


def _run(plan: Plan, wanted: dict, side: stages.Side, root: Path, say: Callable[[str], None]) -> dict:
    """Run the stages in the release's environment and write its record (a stage that cannot finish is recorded)."""
    side.out.mkdir(parents=True, exist_ok=True)
    (side.out / RECORD).unlink(missing_ok=True)
    record: dict = {**wanted, "tests": {}, "reasons": {}, "fingerprint": {}, "benchmarks": [], "stage_errors": []}
    try:
        say(f"{side.name}: the contract tests")
        stages.run_tests(side, root, plan.tests)
        outcomes = read_junit(side.out / "tests.xml", root)
        record["tests"], record["reasons"] = outcomes.status, outcomes.reasons
        say(f"{side.name}: the fingerprint")
        written = stages.run_fingerprint(side, root)
        record["fingerprint"] = flatten(json.loads(written.read_text(encoding="utf-8")))
        if plan.benchmarks:
            say(f"{side.name}: the CPU benchmarks, {plan.processes} processes")
            files = [stages.run_benchmarks(side, root, p, None) for p in range(plan.processes)]
            record["benchmarks"] = [str(f.relative_to(side.out)) for f in files]
    except stages.StageFailed as err:
        record["stage_errors"].append(str(err))
    write_json_atomic(side.out / RECORD, record)
    return record
