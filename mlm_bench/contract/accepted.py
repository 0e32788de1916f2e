"""Accepted changes: reviewed differences between fingerprints, keyed by the change itself, as snapshot tests keep them.

The accept file is a JSON list of entries, each naming a flattened `field`, its `old` and `new` value, `why` the
change is fine and the version set where it was `first_seen`. An entry accepts that change between any two version
sets that show it, in either direction, so a new release that shows a reviewed change needs no new entry. Any other
difference between two fingerprints fails the suite and the gate until it is reviewed and recorded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlm_bench.errors import UsageError
from mlm_bench.runs.results import flatten, write_json_atomic


@dataclass(frozen=True)
class Change:
    """One field whose value differs between two records."""

    field: str
    stored: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.field}: {self.stored} -> {self.current}"


# Packages whose versions name a version set (and a fingerprint file).
KEY_PACKAGES = ("transformers", "tokenizers", "torch")
# The golden fingerprints shipped with the package, and the reviewed changes between them beside them.
SHIPPED = Path(__file__).resolve().parent / "fingerprints"
ACCEPTED = "accepted.json"
# What a set of equal fingerprints reports, in the CLI and the tests alike.
IDENTICAL = "identical in every field"


def version_set_key(found: dict[str, str]) -> str:
    """The name of a version set: `transformers-X_tokenizers-Y_torch-Z`."""
    return "_".join(f"{name}-{found.get(name, '?')}" for name in KEY_PACKAGES)


def same(a: Any, b: Any, rel: float = 1e-5) -> bool:
    """Equal, floats to a relative 1e-5 (what separates a changed computation from a float-print round trip)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel)
    return a == b


def field_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Flattened fields whose values differ; a field on one side only shows as `<absent>` on the other."""
    old, new = flatten(stored), flatten(current)
    found = [Change(key, old.get(key, "<absent>"), new.get(key, "<absent>")) for key in sorted(set(old) | set(new))]
    return [change for change in found if not same(change.stored, change.current)]


def load(path: Path) -> list[dict[str, Any]]:
    """The entries of an accept file (none when it does not exist); an entry of another layout is refused."""
    entries = json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else []
    for entry in entries:
        missing = {"field", "old", "new", "why", "first_seen"} - set(entry)
        if missing:
            raise UsageError(
                f"accept file {path}: the entry for {entry.get('field')!r} lacks {sorted(missing)}: give each entry "
                "field, old, new, why and first_seen"
            )
    return entries


def is_accepted(change: Change, entries: list[dict[str, Any]]) -> bool:
    """Whether an entry names this field going between these two values, in either direction."""
    for entry in entries:
        if entry["field"] != change.field:
            continue
        forward = same(entry["old"], change.stored) and same(entry["new"], change.current)
        if forward or (same(entry["old"], change.current) and same(entry["new"], change.stored)):
            return True
    return False


def record(path: Path, found: list[Change], first_seen: str, why: str) -> Path:
    """Add the changes in `found` that no entry covers yet to the accept file at `path`, with the reason."""
    entries = load(path)
    entries += [
        {"field": c.field, "old": c.stored, "new": c.current, "why": why, "first_seen": first_seen}
        for c in found
        if not is_accepted(c, entries)
    ]
    write_json_atomic(path, entries)
    return path
