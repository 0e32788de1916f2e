"""Report: a bisect as `bisect.md` and `bisect.json` (schema-versioned), with the first changed release, its
neighbours, every probe with its result and time, and the command that reproduces it; and the exit code.
"""

from __future__ import annotations

import os
import platform
import shlex
from pathlib import Path
from typing import Any

from mlm_bench.bisect.run import Outcome, Plan
from mlm_bench.runs.results import write_json_atomic

SCHEMA_VERSION = 1
EXIT_FOUND, EXIT_OPEN = 0, 3  # 3: skips or out-of-order results leave the answer open (the gate's "cannot tell")


def exit_code(outcome: Outcome) -> int:
    """0 when one release is the boundary and every probe agrees with it; 3 when the answer is left open."""
    answer = outcome.answer
    return EXIT_FOUND if answer.found and not answer.out_of_order else EXIT_OPEN


def headline(plan: Plan, outcome: Outcome) -> str:
    """The answer in one line."""
    answer = outcome.answer
    if not answer.found:
        return (f"Open: the first {plan.package} release whose {plan.check} differs from {plan.good}'s is one of "
                f"{', '.join(answer.candidates)} (each skipped: it could not be installed or imported)")  # fmt: skip
    said = (f"{plan.package} {answer.first_new} is the first release whose {plan.check} differs from {plan.good}'s: "
            f"{answer.probes[answer.last_old].result} on {answer.last_old}, {answer.probes[answer.first_new].result} "
            f"on {answer.first_new}")  # fmt: skip
    if answer.out_of_order:
        said += f"; but not monotonic: {', '.join(answer.out_of_order)} disagree with that boundary"
    return said


def as_json(plan: Plan, outcome: Outcome, command: list[str]) -> dict[str, Any]:
    answer = outcome.answer
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "date": outcome.date,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "package": plan.package,
        "check": plan.check,
        "good": plan.good,
        "bad": plan.bad,
        "releases": answer.releases,
        "last_old": answer.last_old,
        "first_new": answer.first_new,
        "candidates": answer.candidates,
        "out_of_order": answer.out_of_order,
        "probes": [
            {"release": p.release, "result": p.result, "seconds": round(p.seconds, 1), "note": p.note}
            for p in answer.probes.values()
        ],
        "base": {"torch": outcome.base.torch, "packages": outcome.base.as_dict()},
        "headline": headline(plan, outcome),
        "exit_code": exit_code(outcome),
        "seconds": round(outcome.seconds, 1),
    }


def render(plan: Plan, outcome: Outcome, command: list[str]) -> str:
    answer = outcome.answer
    lines = [f"# {headline(plan, outcome)}", "",
             f"Exit {exit_code(outcome)}. {len(answer.probes)} of {len(answer.releases)} releases probed in "
             f"{outcome.seconds:.0f} s. Reproduce: `{shlex.join(command)}`", "",
             f"| release | result | {'same as' if answer.found else 'like'} {plan.good}? | seconds | note |",
             "|---|---|---|---:|---|"]  # fmt: skip
    for probe in answer.probes.values():
        old = "skipped" if probe.result is None else ("yes" if answer.is_old(probe.release) else "no")
        mark = " **(boundary)**" if probe.release in (answer.last_old, answer.first_new) else ""
        lines.append(f"| {probe.release}{mark} | {probe.result or '-'} | {old} | {probe.seconds:.0f} | {probe.note} |")
    lines += ["", f"Base: {outcome.base.torch} and the base's pins, each kept where still needed; the probed release "
              f"replaces {plan.package}, and every other package that moved is named in the note (a possible "
              "confound)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write(plan: Plan, outcome: Outcome, command: list[str]) -> list[Path]:
    """bisect.json and bisect.md in the plan's folder."""
    plan.out.mkdir(parents=True, exist_ok=True)
    data, text = plan.out / "bisect.json", plan.out / "bisect.md"
    write_json_atomic(data, as_json(plan, outcome, command))
    text.write_text(render(plan, outcome, command), encoding="utf-8")
    return [data, text]
