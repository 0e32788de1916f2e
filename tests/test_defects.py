"""The known-defect registry: each range is the one its committed bisect measured, every probed release is an xfail
exactly when its check failed, every defect names its workaround, lookups fail loudly."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mlm_bench.contract import defects

RESULTS = Path(__file__).resolve().parents[1] / "results"
BISECTS = RESULTS / "bisect"
# The committed histories: 7 releases with the whole suite; the last of every 5.x minor with the raw-library tests.
HISTORIES = [RESULTS / "history" / "transformers", RESULTS / "history" / "transformers-5x-library"]


def _bisect(defect: defects.Defect) -> dict:
    """The committed `mlm-bench bisect` report of the defect's check."""
    path = BISECTS / defect.key / "bisect.json"
    assert path.is_file(), (
        f"{defect.key} has no measured range: run its bisect (docs/contract.md, Measured ranges) into {path.parent}"
    )
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_range_is_the_one_its_committed_bisect_found(defect: defects.Defect) -> None:
    report = _bisect(defect)
    measured = defect.measured
    assert (report["package"], report["check"], report["exit_code"]) == (defect.package, f"defect:{defect.key}", 0)
    assert (measured.floor, measured.newest, measured.command) == (report["good"], report["bad"],
                                                                   shlex.join(report["command"]))  # fmt: skip
    assert measured.date == report["date"]
    affected_at_floor = report["probes"][0]["result"] != "passed"
    expected = (None, report["first_new"]) if affected_at_floor else (report["first_new"], None)
    assert (measured.first_affected, measured.first_fixed) == expected, report["headline"]


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_probed_release_is_an_xfail_exactly_when_its_check_failed(defect: defects.Defect) -> None:
    probed = [(p["release"], p["result"]) for p in _bisect(defect)["probes"] if p["result"] is not None]
    wrong = [f"{release} {result}" for release, result in probed
             if defect.affects({defect.package: release}) != (result != "passed")]  # fmt: skip
    assert not wrong, f"{defect.key} ({defect.versions}) disagrees with its bisect on: {', '.join(wrong)}"


def _ran(history: Path, defect: defects.Defect) -> list[dict]:
    """The releases of a committed history that ran the defect's test (none where the history predates the test)."""
    found = json.loads((history / "history.json").read_text(encoding="utf-8"))
    assert found["package"] == defect.package
    return [r for r in found["records"] if "error" not in r and defect.test in r["tests"]]


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_defects_test_ran_on_six_releases_of_a_committed_history(defect: defects.Defect) -> None:
    ran = {history.name: len(_ran(history, defect)) for history in HISTORIES}
    assert max(ran.values()) >= 6, f"{defect.test} ran on too few releases of the committed histories: {ran}"


@pytest.mark.parametrize("history", HISTORIES, ids=lambda path: path.name)
@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_on_every_release_of_the_committed_history_the_xfail_follows_the_range(defect: defects.Defect,
                                                                              history: Path) -> None:  # fmt: skip
    """The history ran the suite with the registry's xfails on each release: the defect's test is an xfail exactly
    where the range says, and passes elsewhere (a strict xfail that passes, or a failure, is a wrong range)."""
    wrong = [
        f"{r['release']} {r['tests'][defect.test]}"
        for r in _ran(history, defect)
        if r["tests"][defect.test] != ("xfailed" if defect.affects({defect.package: r["release"]}) else "passed")
    ]
    assert not wrong, f"{defect.key} ({defect.versions}) on the committed history: {', '.join(wrong)}"


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_defect_says_what_breaks_and_how_it_is_avoided(defect: defects.Defect) -> None:
    assert defect.breaks and defect.workaround and defect.package and defect.upstream


def test_a_range_reads_as_its_bounds() -> None:
    both = defects.Measured("4.57.6", "5.25.0", "5.2.0", "5.9.0", "2026-12-07", "mlm-bench bisect ...")
    assert both.specifier == ">=5.2.0,<5.9.0" and "from 5.2.0, fixed in 5.9.0" in both.describe()
    floor = defects.Measured("4.57.6", "5.25.0", None, None, "2026-12-07", "mlm-bench bisect ...")
    assert floor.specifier == "" and "affected at the floor (4.57.6), not fixed as of 5.25.0" in floor.describe()


def test_an_unknown_defect_is_refused() -> None:
    with pytest.raises(KeyError, match="registered are"):
        defects.lookup("no-such-defect")
