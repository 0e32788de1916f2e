"""Run an upgrade: resolve and build both sides, run the chosen stages in each, and gather what the verdict needs.

The base is the current environment frozen, or a lock; it is rebuilt fresh, never run in place, so both sides are
made the same way and differ only in what the spec moved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from mlm_bench.contract import accepted
from mlm_bench.envs import build as envs
from mlm_bench.envs.lock import moved
from mlm_bench.errors import UsageError
from mlm_bench.gate import compare as gate
from mlm_bench.gate import inputs as gate_inputs
from mlm_bench.gate import runs as gate_runs
from mlm_bench.upgrade import stages
from mlm_bench.upgrade.outcomes import read_junit, warnings_in
from mlm_bench.upgrade.verdict import Contract, Upgrade, YourSetup

SIDES = ("base", "candidate")
# The speed threshold of an interval over 3 processes per side (results/upgrade-calibration): 0 regression verdicts
# in 20 same-environment pairs idle and beside a CPU hog (the highest lower bound +1.0%), planted 20% collator and
# 10% forward slowdowns caught 4/5 and 5/5; at the gate's 7% the forward one was caught 3/5 (lower bounds +5.4%,
# +5.6%).
SLOWDOWN = 0.05
# What `--latest` moves: the libraries the suite gates (torch stays the base's: pip installs it, see envs.build).
LATEST = ("transformers", "datasets", "tokenizers", "accelerate")


@dataclass(frozen=True)
class Plan:
    """What one `mlm-bench upgrade` does."""

    spec: list[Requirement]
    out: Path
    cache: Path
    base_lock: Path | None = None
    torch: str | None = None  # pip arguments that install torch on both sides (default: torch== the running one)
    stages: tuple[str, ...] = stages.STAGES
    processes: int = 3
    tests: str | None = None  # pytest -k of the contract tests (all by default)
    benchmarks: str | None = None  # pytest -k of the CPU benchmarks
    accepted: Path | None = None
    thresholds: gate.Thresholds = field(default_factory=lambda: gate.Thresholds(slowdown=SLOWDOWN))
    model: Path | None = None  # the user's saved model (stage setup): its contract, a short run, its artifacts
    config: Path | None = None  # the settings the user trains it with (default: its run's results.json)
    model_steps: int = 20  # steps of the user's short run


@dataclass(frozen=True)
class Outcome:
    """An upgrade run: both sides' version sets, what moved, the verdict's inputs, and how long it took."""

    versions: dict[str, envs.VersionSet]
    moved: list[str]
    upgrade: Upgrade
    warnings: dict[str, list[str]]
    environments: dict[str, str]
    seconds: dict[str, float]


def run(plan: Plan, root: Path, say: Callable[[str], None] = print) -> Outcome:
    """Build both sides and run the plan's stages in each; the Outcome the report is written from."""
    started = time.perf_counter()
    frozen = envs.frozen_base(plan.base_lock, plan.torch)
    spec = plan.spec or [Requirement(name) for name in LATEST]
    say(f"resolving the base ({len(frozen.pins)} packages), then it with {' '.join(map(str, spec))}")
    base = envs.resolve(frozen, [], root)
    versions = {"base": base, "candidate": envs.resolve(base, spec, root)}
    changed = moved(base.as_dict(), versions["candidate"].as_dict())
    say("packages that move: " + ("; ".join(changed) or "none (a same-set upgrade)"))
    sides = {}
    for name in SIDES:
        python = envs.build(versions[name], root, plan.cache, say)
        sides[name] = stages.Side(name, python, plan.out / name)
        sides[name].out.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    upgrade, warnings = _measure(plan, root, sides, say, versions)
    seconds = {"build": built - started, "stages": time.perf_counter() - built, "total": time.perf_counter() - started}
    environments = {name: str(side.python.parent.parent) for name, side in sides.items()}
    return Outcome(versions, changed, upgrade, warnings, environments, seconds)


def _steps(plan: Plan) -> list[str]:
    """Every step in the order they run, for the progress lines' count and time left."""
    steps = [stage for stage in (stages.TESTS, stages.FINGERPRINT) if stage in plan.stages for _ in SIDES]
    steps += [step for step in stages.SETUP_STEPS for _ in SIDES] if stages.SETUP in plan.stages else []
    return steps + ([stages.BENCHMARKS] * 2 * plan.processes if stages.BENCHMARKS in plan.stages else [])


def _measure(
    plan: Plan, root: Path, sides: dict[str, stages.Side], say: Callable[[str], None], versions: dict
) -> tuple[Upgrade, dict[str, list[str]]]:
    """Run the stages on both sides; the verdict's inputs and each side's warnings."""
    clock, failures = stages.Clock(_steps(plan), say), {name: [] for name in SIDES}
    contract = _contract(plan, root, sides, clock, failures)
    prints = _fingerprints(plan, root, sides, clock, failures)
    setup = _your_setup(plan, root, sides, clock, failures, versions)
    runs = _benchmarks(plan, root, sides, clock, failures)
    warnings = {
        n: warnings_in(s.out / "tests.log") if (s.out / "tests.log").is_file() else [] for n, s in sides.items()
    }
    entries = accepted.load(plan.accepted or accepted.SHIPPED / accepted.ACCEPTED)
    result = None
    if runs:
        try:
            result = gate.compare(*runs, plan.thresholds, prints, accepted_entries=entries)
        except UsageError as err:  # e.g. the candidate scored other evaluation texts: nothing to compare speed with
            failures["candidate"].append(f"the benchmarks do not compare: {err}")
    fingerprint = result.fingerprints if result else (gate.diff_fingerprints(*prints, entries) if prints else None)
    new_warnings = [w for w in warnings["candidate"] if w not in warnings["base"]]
    upgrade = Upgrade(contract, fingerprint, result, new_warnings, failures["candidate"], plan.processes,
                      failures["base"], setup)  # fmt: skip
    return upgrade, warnings


def _on_both_sides(stage, what, work, sides, clock, failures) -> dict:
    """`work(side)` on each side, each one progress step of `stage` (said as `what`); the results by side name,
    without the sides the stage failed on (their failures recorded)."""
    found = {}
    for name, side in sides.items():
        started = clock.start(stage, f"{name}: {what}")
        try:
            found[name] = work(side)
        except stages.StageFailed as err:
            failures[name].append(str(err))
        clock.finish(stage, started)
    return found


def _contract(plan, root, sides, clock, failures) -> Contract | None:
    if stages.TESTS not in plan.stages:
        return None

    def tests(side: stages.Side):
        stages.run_tests(side, root, plan.tests)
        return read_junit(side.out / "tests.xml", root)

    found = _on_both_sides(stages.TESTS, "contract tests", tests, sides, clock, failures)
    return Contract(found["base"], found["candidate"]) if len(found) == 2 else None


def _fingerprints(plan, root, sides, clock, failures) -> tuple[dict, dict] | None:
    if stages.FINGERPRINT not in plan.stages:
        return None
    found = _on_both_sides(stages.FINGERPRINT, "fingerprint", lambda side: gate_inputs.load_fingerprint(
        stages.run_fingerprint(side, root)), sides, clock, failures)  # fmt: skip
    return (found["base"], found["candidate"]) if len(found) == 2 else None


def _benchmarks(plan, root, sides, clock, failures) -> tuple[gate_inputs.BenchmarkRun, ...] | None:
    """The CPU benchmarks, one process per side in turn (base, candidate, base, ...), each side's processes read
    as one run with each process's rounds kept."""
    if stages.BENCHMARKS not in plan.stages:
        return None
    for process in range(plan.processes):
        for name, side in sides.items():
            started = clock.start(stages.BENCHMARKS, f"{name}: benchmarks, process {process + 1}/{plan.processes}")
            try:
                stages.run_benchmarks(side, root, process, plan.benchmarks)
            except stages.StageFailed as err:
                failures[name].append(str(err))
                return None
            clock.finish(stages.BENCHMARKS, started)
    return tuple(gate_inputs.load_side(side.out / "benchmarks") for side in sides.values())


def _your_setup(plan, root, sides, clock, failures, versions) -> YourSetup | None:
    """The user's model on both sides: its contract, a short run of its settings, and its artifacts across."""
    if stages.SETUP not in plan.stages:
        return None
    model, config = plan.model, plan.config
    junits = _on_both_sides(
        "your contract",
        "your contract (pytest --pyargs mlm_bench.contract)",
        lambda side: read_junit(stages.run_your_contract(side, model, config), root),
        sides,
        clock,
        failures,
    )
    runs = _on_both_sides(
        "your run",
        f"your run ({plan.model_steps} steps)",
        lambda side: stages.run_your_training(side, model, config, plan.model_steps),
        sides,
        clock,
        failures,
    )
    written = _on_both_sides(
        "write artifacts",
        "writing your model, tokenizer and a checkpoint",
        lambda side: stages.run_crossing(side, "write", model, config),
        sides,
        clock,
        failures,
    )
    crossings = []
    for name, side in sides.items():
        other = SIDES[1 - SIDES.index(name)]
        started = clock.start("read artifacts", f"{name}: reading what {other} wrote")
        crossings += _read_across(plan, side, (written.get(other), written.get(name)), runs, versions, other, failures)
        clock.finish("read artifacts", started)
    contract = Contract(junits["base"], junits["candidate"]) if len(junits) == 2 else None
    learning = None
    if len(runs) == 2:
        try:
            learning = gate_runs.compare_runs(*(gate_runs.load_run(runs[n]) for n in SIDES), plan.thresholds)
        except UsageError as err:
            failures["candidate"].append(f"your runs do not compare: {err}")
    return YourSetup(contract, learning, crossings)


def _read_across(plan, side, written, runs, versions, other, failures) -> list[dict]:
    """What `side` makes of what `other` wrote (model, tokenizer, checkpoint) and of both runs' results.json."""
    theirs, own = written
    found = []
    if theirs and own:
        try:
            folder = stages.run_crossing(side, "read", plan.model, plan.config, "--written", str(theirs), "--own",
                                         str(own))  # fmt: skip
            found += json.loads((folder / "crossing.json").read_text(encoding="utf-8"))
        except stages.StageFailed as err:
            failures[side.name].append(str(err))
    if len(runs) == 2:
        code, line = stages.gate_reads(side, (runs["base"], runs["candidate"]))
        status = "works" if code in (0, 1) else "refused" if code == 2 else "broken"
        detail = f"its gate read both runs (exit {code})" if status == "works" else line or f"gate exited {code}"
        found.append({"path": "results.json", "writer": versions[other].as_dict()["transformers"],
                      "reader": versions[side.name].as_dict()["transformers"], "status": status, "detail": detail,
                      "known": None})  # fmt: skip
    return found
