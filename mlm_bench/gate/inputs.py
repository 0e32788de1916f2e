"""Gate inputs: the files the gate reads (pytest-benchmark JSON, fingerprints, junit XML), checked and loaded."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlm_bench.errors import UsageError
from mlm_bench.gate.statistics import pooled_stats, rate_at

# The timing statistics pytest-benchmark records and the gate can compare.
STATS = ("median", "min", "mean")
# Per-second rates recorded in a benchmark's extra_info at its median time per call.
THROUGHPUTS = ("samples_per_second", "tokens_per_second", "nonpad_tokens_per_second")


@dataclass(frozen=True)
class BenchmarkRun:
    """One pytest-benchmark JSON file: its benchmarks by full name, and the versions they recorded."""

    path: Path
    benchmarks: dict[str, dict[str, Any]]
    machine: dict[str, Any]
    # Each benchmark's rounds per process, when the side was measured in several (a folder of files, load_side).
    processes: dict[str, list[list[float]]] = field(default_factory=dict)

    @property
    def versions(self) -> dict[str, str]:
        """The library versions the file was measured with: its machine_info's, or (files before 7 Dec 2026) the
        first benchmark's extra_info."""
        if self.machine.get("versions"):
            return self.machine["versions"]
        for bench in self.benchmarks.values():
            found = bench.get("extra_info", {}).get("versions")
            if found:
                return found
        return {}

    @property
    def label(self) -> str:
        found = self.versions
        if "transformers" in found:
            return f"transformers {found['transformers']} / datasets {found.get('datasets', '?')}"
        return self.path.stem


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UsageError(f"{what} {path} does not exist: pass an existing file") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{what} {path} is not JSON ({err}): pass the file {what} names") from err


def load_run(path: Path) -> BenchmarkRun:
    """Read a `pytest --benchmark-json` file, refusing anything without per-benchmark stats."""
    data = _read_json(path, "benchmark file")
    hint = "pass the file written by `pytest benchmarks/ --benchmark-json FILE`"
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise UsageError(f"{path} has no 'benchmarks' list, so it is not pytest-benchmark JSON: {hint}")
    benchmarks: dict[str, dict[str, Any]] = {}
    for entry in data["benchmarks"]:
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if (
            not isinstance(stats, dict)
            or not all(k in stats for k in (*STATS, "iqr", "rounds"))
            or "fullname" not in entry
        ):
            raise UsageError(
                f"{path} has a benchmark without fullname and stats (median, min, mean, iqr, rounds): {hint}"
            )
        benchmarks[entry["fullname"]] = entry
    return BenchmarkRun(Path(path), benchmarks, data.get("machine_info", {}))


def load_side(path: Path) -> BenchmarkRun:
    """One side of a comparison: a benchmark JSON file (one process), or a folder of them (one per process, as
    `mlm-bench upgrade` writes), pooled with each process's rounds kept."""
    if not Path(path).is_dir():
        return load_run(path)
    files = sorted(Path(path).glob("*.json"))
    if not files:
        raise UsageError(f"{path} holds no benchmark JSON files: pass a file, or a folder of one file per process")
    return pooled([load_run(file) for file in files], Path(path))


def pooled(runs: list[BenchmarkRun], path: Path) -> BenchmarkRun:
    """Several processes' runs as one: the first run's benchmarks (learning values are fixed by the seed) with the
    rounds of every process that has them pooled, the statistics recomputed and each process's rounds kept."""
    benchmarks, processes = {}, {}
    for name, entry in runs[0].benchmarks.items():
        rounds = [run.benchmarks[name]["stats"]["data"] for run in runs if run.benchmarks.get(name, {}).get("stats",
                  {}).get("data")]  # fmt: skip
        if len(rounds) < len(runs):
            raise UsageError(f"{name} lacks per-round data in some of {path}'s files: pass files of one benchmark "
                             "run each, written by `pytest benchmarks/ --benchmark-json`")  # fmt: skip
        stats = pooled_stats([x for process in rounds for x in process])
        extra = dict(entry.get("extra_info", {}))
        for key in THROUGHPUTS:  # recorded at the first process's median: restated at the pooled one
            if key in extra:
                extra[key] = rate_at(extra[key], entry["stats"]["median"], stats["median"])
        benchmarks[name] = {**entry, "stats": {**entry["stats"], **stats}, "extra_info": extra}
        processes[name] = rounds
    return BenchmarkRun(path, benchmarks, runs[0].machine, processes)


def load_fingerprint(path: Path) -> dict[str, Any]:
    """A fingerprint JSON object (e.g. mlm_bench/contract/fingerprints/*.json); any keys are accepted."""
    data = _read_json(path, "fingerprint file")
    if not isinstance(data, dict):
        raise UsageError(f"fingerprint file {path} holds a {type(data).__name__}, not an object: pass a JSON object")
    return data


@dataclass(frozen=True)
class TestOutcome:
    """Counts from one junit XML file (pytest --junitxml)."""

    source: str
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0 and self.errors == 0


def junit_outcome(path: Path) -> TestOutcome:
    """Sum the testsuite counts of a junit XML file."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as err:
        raise UsageError(f"junit file {path} does not exist: pass the file `pytest --junitxml FILE` wrote") from err
    except ET.ParseError as err:
        raise UsageError(f"junit file {path} is not XML ({err}): pass the file `pytest --junitxml FILE` wrote") from err
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        raise UsageError(f"junit file {path} has no <testsuite>: pass the file `pytest --junitxml FILE` wrote")
    counts = [sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")]
    return TestOutcome(str(path), *counts)
