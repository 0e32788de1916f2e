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
