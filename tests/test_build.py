"""Environments of other version sets (mlm_bench/envs/build.py): resolved with uv, built for real, exact, cached,
and never left half-built. The sets here are tiny pure-Python packages, so each build takes seconds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mlm_bench.envs import build
from mlm_bench.errors import BuildError, UsageError

pytest.importorskip("uv", reason="building environments needs uv: pip install -e '.[envs]'")

TINY = build.VersionSet.of({"six": "1.16.0"}, torch=None)


def test_an_environment_holds_exactly_its_pins_and_is_reused(tmp_path: Path) -> None:
    said: list[str] = []
    python = build.build(TINY, None, tmp_path / "cache", said.append)
    done = subprocess.run([str(python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True)
    assert done.stdout.strip() == "1.16.0" and build.installed(python)["six"] == "1.16.0"
    assert python.parent.parent.name == TINY.key() and (python.parent.parent / build.DONE).is_file()
    assert build.build(TINY, None, tmp_path / "cache", said.append) == python
    assert said[-1].endswith(": cached")


@pytest.mark.slow  # two environments built from an sdist: about 9 s
def test_building_leaves_uv_nothing_to_prune(tmp_path: Path, monkeypatch) -> None:
    """pyperclip is published as an sdist only: behind an index that sends no cache headers (ours), uv keeps a new
    build of it per environment unless the build prunes. Against one that does, nothing is left either way."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    for pins in ({"pyperclip": "1.9.0"}, {"pyperclip": "1.9.0", "six": "1.16.0"}):
        build.build(build.VersionSet.of(pins, torch=None), None, tmp_path / "cache")
    pruned = subprocess.run([build.uv_binary(), "cache", "prune"], capture_output=True, text=True, check=True)
    assert "No unused entries found" in pruned.stderr, pruned.stderr


def test_other_pins_are_another_environment() -> None:
    other = build.VersionSet.of({"six": "1.17.0"}, torch=None)
    assert other.key() != TINY.key() and build.VersionSet.of({"Six": "1.16.0"}, None).key() == TINY.key()


def test_a_failed_build_leaves_no_environment_in_the_cache(tmp_path: Path) -> None:
    missing = build.VersionSet.of({"six": "0.0.999"}, torch=None)
    with pytest.raises(BuildError, match="installing"):
        build.build(missing, None, tmp_path / "cache")
    assert not (tmp_path / "cache" / missing.key()).exists()


def test_an_environment_not_holding_its_pins_is_refused_and_removed(tmp_path: Path, monkeypatch) -> None:
    """The exactness check: an install that put another version in place (planted) is no environment."""
    monkeypatch.setattr(build, "installed", lambda python: {"six": "1.17.0"})
    with pytest.raises(BuildError, match=re.escape("does not hold its pins: six pinned 1.16.0, installed 1.17.0")):
        build.build(TINY, None, tmp_path / "cache")
    assert not (tmp_path / "cache" / TINY.key()).exists()


def test_an_environment_holding_a_package_nothing_asked_for_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(build, "installed", lambda python: {"six": "1.16.0", "kernels": "0.19.1"})
    with pytest.raises(BuildError, match=re.escape("kernels 0.19.1 not pinned")):
        build.build(TINY, None, tmp_path / "cache")


class _Dist:
    """An installed distribution as importlib.metadata gives it, installed from an index or from a path."""

    def __init__(self, name: str, version: str, url: bool = False) -> None:
        self.metadata, self.version, self._url = {"Name": name}, version, url

    def read_text(self, name: str) -> str | None:
        return '{"url": "file:///src/x"}' if self._url and name == "direct_url.json" else None


def test_the_running_environment_is_frozen_first_distribution_wins(monkeypatch) -> None:
    dists = [_Dist("Six", "1.16.0"), _Dist("six", "1.0.0"), _Dist("pip", "25.0"), _Dist("torch", "2.13.0+cpu")]
    monkeypatch.setattr(build.metadata, "distributions", lambda: dists)
    monkeypatch.setattr(build.metadata, "version", lambda name: "2.13.0+cpu")
    assert build.current() == build.VersionSet((("six", "1.16.0"),), "torch==2.13.0+cpu")


def test_a_package_installed_from_a_path_or_a_system_python_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(build.metadata, "distributions", lambda: [_Dist("mine", "0.1", url=True)])
    with pytest.raises(UsageError, match="installed from a path or URL, which no version pin can rebuild: mine"):
        build.current()
    monkeypatch.setattr(build.sys, "base_prefix", build.sys.prefix)
    with pytest.raises(UsageError, match="not a virtual environment"):
        build.current()


def test_a_candidate_moves_only_what_the_spec_forces(tmp_path: Path) -> None:
    base = build.VersionSet.of({"six": "1.16.0", "iniconfig": "2.0.0"}, torch=None)
    moved = build.resolve(base, build.parse_spec(["six==1.17.0"]), None)
    assert moved.as_dict() == {"six": "1.17.0", "iniconfig": "2.0.0"}


def test_an_impossible_spec_names_the_conflict_in_one_line(tmp_path: Path) -> None:
    base = build.VersionSet.of({"iniconfig": "2.0.0"}, torch=None)
    with pytest.raises(BuildError) as refused:
        build.resolve(base, build.parse_spec(["pytest==8.0.0", "pluggy==0.13.0"]), None)
    assert "\n" not in str(refused.value) and "pytest==8.0.0 depends on pluggy" in str(refused.value)


@pytest.mark.parametrize(
    ("words", "message"),
    [(["trans formers"], "cannot read"), (["six", "Six==1"], "twice"), (["torch==2.12.0"], "pass --torch"),
     (["pip==25.0"], "cannot be upgraded here")],
)  # fmt: skip
def test_a_bad_spec_is_refused(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build.parse_spec(words)
