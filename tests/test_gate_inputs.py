"""Gate inputs: benchmark files, fingerprints and junit files, read or refused naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlm_bench.cli import main
from mlm_bench.gate import inputs as gate_inputs
from mlm_bench.testing.gate_files import bench, write


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps([1, 2]), json.dumps({"benchmarks": [{"name": "x"}]})],
    ids=["not-json", "no-benchmarks-key", "no-stats"],
)
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str):
    good = write(tmp_path / "good.json", bench("test_step", 1.0))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["gate", str(bad), str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json" in err[0]


@pytest.mark.parametrize(
    ("counts", "passed"),
    [('tests="3" failures="1" errors="0" skipped="0"', False), ('tests="3" failures="0" errors="0" skipped="1"', True)],
)
def test_junit_outcome_counts_the_suite(tmp_path: Path, counts: str, passed: bool):
    xml = tmp_path / "tests.xml"
    xml.write_text(f"<testsuites><testsuite {counts}/></testsuites>")
    outcome = gate_inputs.junit_outcome(xml)
    assert (outcome.tests, outcome.passed) == (3, passed)


def test_versions_come_from_machine_info_then_from_an_older_files_extra_info(tmp_path: Path):
    """Benchmark files record the versions once, in machine_info (pytest-benchmark's hook); files made before kept
    them in each benchmark's extra_info, and still read."""
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"machine_info": {"versions": {"transformers": "5.25.0"}}, "benchmarks": [
        bench("test_step", 1.0, versions={"transformers": "0.0"})]}))  # fmt: skip
    old = write(tmp_path / "old.json", bench("test_step", 1.0, versions={"transformers": "4.57.6"}))
    assert gate_inputs.load_run(new).label.startswith("transformers 5.25.0")
    assert gate_inputs.load_run(old).label.startswith("transformers 4.57.6")


def _folder(path: Path, *medians: float) -> Path:
    """A side measured in one process per median: a folder of benchmark files."""
    path.mkdir()
    for i, median in enumerate(medians):
        write(path / f"process-{i}.json", bench("test_step", median))
    return path


def test_a_folder_is_one_side_measured_in_several_processes(tmp_path: Path) -> None:
    side = gate_inputs.load_side(_folder(tmp_path / "base", 1.0, 2.0, 3.0))
    name = "benchmarks/test_cpu.py::test_step"
    assert [len(rounds) for rounds in side.processes[name]] == [10, 10, 10]
    assert side.benchmarks[name]["stats"]["rounds"] == 30 and side.benchmarks[name]["stats"]["median"] == 2.0


def test_gate_over_folders_intervals_over_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Folders: the interval is over processes and says so; single files: the report says plainly that one
    process per side leaves the noise between processes out."""
    base, new = _folder(tmp_path / "base", 1.0, 1.0, 1.0, 1.3), _folder(tmp_path / "new", 1.3, 1.3, 1.3, 1.0)
    assert main(["gate", str(base), str(new)]) == 0
    assert "over 4+ processes per side" in capsys.readouterr().out
    assert main(["gate", str(base / "process-0.json"), str(new / "process-0.json")]) == 1
    assert "two sequential runs of one environment can read as a change" in capsys.readouterr().out


def test_a_folder_without_benchmark_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    good = write(tmp_path / "good.json", bench("test_step", 1.0))
    assert main(["gate", str(tmp_path / "empty"), str(good)]) == 2
    assert "holds no benchmark JSON files" in capsys.readouterr().err
