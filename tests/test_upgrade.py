"""`mlm-bench upgrade`: its refusals, its test-by-test comparison and verdict, and (slow) a real same-set upgrade
that builds its environment, runs the contract tests and the fingerprint in it, and reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from mlm_bench.cli import main
from mlm_bench.cli.exits import EXIT_CANNOT_BUILD, EXIT_TERMINATED, EXIT_USAGE
from mlm_bench.gate import compare as gate
from mlm_bench.gate.compare import FingerprintDiff, QualityChange
from mlm_bench.gate.inputs import load_side
from mlm_bench.gate.report import render_markdown
from mlm_bench.testing.gate_files import bench, verdict
from mlm_bench.upgrade.outcomes import Outcomes, read_junit, warnings_in
from mlm_bench.upgrade.verdict import Contract, Upgrade, YourSetup

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "upgrade"
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_broken[x]" time="0.1"><failure message="assert 1 == 2"/></testcase>
<testcase classname="tests.test_b" name="test_defect" time="0.1"><skipped type="pytest.xfail" message="known upstream defect d1"/></testcase>
<testcase classname="tests.test_b" name="test_self" time="0.1"><skipped type="pytest.skip" message="self-test not applicable on v: X never called"/></testcase>
<testcase classname="tests.test_b.TestGroup" name="test_in_class" time="0.1"/>
</testsuite></testsuites>"""  # noqa: E501
LOG = """..F
=============================== warnings summary ===============================
tests/test_a.py::test_ok
  /env/lib/python3.11/site-packages/transformers/x.py:12: FutureWarning: `a` is deprecated
    warnings.warn(

tests/test_a.py::test_ok
  <frozen importlib._bootstrap>:488: DeprecationWarning: object at 0x7f3a2b1c0d10 is old

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
1 failed, 3 passed
"""


def test_junit_is_read_test_by_test(tmp_path: Path) -> None:
    (tmp_path / "t.xml").write_text(JUNIT, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / "tests" / name).touch()
    found = read_junit(tmp_path / "t.xml", tmp_path)
    assert found.status == {
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::test_broken[x]": "failed",
        "tests/test_b.py::test_defect": "xfailed",
        "tests/test_b.py::test_self": "skipped",
        "tests/test_b.py::TestGroup::test_in_class": "passed",
    }
    assert found.reasons["tests/test_b.py::test_defect"] == "known upstream defect d1"
    assert found.reasons["tests/test_a.py::test_broken[x]"] == "assert 1 == 2"


def test_warnings_come_from_the_summary_without_the_environment_path(tmp_path: Path) -> None:
    (tmp_path / "t.log").write_text(LOG, encoding="utf-8")
    assert warnings_in(tmp_path / "t.log") == [
        "FutureWarning: `a` is deprecated (transformers/x.py)",
        "DeprecationWarning: object at 0x... is old (<frozen importlib._bootstrap>)",
    ]


def _outcomes(**status: str) -> Outcomes:
    return Outcomes(status, {})


def test_the_contract_compares_test_by_test() -> None:
    contract = Contract(_outcomes(a="passed", b="failed", c="failed", d="passed", e="passed"),
                        _outcomes(a="error", b="passed", c="failed", d="skipped"))  # fmt: skip
    assert (contract.newly_failing, contract.newly_passing, contract.failing_on_both) == (["a"], ["b"], ["c"])
    assert (contract.newly_skipped, contract.missing) == (["d"], ["e"])


ACCEPTED = FingerprintDiff("initial_loss", 7.5, 7.6, accepted=True)
UNREVIEWED = FingerprintDiff("initial_loss", 7.5, 7.6, accepted=False)


@pytest.mark.parametrize(
    ("upgrade", "headline", "codes"),
    [
        (Upgrade(None, [], None), "Upgrade: nothing changed", (0, 0)),
        (Upgrade(None, [ACCEPTED], None), "Upgrade, but review: fingerprint initial_loss changed (a reviewed", (0, 0)),
        (Upgrade(None, [], None, new_warnings=["FutureWarning: x"]), "Upgrade, but review: new warning", (0, 0)),
        (Upgrade(None, [UNREVIEWED], None), "Do not upgrade: fingerprint initial_loss changed and no", (1, 1)),
        (Upgrade(Contract(_outcomes(a="passed"), _outcomes(a="failed")), None, None), "Do not upgrade: newly failing "
         "test: a", (1, 1)),
        (Upgrade(None, None, None, stage_failures=["the benchmarks failed in candidate"]), "Do not upgrade: the "
         "benchmarks failed", (1, 1)),
    ],
)  # fmt: skip
def test_the_headline_says_what_to_do(upgrade: Upgrade, headline: str, codes: tuple[int, int]) -> None:
    assert upgrade.headline().startswith(headline)
    assert (upgrade.exit_code(fail_inconclusive=False), upgrade.exit_code(fail_inconclusive=True)) == codes


def _crossed(path: str, status: str, known: str | None = None) -> dict:
    return {"path": path, "writer": "5.25.0", "reader": "4.57.6", "status": status, "detail": "what was found",
            "known": known}  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "headline", "code"),
    [
        (YourSetup(None, [], [_crossed("checkpoint", "works")]), "Upgrade: nothing changed", 0),
        (YourSetup(None, [], [_crossed("tokenizer", "refused", "tokenizer-5x-files-on-4.57")]),
         "Upgrade, but review: your setup: tokenizer written by transformers 5.25.0, read by 4.57.6: "
         "refused: what was found [known: tokenizer-5x-files-on-4.57]", 0),
        (YourSetup(None, [], [_crossed("checkpoint", "broken")]), "Do not upgrade: your setup: checkpoint written "
         "by transformers 5.25.0, read by 4.57.6: broken", 1),
        (YourSetup(Contract(_outcomes(a="passed"), _outcomes(a="error")), None, []), "Do not upgrade: your setup: "
         "newly failing test: a", 1),
        (YourSetup(None, [QualityChange("run", "loss@train", 7.0, 7.5, "rel 0.01", True)], []), "Upgrade, but "
         "review: your run: loss@train 7 -> 7.5 (rel 0.01)", 0),
    ],
)  # fmt: skip
def test_your_setup_is_a_reason_not_to_upgrade_only_when_it_broke(setup: YourSetup, headline: str, code: int):
    """A broken artifact or a newly failing test of your contract stops the upgrade; a refusal (named where the
    registry knows it), a path that differs with the versions' numerics, or your run's learning moving is reviewed."""
    upgrade = Upgrade(None, [], None, setup=setup)
    assert upgrade.headline().startswith(headline) and upgrade.exit_code(fail_inconclusive=True) == code


def test_speed_too_noisy_says_what_to_rerun_and_a_change_within_the_threshold_is_named(tmp_path: Path) -> None:
    noisy = verdict(tmp_path, [bench("test_step", 1.0, noise=0.3)], [bench("test_step", 1.05, noise=0.3)])
    up = Upgrade(None, [], noisy, processes=3)
    assert up.headline().startswith("Cannot tell yet: the speed of test_step is too noisy") and "--processes 6" in (
        up.headline()
    )
    assert (up.exit_code(fail_inconclusive=False), up.exit_code(fail_inconclusive=True)) == (0, 3)
    within = verdict(tmp_path, [bench("test_step", 1.0, noise=0.001)], [bench("test_step", 1.04, noise=0.001)])
    assert Upgrade(None, [], within).review == ["test_step: +4.0% [+3.9%, +4.1%], within ±7%"]


def test_an_impossible_spec_cannot_build_in_one_line_and_builds_nothing(tmp_path: Path, capsys) -> None:
    pytest.importorskip("uv", reason="upgrade resolves with uv: pip install -e '.[envs]'")
    cache, out = tmp_path / "cache", tmp_path / "out"
    code = main(["upgrade", "transformers==5.25.0", "tokenizers==0.19.0", "--cache", str(cache), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CANNOT_BUILD and len(err) == 1 and "depends on tokenizers" in err[0]
    assert not cache.exists() and not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name the packages to change"),
        (["transformers", "--latest"], "not both"),
        (["transformers", "--processes", "1"], "at least 2"),
        (["transformers", "--stages", "setup"], "stage setup checks your own model: pass --model DIR"),
        (["transformers", "--config", "run.yaml"], "--config is the settings of your model"),
        (["transformers", "--model", "no/such/dir"], "no/such/dir holds no config.json"),
    ],
)
def test_bad_upgrade_arguments_exit_2(argv: list[str], message: str, capsys) -> None:
    assert main(["upgrade", *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.slow  # builds an environment (about a minute) and runs tests in it
def test_a_same_set_upgrade_builds_runs_and_reports_no_change(tmp_path: Path, env_cache: Path, capsys) -> None:
    pytest.importorskip("uv", reason="upgrade builds with uv: pip install -e '.[envs]'")
    out = tmp_path / "report"
    same = f"transformers=={metadata.version('transformers')}"
    code = main(["upgrade", same, "--stages", "tests", "fingerprint", "--tests", "test_config", "--out", str(out),
                 "--cache", str(env_cache)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    report = json.loads((out / "upgrade.json").read_text(encoding="utf-8"))
    headline = report["verdict"]["headline"]
    assert printed.splitlines()[-1] == f"mlm-bench: {headline} (exit 0; {out / 'upgrade.md'})"
    assert report["schema_version"] == 2 and report["moved"] == []
    assert report["sides"]["base"]["packages"] == report["sides"]["candidate"]["packages"]
    assert report["fingerprint"] == [] and report["contract"]["newly_failing"] == []
    assert "Identical in every field." in (out / "upgrade.md").read_text(encoding="utf-8")


def test_a_self_test_that_stops_reaching_its_code_is_named_as_such() -> None:
    base = Outcomes({"t": "passed", "u": "passed"}, {})
    candidate = Outcomes({"t": "skipped", "u": "skipped"}, {"t": "self-test not applicable on v: X never called"})
    assert Upgrade(Contract(base, candidate), [], None).review == [
        "self-test no longer applicable (its breaker is not reached): t",
        "newly skipped test: u",
    ]


@pytest.mark.parametrize("folder", ["tf5.24-to-tf5.25", "tf4.57-to-tf5.25"])
def test_the_committed_upgrade_reports_reproduce_from_their_processes(folder: str) -> None:
    """The speed rows of results/upgrade/*/gate/report.md follow from the per-process files kept beside them."""
    stored = RESULTS / folder
    result = gate.compare(load_side(stored / "base" / "benchmarks"), load_side(stored / "candidate" / "benchmarks"),
                          gate.Thresholds())  # fmt: skip
    rows = [line for line in render_markdown(result).splitlines() if line.startswith("| test_")]
    kept = (stored / "gate" / "report.md").read_text(encoding="utf-8").splitlines()
    assert rows == [line for line in kept if line.startswith("| test_")][: len(rows)]
    assert {change.processes for change in result.speed.values()} == {3}


# A child of the upgrade run from a script: `run` replaced by one contract-test stage in a "python" that writes its
# pid and sleeps, so a SIGTERM lands while a stage's subprocess runs, as a cancelled CI job's does.
STOPPED_UPGRADE = """
import sys
from pathlib import Path
import mlm_bench.upgrade.run as upgrade
from mlm_bench.cli.main import main
from mlm_bench.upgrade import stages
side = stages.Side("candidate", Path(sys.argv[1]), Path(sys.argv[2]) / "candidate")
def one_stage(plan, root, say):
    side.out.mkdir(parents=True)
    return stages.run_tests(side, root, None)
upgrade.run = one_stage
sys.exit(main(["upgrade", "six==1.17.0", "--out", sys.argv[2]]))
"""


@pytest.mark.slow  # a second process, signalled
def test_sigterm_stops_an_upgrade_and_the_stage_it_was_running(tmp_path: Path) -> None:
    pid = tmp_path / "stage.pid"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid}\nexec sleep 60\n", encoding="utf-8")
    fake.chmod(0o755)
    out = tmp_path / "out"
    upgrade = subprocess.Popen([sys.executable, "-c", STOPPED_UPGRADE, str(fake), str(out)], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pid.is_file() and pid.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    upgrade.send_signal(signal.SIGTERM)
    _, err = upgrade.communicate(timeout=30)
    stage = int(pid.read_text())
    try:
        os.kill(stage, 0)
        alive = True
        os.kill(stage, signal.SIGKILL)
    except ProcessLookupError:
        alive = False
    assert upgrade.returncode == EXIT_TERMINATED, err
    assert not alive, "the stage's subprocess outlived the upgrade"
    assert f"what ran so far is in {out}" in err and "terminated (SIGTERM)" in err
