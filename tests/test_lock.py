"""Locks (mlm_bench/envs/lock.py): each tox line's lock pins what pyproject asks for, torch aside, and a refresh
writes a lock only after the suite passed on it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlm_bench.cli import main
from mlm_bench.cli.exits import EXIT_FAILED
from mlm_bench.envs import lock
from mlm_bench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    """pyproject's dependencies and every extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [Requirement(text) for text in [*project["dependencies"], *extras]]


def test_the_running_lines_lock_pins_what_pyproject_and_the_line_allow_and_no_torch() -> None:
    """The lock of the line these tests run on (a refresh checks each line's candidate in its own run)."""
    line = lock.running_line()
    if line is None:
        pytest.skip(f"the installed transformers and datasets fit no line of {sorted(lock.LINES)}: no lock to check")
    pinned = lock.pins(ROOT / lock.LOCK_DIR / f"{line}.txt")
    wanted = [r for r in declared() if r.name != "torch"] + [Requirement(text) for text in lock.LINES[line]]
    found = {r.name: pinned.get(canonicalize_name(r.name)) for r in wanted}
    outside = {r.name: found[r.name] for r in wanted if found[r.name] is None or found[r.name] not in r.specifier}
    assert not outside, f"{line} lock misses or breaks: {outside}"
    assert not [name for name in pinned if name == "torch" or name.startswith(("nvidia-", "triton", "cuda-"))]


def test_moved_lists_changed_new_and_gone_pins() -> None:
    old, new = {"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2.1", "d": "4"}
    assert lock.moved(old, new) == ["b 2 -> 2.1", "c 3 -> (none)", "d (none) -> 4"]


def test_each_committed_lock_says_what_it_was_verified_with() -> None:
    for line, ranges in lock.LINES.items():
        head = (ROOT / lock.LOCK_DIR / f"{line}.txt").read_text(encoding="utf-8").splitlines()[:4]
        assert head[0].startswith(f"# Line {line} ({', '.join(ranges)}): the versions `pytest tests/` passed on, 20")
        assert "torch " in head[1] and f"--line {line} --refresh" in head[3]


def test_compile_resolves_afresh_for_the_venv_with_its_torchs_requirements_in_torchs_place(tmp_path, monkeypatch):
    commands, inputs = [], {}

    def step(command: list[str], what: str) -> str:
        commands.append(command)
        if "compile" in command:  # read the input files while they exist
            inputs.update(
                {
                    Path(arg).name: Path(arg).read_text()
                    for arg in command
                    if Path(arg).name in ("line.txt", "overrides.txt")
                }
            )
            return ""
        return "filelock\nsympy>=1.13.3\n"  # torch's requirements, as the venv's python prints them

    monkeypatch.setattr(lock, "step", step)
    monkeypatch.setattr(lock, "uv_binary", lambda: "uv")
    out = tmp_path / "tf4.txt"
    out.write_text("transformers==4.57.0\n", encoding="utf-8")  # a stale candidate: uv would keep its pins
    lock.compile_lock(ROOT, "tf4", out, tmp_path / "env" / "bin" / "python")
    compile_command = commands[-1]
    assert not out.exists() and "--upgrade" in compile_command and "--all-extras" in compile_command
    assert compile_command[compile_command.index("--python") + 1] == str(tmp_path / "env" / "bin" / "python")
    assert inputs["line.txt"].split() == [*lock.LINES["tf4"], "filelock", "sympy>=1.13.3"]
    assert inputs["overrides.txt"] == lock.WITHOUT_TORCH


def test_pins_read_names_normalized_and_comments_skipped(tmp_path) -> None:
    path = tmp_path / "lock.txt"
    path.write_text("# header\nPyYAML==6.0.4\nhuggingface_hub==2.4.0  # via x\n\n", encoding="utf-8")
    assert lock.pins(path) == {"pyyaml": "6.0.4", "huggingface-hub": "2.4.0"}


@pytest.fixture
def fake_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout whose committed tf5 lock pins a 1.0, and a newest set that pins a 2.0 (no resolver, no venv)."""
    for folder in ("tests", "mlm_bench", lock.LOCK_DIR):
        (tmp_path / folder).mkdir()
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    (tmp_path / lock.LOCK_DIR / "tf5.txt").write_text("# old header\na==1.0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lock, "create_env", lambda env, spec: env / "bin" / "python")
    monkeypatch.setattr(lock, "compile_lock", lambda root, line, out, python: out.write_text("a==2.0\n"))
    monkeypatch.setattr(lock, "install_lock", lambda root, python, candidate: None)
    monkeypatch.setattr(lock, "installed", lambda python, name: "2.13.0+cpu")
    return tmp_path


def test_the_suite_checks_the_candidate_in_the_locks_place(fake_checkout: Path, monkeypatch) -> None:
    """During a refresh the candidate is the lock the suite sees; a failure puts the previous one back."""
    seen = []

    def suite(root, python, strict):
        seen.append((lock.pins(root / lock.LOCK_DIR / "tf5.txt"), strict))
        return lock.SuiteResult(1, "1 failed")

    monkeypatch.setattr(lock, "run_suite", suite)
    assert main(["lock", "--line", "tf5", "--refresh"]) == EXIT_FAILED
    assert seen == [({"a": "2.0"}, True)]
    assert (fake_checkout / lock.LOCK_DIR / "tf5.txt").read_text(encoding="utf-8") == "# old header\na==1.0\n"


def test_a_failed_suite_leaves_the_lock_as_it_was(fake_checkout: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(lock, "run_suite", lambda root, python, strict: lock.SuiteResult(1, "1 failed, 9 passed"))
    assert main(["lock", "--line", "tf5", "--refresh"]) == EXIT_FAILED
    assert (fake_checkout / lock.LOCK_DIR / "tf5.txt").read_text(encoding="utf-8") == "# old header\na==1.0\n"
    captured = capsys.readouterr()
    assert "a 1.0 -> 2.0" in captured.out and "[tf5] FAILED: 1 failed, 9 passed" in captured.out
    assert "failed on the newest versions of tf5; its lock is unchanged" in captured.err


def test_a_passed_suite_moves_the_pins_only_when_refreshing(fake_checkout: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(lock, "run_suite", lambda root, python, strict: lock.SuiteResult(0, "9 passed"))
    committed = fake_checkout / lock.LOCK_DIR / "tf5.txt"
    assert main(["lock", "--line", "tf5"]) == 0
    assert lock.pins(committed) == {"a": "1.0"}
    assert "passed on the newest versions of tf5: `mlm-bench lock --refresh` moves the locks" in capsys.readouterr().out
    assert main(["lock", "--line", "tf5", "--refresh"]) == 0
    assert lock.pins(committed) == {"a": "2.0"}
    assert "9 passed; python" in committed.read_text(encoding="utf-8")
    assert "torch 2.13.0+cpu" in committed.read_text(encoding="utf-8")


def test_outside_a_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not inside an mlm-bench checkout"):
        lock.checkout(tmp_path)


@pytest.mark.parametrize("line", ["numpy>=2.0", "-r other.txt", "mine @ file:///src/mine"])
def test_a_lock_line_that_is_not_an_exact_pin_is_refused_naming_it(tmp_path, line: str) -> None:
    path = tmp_path / "lock.txt"
    path.write_text(f"six==1.16.0\n{line}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(f"{line!r} is not an exact pin")):
        lock.pins(path)
