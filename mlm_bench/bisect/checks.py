"""Checks: what `bisect` asks of each probed release, run in that release's environment from the checkout, and
its result as one comparable string.

A contract test by pytest node id (its outcome as the suite runs it); `defect:KEY`, the registry entry's raw-library
test with every xfail off (`--runxfail`: the check must not read the entry's own version range, which is what it
measures); `fingerprint:FIELD`, the field's value in the release's fingerprint.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlm_bench.contract import defects
from mlm_bench.errors import UsageError
from mlm_bench.runs.results import flatten
from mlm_bench.upgrade.outcomes import read_junit

DEFECT, FINGERPRINT = "defect:", "fingerprint:"
# One test, in file order, hypothesis's deterministic profile; warnings reported, not errors (a deprecation on an
# old release is not the check's result).
PYTEST = ("-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "--hypothesis-profile", "ci", "-W", "default",
          "-q")  # fmt: skip


@dataclass(frozen=True)
class Check:
    """One check: a pytest node id to run (xfails off for a defect's), or a fingerprint field to read."""

    text: str
    test: str | None = None
    field: str | None = None
    xfails_off: bool = False

    def run(self, python: Path, root: Path, folder: Path) -> tuple[str | None, str]:
        """The check's result in the environment of `python` (None where it cannot run there: a skip, as a release
        that cannot be imported is) and what to note about it; its files in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        return self._fingerprint(python, root, folder) if self.field else self._test(python, root, folder)

    def _test(self, python: Path, root: Path, folder: Path) -> tuple[str | None, str]:
        junit, log = folder / "check.xml", folder / "check.log"
        command = [str(python), *PYTEST, f"--junitxml={junit}", *(["--runxfail"] if self.xfails_off else []), self.test]
        with log.open("w", encoding="utf-8") as sink:
            code = subprocess.run(command, cwd=root, stdout=sink, stderr=subprocess.STDOUT).returncode
        outcomes = read_junit(junit, root) if junit.is_file() else None
        status = outcomes.status.get(self.test) if outcomes else None
        if status in ("failed", "error"):
            # With the exception's type: the defect's assertion and a release the test cannot run on differ.
            return f"{status} ({exception_type(outcomes.reasons.get(self.test, ''))})", ""
        if status:
            return status, ""
        found = sorted(set(outcomes.status.values())) if outcomes else []
        if found:  # a parametrised test's ids: their outcomes together
            return "/".join(found), ""
        return None, f"not run: pytest exited {code} collecting it (an import error on this release?): {log}"

    def _fingerprint(self, python: Path, root: Path, folder: Path) -> tuple[str | None, str]:
        command = [str(python), "-m", "mlm_bench", "fingerprint", "--dir", str(folder)]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True)
        written = sorted(folder.glob("*.json"))
        if done.returncode or len(written) != 1:
            return None, f"no fingerprint (exit {done.returncode}: {' '.join(done.stderr.split())[-200:]})"
        fields = flatten(json.loads(written[0].read_text(encoding="utf-8")))
        return (json.dumps(fields[self.field], sort_keys=True) if self.field in fields else "<absent>"), ""


def exception_type(message: str) -> str:
    """The exception a junit failure message names ("TypeError: ..."); a bare `assert` is an AssertionError."""
    head = message.split(":", 1)[0].strip()
    if head.isidentifier():
        return head
    return "AssertionError" if message.startswith("assert") else "unknown"


def parse(text: str, root: Path) -> Check:
    """A CHECK argument as a Check, refused with the fix when it names nothing."""
    if text.startswith(DEFECT):
        try:
            defect = defects.lookup(text.removeprefix(DEFECT))
        except KeyError as err:
            raise UsageError(f"{err.args[0]}: pass defect:KEY with one of them") from err
        return Check(text, test=defect.test, xfails_off=True)
    if text.startswith(FINGERPRINT):
        field = text.removeprefix(FINGERPRINT)
        if not field:
            raise UsageError("fingerprint: names no field: pass e.g. fingerprint:tokenizer.vocab_size")
        return Check(text, field=field)
    path = text.split("::", 1)[0]
    if "::" not in text or not (root / path).is_file():
        raise UsageError(f"{text!r} is not a test of this checkout, defect:KEY or fingerprint:FIELD: pass a pytest "
                         "node id such as tests/test_library.py::test_collator_seed_zero_is_a_seed")  # fmt: skip
    return Check(text, test=text)
