"""Report: an upgrade as `upgrade.md` (with the gate's plots) and `upgrade.json` (schema-versioned), both written
at the end, so a folder holding them holds a finished upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlm_bench.gate import report as gate_report
from mlm_bench.gate.compare import table_cell
from mlm_bench.runs.results import write_json_atomic
from mlm_bench.upgrade.run import Outcome
from mlm_bench.upgrade.verdict import YourSetup

SCHEMA_VERSION = 2  # 2: your_setup (upgrade --model)
GPU_NOTE = (
    "GPU benchmarks: not run. `upgrade` runs the CPU benchmarks; on a CUDA machine run `pytest benchmarks/test_gpu.py "
    "--benchmark-json FILE` in both environments it printed and gate the two files (docs/ci.md)."
)


def as_json(outcome: Outcome, command: list[str], exit_code: int) -> dict[str, Any]:
    """The report's JSON: each side's full version set, what moved, every finding, the verdict and the timings."""
    up = outcome.upgrade
    contract = up.contract
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "sides": {
            name: {"torch": v.torch, "packages": v.as_dict(), "environment": outcome.environments[name]}
            for name, v in outcome.versions.items()
        },
        "moved": outcome.moved,
        "contract": None if contract is None else {
            "newly_failing": contract.newly_failing,
            "newly_passing": contract.newly_passing,
            "failing_on_both": contract.failing_on_both,
            "known_defects": {side: contract.known_defects(side) for side in ("base", "candidate")},
            "not_applicable": {side: contract.not_applicable(side) for side in ("base", "candidate")},
        },
        "fingerprint": None if up.fingerprint is None else [
            {"field": d.key, "base": d.base, "candidate": d.new, "accepted": d.accepted} for d in up.fingerprint
        ],
        "your_setup": None if up.setup is None else {
            "contract": None if up.setup.contract is None else {
                "newly_failing": up.setup.contract.newly_failing,
                "failing_on_both": up.setup.contract.failing_on_both,
                "outcomes": {side: getattr(up.setup.contract, side).status for side in ("base", "candidate")},
            },
            "learning": None if up.setup.learning is None else [
                {"key": q.key, "base": q.base, "candidate": q.new, "tolerance": q.tolerance, "changed": q.changed}
                for q in up.setup.learning
            ],
            "crossings": up.setup.crossings,
        },
        "warnings": {**outcome.warnings, "new": up.new_warnings},
        "speed": None if up.gate is None else {
            name: {"change": s.change, "low": s.low, "high": s.high, "verdict": s.verdict, "processes": s.processes}
            for name, s in up.gate.speed.items()
        },
        "learning": None if up.gate is None else [
            {"benchmark": q.benchmark, "key": q.key, "base": q.base, "candidate": q.new, "changed": q.changed}
            for q in up.gate.quality
        ],
        "verdict": {"headline": up.headline(), "exit_code": exit_code, "regressions": up.regressions,
                    "review": up.review, "inconclusive": up.inconclusive},
        "seconds": outcome.seconds,
    }  # fmt: skip


def render(outcome: Outcome, exit_code: int) -> str:
    """The report as Markdown: the headline first, then each side, what moved, and each stage's findings."""
    up = outcome.upgrade
    lines = [f"# {up.headline()}", "", f"Exit {exit_code}. Built in {outcome.seconds['build']:.0f} s, measured in "
             f"{outcome.seconds['stages']:.0f} s.", "", "## Packages that moved", ""]  # fmt: skip
    lines += [f"- {line}" for line in outcome.moved] or ["- none (a same-set upgrade)"]
    for title, items in (("Regressions", up.regressions), ("To review", up.review), ("Too noisy", up.inconclusive)):
        if items:
            lines += ["", f"## {title}", "", *[f"- {item}" for item in items]]
    lines += [*_setup_lines(outcome.upgrade.setup), "", "## The suite's workloads"]
    lines += _contract_lines(outcome) + _fingerprint_lines(outcome) + _warning_lines(outcome)
    lines += ["", "### Speed and learning", ""]
    lines += [
        "The gate's report: [gate/report.md](gate/report.md)." if up.gate else "Not measured (no benchmarks stage)."
    ]
    lines += ["", GPU_NOTE, "", "## Version sets", ""]
    for name, versions in outcome.versions.items():
        pins = ", ".join(f"{n} {v}" for n, v in versions.pins)
        lines += [f"- {name} (`{outcome.environments[name]}`): {versions.torch}; {pins}"]
    return "\n".join(lines) + "\n"


def _setup_lines(setup: YourSetup | None) -> list[str]:
    """Your setup: its contract on both sides, your run's learning, and each artifact across the sides."""
    if setup is None:
        return []
    lines = ["", "## Your setup", "", "### Your contract (`pytest --pyargs mlm_bench.contract`)", ""]
    if setup.contract is None:
        lines += ["Not compared (it could not run on both sides; see the regressions)."]
    else:
        c = setup.contract
        passed = {side: len(getattr(c, side).named("passed")) for side in ("base", "candidate")}
        lines += [f"- newly failing: {', '.join(c.newly_failing) or 'none'}",
                  f"- failing on both sides: {', '.join(c.failing_on_both) or 'none'}",
                  f"- passed: base {passed['base']}, candidate {passed['candidate']}"]  # fmt: skip
    lines += ["", "### Your run", ""]
    if setup.learning is None:
        lines += ["Not compared (it did not finish on both sides)."]
    else:
        lines += gate_report.learning_table([q for q in setup.learning if q.changed] or setup.learning[:4])
    lines += ["", "### Artifacts across versions", "", "| artifact | written by | read by | result | detail |",
              "|---|---|---|---|---|"]  # fmt: skip
    for c in setup.crossings:
        known = f" (known defect `{c['known']}`)" if c.get("known") else ""
        lines += [f"| {c['path']} | {c['writer']} | {c['reader']} | {c['status']} | {c['detail']}{known} |"]
    return lines


def _contract_lines(outcome: Outcome) -> list[str]:
    contract = outcome.upgrade.contract
    if contract is None:
        return ["", "### Contract tests", "", "Not run."]
    lines = ["", "### Contract tests", ""]
    lines += [f"- newly failing: {', '.join(contract.newly_failing) or 'none'}"]
    lines += [f"- newly passing: {', '.join(contract.newly_passing) or 'none'}"]
    for side in ("base", "candidate"):
        defects = contract.known_defects(side)
        lines += [f"- known upstream defects ({side}, expected failures): " + (", ".join(defects) or "none")]
        skipped = contract.not_applicable(side)
        lines += [f"- self-tests not applicable ({side}): " + (", ".join(skipped) or "none")]
    return lines


def _fingerprint_lines(outcome: Outcome) -> list[str]:
    found = outcome.upgrade.fingerprint
    if found is None:
        return ["", "### Fingerprint", "", "Not compared."]
    if not found:
        return ["", "### Fingerprint", "", "Identical in every field."]
    rows = [f"| {d.key} | {table_cell(d.base)} | {table_cell(d.new)} | {'accepted' if d.accepted else 'NOT ACCEPTED'} |"
            for d in found]  # fmt: skip
    return ["", "### Fingerprint", "", "| field | base | candidate | review |", "|---|---|---|---|", *rows]


def _warning_lines(outcome: Outcome) -> list[str]:
    new = outcome.upgrade.new_warnings
    counts = ", ".join(f"{side} {len(found)}" for side, found in outcome.warnings.items())
    return ["", "### Warnings", "", f"Distinct warnings raised by the tests: {counts}. New in the candidate: "
            + ("none." if not new else ""), *[f"- {w}" for w in new]]  # fmt: skip


def write(outcome: Outcome, directory: Path, command: list[str], exit_code: int) -> list[Path]:
    """upgrade.md and upgrade.json (and the gate's report and plots under gate/ when the benchmarks ran)."""
    written = []
    if outcome.upgrade.gate is not None:
        written += gate_report.write_report(outcome.upgrade.gate, directory / "gate")
    markdown = directory / "upgrade.md"
    markdown.write_text(render(outcome, exit_code), encoding="utf-8")
    write_json_atomic(directory / "upgrade.json", as_json(outcome, command, exit_code))
    return [*written, markdown, directory / "upgrade.json"]
