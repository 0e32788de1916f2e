"""Locks: the exact versions the suite was verified on, one file per tox line, moved only after the suite passed.

A lock pins every package pyproject's dependencies and extras resolve to, except torch: the torch build is the
user's (CPU or CUDA) and is installed first, so the lock pins that torch's own requirements instead. A fresh venv
gets torch (by pip, which finds the local CPU wheel on our machines); `uv pip compile` then resolves the line's
newest allowed set for that venv's Python and platform, uv installs it, and `pytest tests/` runs there. A refresh
writes the lock only when that run passed.
"""

from __future__ import annotations

import datetime
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlm_bench.errors import RunError, UsageError

# Each tox line's own ranges on top of pyproject's: what makes tf4 a 4.57 line and tf5 a 5.x line.
LINES = {
    "tf5": ("transformers>=5,<6", "datasets>=4,<6"),
    "tf4": ("transformers>=4.57,<4.58", "datasets>=3,<4"),
}
LOCK_DIR = "locks"
# An override whose marker never holds removes torch from the resolution, and with it what only torch pulls in
# (the CUDA wheels of PyPI's Linux torch); the venv's own torch's requirements are resolved in its place.
WITHOUT_TORCH = 'torch; sys_platform == "never"\n'
# The whole suite, slow tests too (-m ""), as CI runs it in two steps.
TEST_COMMAND = ("-m", "pytest", "tests/", "--hypothesis-profile", "ci", "-n", "2", "-q", "-m", "")
# Against the newest releases a new warning is reported, not fatal; a refresh keeps pyproject's warnings-as-errors.
LENIENT = ("-W", "default")
SUMMARY = re.compile(r"\b\d+ (passed|failed|error)")


@dataclass(frozen=True)
class SuiteResult:
    """How `pytest tests/` ended in an environment: its exit code and pytest's closing line."""

    exit_code: int
    summary: str

    @property
    def passed(self) -> bool:
        """Whether pytest exited 0."""
        return self.exit_code == 0


def checkout(start: Path) -> Path:
    """The mlm-bench checkout holding `start` (locks, pyproject and tests live there, not in an installed wheel)."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "tests").is_dir() and (folder / "mlm_bench").is_dir():
            return folder
    raise UsageError(
        f"{start} is not inside an mlm-bench checkout (its tests, benchmarks and locks): run this from a clone of "
        "the repository"
    )


def uv_binary() -> str:
    """The uv executable: the `uv` package's own, else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
    if found is None:
        raise UsageError("uv is not installed: pip install 'mlm-bench[envs]' (or uv itself), then run this again")
    return found


def pins(path: Path) -> dict[str, str]:
    """A lock's pinned versions, by normalized name; a line that is not an exact pin is refused, naming it."""
    found = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        text = text.split("#", 1)[0].strip()
        if text:
            requirement = _pin(text, path)
            found[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return found


def _pin(text: str, path: Path) -> Requirement:
    """One line of a lock as an exact pin, refused naming the line otherwise."""
    try:
        found = Requirement(text)
    except InvalidRequirement:
        found = None
    if found is None or found.url or len(found.specifier) != 1 or next(iter(found.specifier)).operator != "==":
        raise UsageError(f"{path}: {text!r} is not an exact pin (name==version): pass a lock of pins only")
    return found


def moved(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """`name old -> new` for every package whose pin changed, came or went."""
    names = sorted(set(old) | set(new))
    return [f"{n} {old.get(n, '(none)')} -> {new.get(n, '(none)')}" for n in names if old.get(n) != new.get(n)]


def step(command: list[str], what: str, error: type[Exception] = RunError) -> str:
    """Run one command of building or resolving; its stdout, or `error` naming the command and, in one line, the
    end of what it said."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise error(f"{what} failed: `{' '.join(command)}` said: {' '.join(done.stderr.split())[-800:]}")
    return done.stdout


def create_env(env: Path, torch_spec: str) -> Path:
    """A fresh venv at `env` holding `torch_spec` (by pip, which finds a local CPU wheel); its python."""
    shutil.rmtree(env, ignore_errors=True)
    python = env / "bin" / "python"
    step([sys.executable, "-m", "venv", str(env)], f"creating {env}")
    step([str(python), "-m", "pip", "install", "-q", torch_spec], f"installing {torch_spec} into {env}")
    return python


def installed(python: Path, name: str) -> str:
    """The version of `name` installed in the environment of `python`."""
    return step([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"], "reading").strip()


def torch_requirements(python: Path) -> list[str]:
    """The runtime requirements of the torch installed in the environment of `python`."""
    code = "import importlib.metadata as m; print(*(r for r in m.requires('torch') if 'extra ==' not in r), sep='\\n')"
    return step([str(python), "-c", code], "reading torch's requirements").splitlines()


def compile_lock(root: Path, line: str, out: Path, python: Path) -> None:
    """Resolve the newest set `line` allows for the venv of `python`: pyproject with every extra, and the venv's
    torch's requirements in torch's place."""
    out.unlink(missing_ok=True)  # uv keeps the pins of an existing output file
    wanted = [*LINES[line], *torch_requirements(python)]
    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch)
        (inputs / "line.txt").write_text("\n".join(wanted) + "\n", encoding="utf-8")
        (inputs / "overrides.txt").write_text(WITHOUT_TORCH, encoding="utf-8")
        command = [uv_binary(), "pip", "compile", str(root / "pyproject.toml"), str(inputs / "line.txt"),
                   "--all-extras", "--override", str(inputs / "overrides.txt"), "--python", str(python), "--upgrade",
                   "--no-header", "--no-annotate", "--quiet", "--output-file", str(out)]  # fmt: skip
        step(command, f"resolving line {line} (check its ranges in mlm_bench/envs/lock.py and the package index)")


def install_lock(root: Path, python: Path, lock: Path) -> None:
    """Install the lock and the checkout (with its test extra) into the venv of `python`, by uv."""
    # Bytecode compiled as pip does, so the suite's first run here is timed as in a pip-built venv.
    step([uv_binary(), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), "-r", str(lock),
           "-e", f"{root}[test]"], f"installing {lock}")  # fmt: skip


def run_suite(root: Path, python: Path, strict: bool) -> SuiteResult:
    """`pytest tests/`, slow tests too, warnings fatal only if `strict`; its output passed through as it comes,
    pytest's closing line kept."""
    summary = ""
    command = [str(python), *TEST_COMMAND, *(() if strict else LENIENT)]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as suite:
        assert suite.stdout is not None
        for text in suite.stdout:
            print(text, end="", flush=True)
            summary = text.strip(" =\n") if SUMMARY.search(text) else summary
    return SuiteResult(suite.returncode, summary or f"pytest exited {suite.returncode} with no summary line")


HEADER = "# Line {line} ({ranges}): the versions `pytest tests/` passed on, {date}:"


def write_lock(candidate: Path, dest: Path, line: str, result: SuiteResult, torch_version: str) -> None:
    """Put `candidate` in place at `dest`, headed by what it was verified with and resolved for."""
    counts = re.sub(r", \d+ warnings?| \(\d+:\d+:\d+\)", "", result.summary)
    # The venv is made by this interpreter, so its Python and platform are this one's.
    where = f"python {platform.python_version()} on {platform.system()} {platform.machine()}"
    header = [
        HEADER.format(line=line, ranges=", ".join(LINES[line]), date=datetime.date.today()),
        f"#   {counts}; {where} (resolved for that Python and platform), torch {torch_version}",
        "#   (torch is installed first and not locked: the requirements of that torch are pinned here instead).",
        f"# Made by `mlm-bench lock --line {line} --refresh` (uv pip compile of pyproject.toml, every extra).",
    ]
    body = candidate.read_text(encoding="utf-8")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".tmp")
    partial.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    partial.replace(dest)  # never a half-written lock


def verify(root: Path, line: str, work: Path, torch_spec: str, refresh: bool) -> SuiteResult:
    """Build a fresh venv under `work`, resolve `line`'s newest set for it, say which pins moved, run the suite
    there, and with `refresh` write the lock when the suite passed."""
    candidate, committed = work / f"{line}.txt", root / LOCK_DIR / f"{line}.txt"
    work.mkdir(parents=True, exist_ok=True)
    print(f"[{line}] building {work / 'env'} with {torch_spec}", flush=True)
    python = create_env(work / "env", torch_spec)
    print(f"[{line}] resolving the newest versions {', '.join(LINES[line])} allows", flush=True)
    compile_lock(root, line, candidate, python)
    if committed.exists():
        changes = moved(pins(committed), pins(candidate))
        print(f"[{line}] against {committed}: {f'{len(changes)} pin(s) moved' if changes else 'no pin moved'}")
        print("".join(f"  {change}\n" for change in changes), end="")
    else:
        print(f"[{line}] no committed lock yet ({committed}): {len(pins(candidate))} pins resolved")
    install_lock(root, python, candidate)
    result = verified_in_place(root, python, candidate, committed, line) if refresh else run_suite(root, python, False)
    print(f"[{line}] {'passed' if result.passed else 'FAILED'}: {result.summary}")
    if result.passed and refresh:
        print(f"[{line}] wrote {committed}")
    return result


def verified_in_place(root: Path, python: Path, candidate: Path, committed: Path, line: str) -> SuiteResult:
    """The strict suite with the candidate in the lock's place (the suite checks the lock of its own line), the
    lock kept only if it passed: otherwise the previous one is put back, even on Ctrl-C."""
    previous = committed.read_bytes() if committed.exists() else None
    torch_version = installed(python, "torch")
    result = SuiteResult(1, "not run")
    try:
        write_lock(
            candidate, committed, line, SuiteResult(0, "being verified: the suite is running on it"), torch_version
        )
        result = run_suite(root, python, strict=True)
        if result.passed:
            write_lock(candidate, committed, line, result, torch_version)
    finally:
        if not result.passed and previous is None:
            committed.unlink(missing_ok=True)
        elif not result.passed:
            committed.write_bytes(previous)
    return result


def running_line() -> str | None:
    """The tox line whose ranges the installed transformers and datasets satisfy (None for neither)."""
    from importlib.metadata import version

    for line, ranges in LINES.items():
        if all(version(r.name) in r.specifier for r in map(Requirement, ranges)):
            return line
    return None
