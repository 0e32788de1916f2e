"""The breaker plugin (mlm_bench/testing/breakers.py): a test of a test whose breaker is never called is a skip
that names it (a failure when the breaker is required, or when the test raised a real error); one whose breaker
is called keeps its own outcome. Run under xdist (-n 1), as the suite runs, so the rewritten reports cross a
worker's boundary."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlm_bench.testing import breakers

SELF_TESTS = """
import json
import pytest


def check(value):
    assert value == 1, "check failed"


def test_unreached(breakers):
    breakers.plant(json, "dumps", lambda *args, **kwargs: "broken")
    with pytest.raises(AssertionError):
        check(1)


def test_reached_and_caught(breakers):
    breakers.plant(json, "loads", lambda text: 2)
    with pytest.raises(AssertionError, match="check failed"):
        check(json.loads("1"))


def test_reached_and_missed(breakers):
    breakers.plant(json, "loads", lambda text: 1)
    with pytest.raises(AssertionError):
        check(json.loads("1"))


def test_unreached_but_required(breakers):
    breakers.plant(json, "dumps", lambda *args, **kwargs: "broken", required=True)
    with pytest.raises(AssertionError):
        check(2)


def test_unreached_with_an_error(breakers):
    breakers.plant(json, "dumps", lambda *args, **kwargs: "broken")
    raise KeyError("a real error")
"""


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_unreached_breaker_skips_naming_it_and_reached_ones_keep_their_outcome(tmp_path: Path) -> None:
    (tmp_path / "test_self.py").write_text(textwrap.dedent(SELF_TESTS), encoding="utf-8")
    plugin = breakers.__name__
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider", "-p", "no:randomly", "-rfs", "-n", "1",
         "test_self.py"], cwd=tmp_path, env={"PATH": ""}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "3 failed, 1 passed, 1 skipped" in run.stdout, run.stdout[-3000:]
    assert "FAILED test_self.py::test_reached_and_missed" in run.stdout
    assert "FAILED test_self.py::test_unreached_but_required - required breaker" in run.stdout
    assert f"required breaker never called on {breakers.version_set()}: json.dumps: this check has lost it" in (
        run.stdout
    )
    assert "FAILED test_self.py::test_unreached_with_an_error - KeyError" in run.stdout
    assert f"self-test not applicable on {breakers.version_set()}: json.dumps never called" in run.stdout


def test_plant_counts_calls_per_breaker(monkeypatch) -> None:
    planted = breakers.Breakers(monkeypatch)
    target = type("Target", (), {"first": lambda self: 1, "second": lambda self: 2})
    planted.plant(target, "first", lambda self: 10)
    planted.plant(target, "second", lambda self: 20)
    assert target().first() == 10
    assert planted.calls == {"Target.first": 1, "Target.second": 0}
    assert planted.unreached() == ["Target.second"]
