"""`mlm-bench bisect`: the search over a scripted check (breakage, fix, skips, results out of order, open answers),
the release listing from a package index served over HTTP, the CHECK argument, and (slow) a real two-release run."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest

from mlm_bench.bisect import checks, index, search
from mlm_bench.cli import main
from mlm_bench.contract import defects
from mlm_bench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
RELEASES = [f"5.{minor}.0" for minor in range(46)]


def scripted(results: dict[str, str | None], default: str = "passed") -> tuple[list[str], search.Probe]:
    """A probe giving each release its scripted result (`default` elsewhere), and the releases it was asked for."""
    asked: list[str] = []

    def probe(release: str) -> search.Probe:
        asked.append(release)
        return search.Probe(release, results.get(release, default), note="skipped" if release in results
                            and results[release] is None else "")  # fmt: skip

    return asked, probe


def broken_from(first: str, releases: list[str] = RELEASES) -> dict[str, str]:
    return {r: "failed" for r in releases[releases.index(first) :]}


@pytest.mark.parametrize("first", ["5.1.0", "5.17.0", "5.45.0"])
def test_the_first_changed_release_is_found_in_about_log2_probes(first: str) -> None:
    asked, probe = scripted(broken_from(first))
    answer = search.bisect(RELEASES, probe)
    assert (answer.first_new, answer.found, answer.out_of_order) == (first, True, [])
    assert answer.last_old == RELEASES[RELEASES.index(first) - 1]
    assert len(asked) == len(set(asked)) <= search.expected_probes(len(RELEASES)) == 10


def test_a_fix_is_found_as_a_breakage_is() -> None:
    fixed = {r: "passed" for r in RELEASES[30:]}
    _, probe = scripted(fixed, default="failed")
    answer = search.bisect(RELEASES, probe)
    assert (answer.last_old, answer.first_new) == ("5.29.0", "5.30.0")
    assert answer.probes["5.30.0"].result == "passed"


def test_skipped_releases_are_stepped_past() -> None:
    results = {**broken_from("5.20.0"), "5.22.0": None, "5.23.0": None, "5.11.0": None}
    _, probe = scripted(results)
    answer = search.bisect(RELEASES, probe)
    assert (answer.last_old, answer.first_new, answer.candidates) == ("5.19.0", "5.20.0", [])


def test_a_skip_at_the_boundary_leaves_the_answer_open_among_the_candidates() -> None:
    _, probe = scripted({**broken_from("5.20.0"), "5.20.0": None})
    answer = search.bisect(RELEASES, probe)
    assert not answer.found and answer.first_new is None
    assert (answer.last_old, answer.candidates) == ("5.19.0", ["5.20.0", "5.21.0"])


def test_a_result_that_flips_back_beside_the_boundary_is_out_of_order() -> None:
    _, probe = scripted({**broken_from("5.20.0"), "5.21.0": "passed"})
    answer = search.bisect(RELEASES, probe)
    assert answer.out_of_order, "a release after the boundary gave --good's result, and nothing said so"


def test_the_outer_neighbours_of_the_boundary_are_probed() -> None:
    asked, probe = scripted(broken_from("5.20.0"))
    search.bisect(RELEASES, probe)
    assert {"5.18.0", "5.21.0"} <= set(asked)


@pytest.mark.parametrize(
    ("releases", "results", "message"),
    [
        (["5.0.0"], {}, "nothing to bisect"),
        (RELEASES, {}, "give the same result"),
        (RELEASES, {"5.45.0": None}, "cannot be probed"),
    ],
)
def test_ends_that_cannot_answer_are_refused(releases: list[str], results: dict, message: str) -> None:
    _, probe = scripted(results)
    with pytest.raises(UsageError, match=message):
        search.bisect(releases, probe)


def _file(name: str, yanked: bool | str = False) -> dict:
    return {"filename": name, "url": f"https://files.example/{name}", "hashes": {}, "yanked": yanked}


INDEX_PAGE = {
    "meta": {"api-version": "1.1"},
    "name": "demo",
    "versions": ["1.0.0", "1.1.0", "1.2.0rc1", "1.2.0", "1.3.0", "2.0.0"],
    "files": [
        _file("demo-1.0.0-py3-none-any.whl"),
        _file("demo-1.1.0-py3-none-any.whl"),
        _file("demo-1.1.0.tar.gz"),
        _file("demo-1.2.0rc1-py3-none-any.whl"),
        _file("demo-1.2.0-py3-none-any.whl"),
        _file("demo-1.3.0-py3-none-any.whl", yanked="broken wheel"),
        _file("demo-1.3.0.tar.gz", yanked=True),
        _file("demo-2.0.0-py3-none-any.whl"),
    ],
}


@pytest.fixture
def served_index(tmp_path: Path) -> Iterator[str]:
    """A package index on localhost whose JSON page for `demo` is INDEX_PAGE (served as files, over real HTTP)."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "index.html").write_text(json.dumps(INDEX_PAGE), encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_index_lists_final_releases_without_yanked_ones_unless_asked(served_index: str) -> None:
    page = index.fetch("demo", served_index)
    assert [str(v) for v in index.releases(page)] == ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]
    assert "1.2.0rc1" in [str(v) for v in index.releases(page, prereleases=True)]
    assert "1.3.0" in [str(v) for v in index.releases(page, yanked=True)]
    assert index.between(index.releases(page), "1.1.0", "2.0.0") == ["1.1.0", "1.2.0", "2.0.0"]


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [("1.3.0", "2.0.0", "not a release the index lists"), ("2.0.0", "1.0.0", "not older than")],
)
def test_ends_the_index_does_not_list_in_order_are_refused(served_index: str, good: str, bad: str,
                                                           message: str) -> None:  # fmt: skip
    with pytest.raises(UsageError, match=message):
        index.between(index.releases(index.fetch("demo", served_index)), good, bad)


def test_an_unreachable_index_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="cannot list demo's releases"):
        index.fetch("demo", "http://127.0.0.1:9")


def test_a_defect_check_runs_the_entrys_test_with_xfails_off() -> None:
    check = checks.parse("defect:collator-seed-zero", ROOT)
    assert check.test == defects.lookup("collator-seed-zero").test and check.xfails_off
    assert checks.parse("tests/test_library.py::test_collator_seed_zero_is_a_seed", ROOT).xfails_off is False
    assert checks.parse("fingerprint:tokenizer.vocab_size", ROOT).field == "tokenizer.vocab_size"


@pytest.mark.parametrize(
    ("message", "kind"),
    [("AssertionError: logged loss 7.83", "AssertionError"), ("assert 1 == 2", "AssertionError"),
     ("TypeError: __init__() got an unexpected keyword argument 'x'", "TypeError"), ("", "unknown")],
)  # fmt: skip
def test_a_failure_is_told_apart_by_its_exception(message: str, kind: str) -> None:
    """A defect's assertion and a release the test cannot run on (a TypeError) are different results."""
    assert checks.exception_type(message) == kind


@pytest.mark.parametrize(
    ("text", "message"),
    [("defect:nope", "no known defect 'nope'"), ("fingerprint:", "names no field"),
     ("tests/test_nothing.py::test_x", "not a test of this checkout"), ("test_x", "not a test of this checkout")],
)  # fmt: skip
def test_a_check_that_names_nothing_is_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        checks.parse(text, ROOT)


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_defect_names_the_test_its_xfail_marks(defect: defects.Defect) -> None:
    path, name = defect.test.split("::")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert function is not None, f"{defect.key} names {defect.test}, which does not exist"
    marks = [ast.unparse(d) for d in function.decorator_list]
    assert f"known_defect('{defect.key}')" in marks, f"{defect.test} is not marked known_defect({defect.key!r})"


@pytest.mark.slow  # builds one environment per release (about 40 s each), shared with history's in the session
def test_a_real_bisect_between_two_releases_names_the_first_changed_one(
    tmp_path: Path, env_cache: Path, capsys
) -> None:
    """5.19.0 fixed collator-seed-zero, which 5.18.0 still has (results/bisect/): each release's probe runs the
    defect's test with xfails off in its own environment, and the report names 5.19.0."""
    pytest.importorskip("uv", reason="bisect builds with uv: pip install -e '.[envs]'")
    if metadata.version("transformers") != "5.25.0":
        pytest.skip("the base is the running environment: run under the tf5 lock (transformers 5.25.0)")
    out = tmp_path / "bisect"
    check = "defect:collator-seed-zero"
    code = main(["bisect", "transformers", "--good", "5.18.0", "--bad", "5.19.0", "--check", check, "--out", str(out),
                 "--cache", str(env_cache)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    report = json.loads((out / "bisect.json").read_text(encoding="utf-8"))
    assert (report["last_old"], report["first_new"]) == ("5.18.0", "5.19.0")
    probes = [(p["release"], p["result"]) for p in report["probes"]]
    assert probes == [("5.18.0", "failed (AssertionError)"), ("5.19.0", "passed")]
    assert "5.19.0 is the first release" in printed.splitlines()[-1]
