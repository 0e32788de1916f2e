"""Report: a history as `history.json` (schema-versioned: every release's record, the matrix, the benchmark series)
and `index.html`, the page, beside the release folders it was made from."""

from __future__ import annotations

import os
import platform
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlm_bench.envs import build as envs
from mlm_bench.envs.lock import moved
from mlm_bench.gate.compare import Thresholds
from mlm_bench.history import matrix, page
from mlm_bench.history.collect import Plan
from mlm_bench.runs.results import write_json_atomic

SCHEMA_VERSION = 1


def build(plan: Plan, base: envs.VersionSet, records: list[dict], command: list[str]) -> dict[str, Any]:
    """The history's JSON: provenance, each release's record, the matrix's rows and the benchmark series."""
    rows, steady = matrix.test_rows(records)
    rows += matrix.fingerprint_rows(records)
    series = matrix.benchmark_series(records, plan.out, Thresholds()) if plan.benchmarks else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "package": plan.package,
        "releases": list(plan.releases),
        "base": {"torch": base.torch, "packages": base.as_dict()},
        "records": records,
        "steady_tests": steady,
        "rows": [{"check": r.check, "kind": r.kind, "cells": [asdict(c) for c in r.cells]} for r in rows],
        "benchmarks": series,
    }


def render(data: dict[str, Any]) -> str:
    """The page of a history's JSON."""
    rows = [matrix.Row(r["check"], r["kind"], [matrix.Cell(**c) for c in r["cells"]]) for r in data["rows"]]
    base = data["base"]["packages"]
    provenance = [
        f"Made by `{shlex.join(data['command'])}` on {data['date']} ({data['machine']}); every release "
        f"built as the base's pins (torch: {data['base']['torch']}) plus that {data['package']} release."
    ]
    for record in data["records"]:
        others = [m for m in moved(base, record.get("versions", {})) if not m.startswith(f"{data['package']} ")]
        said = record.get("error") or ("also moved: " + "; ".join(others) if others else "nothing else moved")
        provenance.append(f"{record['release']}: {said}")
    title = f"{data['package']} history: {data['releases'][0]} to {data['releases'][-1]}"
    return page.render(title, provenance, data["releases"], rows, data["steady_tests"], data["benchmarks"])


def write(out: Path, data: dict[str, Any]) -> list[Path]:
    """history.json and index.html in the history's folder."""
    json_path, html_path = out / "history.json", out / "index.html"
    write_json_atomic(json_path, data)
    html_path.write_text(render(data), encoding="utf-8")
    return [json_path, html_path]
