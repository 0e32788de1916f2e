"""Outcomes: what each side's contract tests did, test by test (junit XML), and the warnings they raised (the
log's warnings summary), in the forms the upgrade report compares."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from mlm_bench.errors import UsageError

# A line of pytest's warnings summary: "  /where/file.py:12: FutureWarning: the message".
WARNING_LINE = re.compile(r"^\s+(?P<where>.+?):\d+: (?P<category>\w*Warning): (?P<message>.+)$")
# What differs between two sides' identical warnings: the environment's folder, scratch paths, object addresses.
SIDE_SPECIFIC = ((re.compile(r"[^\s(]*/site-packages/"), ""), (re.compile(r"/tmp/[^\s)]+"), "<tmp>"),
                 (re.compile(r"0x[0-9a-fA-F]+"), "0x..."))  # fmt: skip


@dataclass(frozen=True)
class Outcomes:
    """Each test's outcome (passed, failed, error, skipped, xfailed) and the reason of each skip and xfail or the
    message of each failure and error."""

    status: dict[str, str]
    reasons: dict[str, str]

    def named(self, outcome: str) -> list[str]:
        return sorted(test for test, found in self.status.items() if found == outcome)


def read_junit(path: Path, root: Path) -> Outcomes:
    """Every test case of a pytest junit XML file, by the id pytest takes (`tests/test_x.py::TestA::test_b`; the
    file found under `root`)."""
    try:
        tree = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise UsageError(f"cannot read junit file {path} ({err}): pass the file `pytest --junitxml` wrote") from err
    status, reasons = {}, {}
    for case in tree.iter("testcase"):
        test = _test_id(case.get("classname", ""), case.get("name", ""), root)
        found, reason = _outcome(case)
        status[test] = found
        if reason:
            reasons[test] = reason
    return Outcomes(status, reasons)


def _test_id(classname: str, name: str, root: Path) -> str:
    """pytest's id of a junit test case: the longest dotted prefix of its classname that is a file, then the rest."""
    parts = classname.split(".")
    cut = next((i for i in range(len(parts), 0, -1) if (root / Path(*parts[:i])).with_suffix(".py").is_file()), None)
    if cut is None:
        return f"{classname}::{name}"
    return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])


def _outcome(case: ET.Element) -> tuple[str, str | None]:
    """A test case's outcome and, for a skip or xfail its reason, for a failure or error its message."""
    for tag in ("failure", "error"):
        found = case.find(tag)
        if found is not None:
            return ("failed" if tag == "failure" else "error"), found.get("message")
    skipped = case.find("skipped")
    if skipped is None:
        return "passed", None
    kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
    return kind, skipped.get("message")


def _same_on_both_sides(text: str) -> str:
    for pattern, replacement in SIDE_SPECIFIC:
        text = pattern.sub(replacement, text)
    return text


def warnings_in(log: Path) -> list[str]:
    """The distinct warnings of a pytest log's warnings summary, as `Category: message (where)`."""
    found, inside = [], False
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "warnings summary" in line and line.startswith("="):
            inside = True
        elif inside and line.startswith(("-- Docs:", "=")):
            inside = False
        elif inside and (match := WARNING_LINE.match(line)):
            text = _same_on_both_sides(f"{match['category']}: {match['message'].strip()} ({match['where']})")
            if text not in found:
                found.append(text)
    return found
