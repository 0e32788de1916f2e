"""Stages: what `mlm-bench upgrade` runs in each side's environment, each a subprocess of that environment's python
run from the checkout, its output kept in the side's folder.

The contract tests (junit XML and the log, warnings reported not fatal, so a new warning is listed rather than
failing every test), the fingerprint, and the CPU benchmarks, one process at a time alternating base and candidate
so whatever else the machine does falls on both sides alike.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StageFailed(RuntimeError):
    """A stage that ran but could not finish in one side's environment: a finding of the report, not a crash."""


TESTS = "tests"
FINGERPRINT = "fingerprint"
BENCHMARKS = "benchmarks"
STAGES = (TESTS, FINGERPRINT, BENCHMARKS)
# With --model: the user's own setup (its contract, a short run of its settings, its artifacts across the sides).
SETUP = "setup"
SETUP_STEPS = ("your contract", "your run", "write artifacts", "read artifacts")
# Seconds each step took on the 2-core VM (results/upgrade/tf5.24-to-tf5.25, 7 Dec 2026): the first estimate of
# the time left, replaced by what the steps of this run take.
FIRST_GUESS = {TESTS: 56.0, FINGERPRINT: 10.0, BENCHMARKS: 46.0, "your contract": 15.0, "your run": 15.0,
               "write artifacts": 10.0, "read artifacts": 15.0}  # fmt: skip
# The fast suite with every known defect as an xfail; `-W default` reports a warning the lock's filters would make
# an error (a new release's deprecation is news, not a failed contract); file order, so both sides run alike.
TEST_ARGS = ("-m", "pytest", "tests/", "--hypothesis-profile", "ci", "-n", "2", "-p", "no:randomly", "-W", "default",
             "-rfEsx", "-q")  # fmt: skip
BENCHMARK_FILE = Path("benchmarks") / "test_cpu.py"


@dataclass(frozen=True)
class Side:
    """One side of an upgrade: its name, its environment's python and the folder its outputs go to."""

    name: str
    python: Path
    out: Path


class Clock:
    """Progress lines with the time left, estimated from the steps still to run at the pace of those done."""

    def __init__(self, steps: list[str], say: Callable[[str], None]) -> None:
        self.left = list(steps)
        self.took: dict[str, list[float]] = {}
        self.say = say
        self.done = 0

    def start(self, step: str, what: str) -> float:
        total = self.done + len(self.left)
        self.say(f"[{self.done + 1}/{total}] {what} (about {_minutes(self.eta())} left)")
        return time.perf_counter()

    def finish(self, step: str, started: float) -> None:
        self.took.setdefault(step, []).append(time.perf_counter() - started)
        self.left.remove(step)
        self.done += 1

    def eta(self) -> float:
        """Seconds the steps left will take: each at the mean of its kind so far, else the first guess."""
        return sum(_mean(self.took.get(step)) or FIRST_GUESS[step] for step in self.left)


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_tests(side: Side, root: Path, select: str | None) -> int:
    """The contract tests in the side's environment: junit and log in its folder; pytest's exit code."""
    junit, log = side.out / "tests.xml", side.out / "tests.log"
    extra = ("-k", select) if select else ()
    code = _logged([str(side.python), *TEST_ARGS, f"--junitxml={junit}", *extra], root, log)
    if code not in (0, 1) or not junit.is_file():  # 1: tests failed, which the report shows
        raise StageFailed(f"the tests could not run in {side.name}'s environment (pytest exited {code}): read {log}")
    return code


def _logged(command: list[str], root: Path, log: Path) -> int:
    """Run `command` from the checkout with its output into `log`; its exit code."""
    with log.open("w", encoding="utf-8") as sink:
        return subprocess.run(command, cwd=root, stdout=sink, stderr=subprocess.STDOUT).returncode


def run_fingerprint(side: Side, root: Path) -> Path:
    """The side's fingerprint, written into an empty folder of its own (compared by the report, not here)."""
    folder = side.out / "fingerprint"
    folder.mkdir(exist_ok=True)
    command = [str(side.python), "-m", "mlm_bench", "fingerprint", "--dir", str(folder)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    written = sorted(folder.glob("*.json"))
    if done.returncode or len(written) != 1:
        tail = " ".join((done.stderr or done.stdout).split())[-400:]
        raise StageFailed(f"the fingerprint failed in {side.name}'s environment: {tail}")
    return written[0]


def run_benchmarks(side: Side, root: Path, process: int, select: str | None, extra: tuple[str, ...] = ()) -> Path:
    """One process of the CPU benchmarks in the side's environment; the pytest-benchmark JSON it wrote (extra:
    pytest options, which only the calibration passes, to plant a slowdown)."""
    out = side.out / "benchmarks" / f"process-{process}.json"
    out.parent.mkdir(exist_ok=True)
    chosen = ("-k", select) if select else ()
    command = [str(side.python), "-m", "pytest", str(BENCHMARK_FILE), "-q", "-p", "no:randomly", "-W", "default",
               f"--benchmark-json={out}", *chosen, *extra]  # fmt: skip
    log = out.with_suffix(".log")
    code = _logged(command, root, log)
    if code or not out.is_file():
        raise StageFailed(f"the benchmarks failed in {side.name}'s environment (pytest exited {code}): read {log}")
    return out


def _folder(side: Side, name: str) -> Path:
    folder = side.out / "setup" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _config_args(flag: str, config: Path | None) -> list[str]:
    return [flag, str(config)] if config else []


def run_your_contract(side: Side, model: Path, config: Path | None) -> Path:
    """`pytest --pyargs mlm_bench.contract` on the user's model in the side's environment, run from a folder of its
    own as a user runs it; the junit XML it wrote."""
    folder = _folder(side, "contract")
    junit = folder / "contract.xml"
    command = [str(side.python), "-m", "pytest", "--pyargs", "mlm_bench.contract", "--mlm-model", str(model),
               *_config_args("--mlm-config", config), "-p", "no:randomly", "-p", "no:cacheprovider", "-W", "default",
               "-rfEsx", "-q", f"--junitxml={junit}"]  # fmt: skip
    code = _logged(command, folder, folder / "contract.log")
    if code not in (0, 1) or not junit.is_file():
        raise StageFailed(f"your contract could not run in {side.name}'s environment (pytest exited {code}): read "
                          f"{folder / 'contract.log'}")  # fmt: skip
    return junit


def run_your_training(side: Side, model: Path, config: Path | None, steps: int) -> Path:
    """A short run of the user's settings from the user's model (`mlm-bench run`, `steps` steps); its results.json."""
    folder = _folder(side, "run")
    recorded = model / "results.json"
    settings = config or (recorded if recorded.is_file() else None)
    command = [str(side.python), "-m", "mlm_bench", "run", *_config_args("--config", settings), "--model_name_or_path",
               str(model), "--max_steps", str(steps), "--output-dir", str(folder), "--force"]  # fmt: skip
    code = _logged(command, side.out / "setup", side.out / "setup" / "run.log")
    if code or not (folder / "results.json").is_file():
        raise StageFailed(f"your run failed in {side.name}'s environment (exit {code}): read "
                          f"{side.out / 'setup' / 'run.log'}")  # fmt: skip
    return folder / "results.json"


def run_crossing(side: Side, step: str, model: Path, config: Path | None, *other: str) -> Path:
    """`python -m mlm_bench.contract.crossing STEP` in the side's environment; the folder it wrote."""
    folder = _folder(side, step)
    command = [str(side.python), "-m", "mlm_bench.contract.crossing", step, "--model", str(model),
               *_config_args("--config", config), "--out", str(folder), *other]  # fmt: skip
    code = _logged(command, folder, folder / f"{step}.log")
    if code:
        raise StageFailed(f"the cross-version artifacts' {step} step failed in {side.name}'s environment (exit "
                          f"{code}): read {folder / f'{step}.log'}")  # fmt: skip
    return folder


def gate_reads(side: Side, results: tuple[Path, Path]) -> tuple[int, str]:
    """The side's own `mlm-bench gate --results` on two runs' results.json: its exit code and last stderr line."""
    command = [str(side.python), "-m", "mlm_bench", "gate", "--results", *map(str, results)]
    done = subprocess.run(command, cwd=side.out, capture_output=True, text=True)
    return done.returncode, (done.stderr.strip().splitlines() or [""])[-1]
