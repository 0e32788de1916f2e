"""`mlm-bench history`: the default releases, the releases x checks matrix, the benchmark series with its steps, the
page as headless Chromium renders it (failing on planted breaks), and (slow) a real history of two releases."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from mlm_bench.cli import main
from mlm_bench.envs.build import VersionSet
from mlm_bench.gate.compare import Thresholds
from mlm_bench.history import collect, matrix, report
from mlm_bench.history.collect import Plan, last_of_each_minor
from mlm_bench.testing.gate_files import bench, write
from mlm_bench.upgrade import stages

RELEASES = ["5.0.0", "5.1.0", "5.2.0"]
RECORDS = [
    {"release": "5.0.0", "versions": {"transformers": "5.0.0"}, "tests": {"t::a": "passed", "t::b": "passed",
     "t::c": "xfailed"}, "reasons": {"t::c": "known upstream defect c"}, "fingerprint": {"x": 1, "y": "a"}},
    {"release": "5.1.0", "versions": {"transformers": "5.1.0", "kernels": "0.19.1"}, "tests": {"t::a": "passed",
     "t::b": "failed", "t::c": "passed"}, "reasons": {}, "fingerprint": {"x": 1, "y": "b"}},
    {"release": "5.2.0", "error": "cannot resolve transformers==5.2.0 with the base's packages: conflict"},
]  # fmt: skip


def test_the_default_releases_are_the_last_of_each_minor_line() -> None:
    found = [Version(v) for v in ["4.56.2", "4.57.0", "4.57.6", "5.0.0", "5.1.0", "5.1.2", "5.2.0"]]
    assert last_of_each_minor(found, "4.57") == ["4.57.6", "5.0.0", "5.1.2", "5.2.0"]


def test_the_matrix_keeps_what_differs_and_counts_what_passed_everywhere() -> None:
    rows, steady = matrix.test_rows(RECORDS)
    assert steady == 1
    assert [(r.check, [c.status for c in r.cells]) for r in rows] == [
        ("t::b", ["pass", "fail", "cannot build"]), ("t::c", ["known defect", "pass", "cannot build"])]  # fmt: skip
    assert rows[1].cells[0].detail == "known upstream defect c"
    changed = matrix.fingerprint_rows(RECORDS)
    assert [(r.check, [c.status for c in r.cells]) for r in changed] == [("y", ["same", "changed", "cannot build"])]
    assert changed[0].cells[1].detail == '"a" -> "b"'


def _benchmarked(tmp_path: Path, slower: float) -> list[dict]:
    """Three releases' records with two benchmark processes each: test_a `slower` on the middle release only."""
    records = []
    for release in RELEASES:
        folder = tmp_path / "releases" / release / "benchmarks"
        folder.mkdir(parents=True)
        factor = 1 + slower if release == "5.1.0" else 1.0
        for process in range(2):
            drift = 1 + 0.002 * process  # the processes differ a little, as real ones do
            write(folder / f"process-{process}.json", bench("test_a", 1e-3 * factor * drift),
                  bench("test_b", 2e-3 * drift))  # fmt: skip
        records.append({"release": release, "benchmarks": [f"benchmarks/process-{p}.json" for p in range(2)]})
    return records


def test_a_release_run_before_is_reused_only_with_the_same_set_and_stages(tmp_path: Path, monkeypatch) -> None:
    """A record as _run writes it is found again by _kept (a benchmark file list in it once hid every record)."""
    monkeypatch.setattr(
        stages,
        "run_tests",
        lambda side, root, k: (side.out / "tests.xml").write_text(
            "<testsuites><testsuite><testcase classname='t' name='a'/></testsuite></testsuites>", encoding="utf-8"
        ),
    )
    monkeypatch.setattr(stages, "run_fingerprint", lambda side, root: write(side.out / "fp.json"))
    monkeypatch.setattr(stages, "run_benchmarks", lambda side, root, p, k: side.out / f"process-{p}.json")
    plan = Plan("transformers", tuple(RELEASES), tmp_path, tmp_path / "cache", benchmarks=True)
    wanted = {"release": "5.0.0", "with_benchmarks": True, "processes": 2, "tests_k": None, "versions": {"a": "1"}}
    side = stages.Side("5.0.0", Path("python"), tmp_path / "releases" / "5.0.0")
    record = collect._run(plan, wanted, side, tmp_path, lambda line: None)
    assert record["benchmarks"] == ["process-0.json", "process-1.json"]
    assert collect._kept(side.out, wanted) == record
    assert collect._kept(side.out, {**wanted, "versions": {"a": "2"}}) is None
    assert collect._kept(side.out, {**wanted, "with_benchmarks": False}) is None


def test_a_planted_slowdown_is_a_step_and_a_steady_benchmark_has_none(tmp_path: Path) -> None:
    series = matrix.benchmark_series(_benchmarked(tmp_path, slower=0.2), tmp_path, Thresholds())
    assert [p["step"] for p in series["test_a"]] == [None, "slower", "faster"]
    assert [p["step"] for p in series["test_b"]] == [None, "same", "same"]
    assert all(p["low"] <= p["time"] <= p["high"] for p in series["test_a"])


def test_the_page_is_one_file_with_every_cell_linked_to_its_detail(history_page) -> None:
    page, data = history_page
    html = page.read_text(encoding="utf-8")
    assert "http" not in html.replace("http://www.w3.org/2000/svg", ""), "the page loads something from elsewhere"
    cells = html.count("<a href='#d-")
    assert cells == len(data["rows"]) * len(RELEASES) == html.count("<div id='d-")
    assert html.count("<svg class='plot'") == 2 and "kernels (none) -&gt; 0.19.1" in html


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
PASS_CELL, PLOT_LINE = (230, 244, 230), (51, 102, 204)  # page.STYLE's .pass and the plots' stroke, as RGB


def _headless(page: Path, *flags: str) -> subprocess.CompletedProcess:
    """Chromium, headless, on the page; console messages go to its stderr."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", *flags,
               page.as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _pixels(image, colour: tuple[int, int, int], tolerance: int) -> int:
    """How many pixels of an RGB(A) image read by matplotlib are `colour`, within `tolerance` levels."""
    import numpy as np

    rgb = np.rint(np.asarray(image)[..., :3] * 255)
    return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= tolerance).sum())


def page_problems(page: Path, rows: int, plots: int, shot: Path) -> list[str]:
    """What keeps the page from loading cleanly in a real browser: console messages, table rows or plots missing from
    the DOM after load, or a screenshot without the table's cells or the plots' lines."""
    from matplotlib.image import imread

    loaded = _headless(page, "--dump-dom")
    problems = [f"console: {line}" for line in loaded.stderr.splitlines() if "CONSOLE" in line]
    found_rows = loaded.stdout.count('<tr class="test"') + loaded.stdout.count('<tr class="fingerprint"')
    found_plots = loaded.stdout.count('<svg class="plot"')
    if (found_rows, found_plots) != (rows, plots):
        problems.append(f"DOM after load: {found_rows} rows and {found_plots} plots, expected {rows} and {plots}")
    _headless(page, f"--screenshot={shot}", "--window-size=1400,1400", "--hide-scrollbars")
    image = imread(shot)
    # Cells are flat fills; lines are anti-aliased, so their colour is matched loosely.
    for what, colour, tolerance in (("table cells", PASS_CELL, 2), ("plot lines", PLOT_LINE, 24)):
        if _pixels(image, colour, tolerance) < 200:
            problems.append(f"screenshot: no {what} drawn")
    return problems


@pytest.fixture
def history_page(tmp_path: Path) -> tuple[Path, dict]:
    """The page of RECORDS with two benchmarks, written, and its JSON."""
    records = _benchmarked(tmp_path, slower=0.2)
    for record, checks in zip(records, RECORDS, strict=True):
        record.update(checks)
    plan = Plan("transformers", tuple(RELEASES), tmp_path, tmp_path / "cache", benchmarks=True)
    data = report.build(plan, _base(), records, ["mlm-bench", "history"])
    return report.write(tmp_path, data)[1], data


@pytest.mark.slow  # ten Chromium processes: about 8 s
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run installs it)")
def test_the_page_renders_in_headless_chromium_and_a_broken_one_does_not(history_page, tmp_path: Path) -> None:
    page, data = history_page
    expected = (len(data["rows"]), len(data["benchmarks"]))
    assert page_problems(page, *expected, tmp_path / "page.png") == []
    html = page.read_text(encoding="utf-8")
    broken = {
        "console": html.replace("</body>", "<script>throw new Error('planted')</script></body>"),
        "DOM after load": html.replace("<tr class=", "<tr data-kind="),
        "no table cells": html.replace("<table id='matrix'>", "<table id='matrix' style='display:none'>"),
        "no plot lines": html.replace("stroke='#36c'", "stroke='none'"),
    }
    for name, text in broken.items():
        planted = tmp_path / f"{name.replace(' ', '-')}.html"
        planted.write_text(text, encoding="utf-8")
        found = page_problems(planted, *expected, tmp_path / f"{planted.stem}.png")
        assert any(name in problem for problem in found), f"a page broken by {name!r} passed: {found}"


def _base() -> VersionSet:
    return VersionSet.of({"transformers": "4.57.6"}, "torch==2.13.0")


@pytest.mark.slow  # builds one environment per release (about 40 s each), shared with bisect's in the session
def test_a_real_history_of_two_releases_shows_the_fix_between_them(tmp_path: Path, env_cache: Path) -> None:
    """5.19.0 fixed collator-seed-zero (results/bisect/): with the registry's xfails its test is a known defect on
    5.18.0 and passes on 5.19.0, and nothing else of the selected tests differs."""
    pytest.importorskip("uv", reason="history builds with uv: pip install -e '.[envs]'")
    if metadata.version("transformers") != "5.25.0":
        pytest.skip("the base is the running environment: run under the tf5 lock (transformers 5.25.0)")
    code = main(["history", "--releases", "5.18.0", "5.19.0", "--tests", "seed_zero", "--out", str(tmp_path),
                 "--cache", str(env_cache)])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "history.json").read_text(encoding="utf-8"))
    rows = {row["check"]: [c["status"] for c in row["cells"]] for row in data["rows"] if row["kind"] == "test"}
    assert rows == {"tests/test_library.py::test_collator_seed_zero_is_a_seed": ["known defect", "pass"]}
    assert (tmp_path / "index.html").is_file()
