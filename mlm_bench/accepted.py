"""Accepted changes: reviewed differences between two version sets, as snapshot tests keep them.

The accept file is a JSON list of entries: a flattened `field`, the two version-set keys (`versions`), the value
under each (`values`) and `why` the change is fine. A difference between two version sets' fingerprints fails the
suite and the gate until an entry covers that field, those two version sets and those two values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlm_bench.results import flatten, write_json_atomic


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
    """The entries of an accept file (none when it does not exist)."""
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else []


def is_accepted(change: Change, keys: tuple[str, str], entries: list[dict[str, Any]]) -> bool:
    """Whether an entry accepts this field going from `change.stored` (version set keys[0]) to `change.current`
    (keys[1]), in either order."""
    for entry in entries:
        values = dict(zip(entry["versions"], entry["values"], strict=True))
        if entry["field"] != change.field or set(values) != set(keys):
            continue
        if same(values[keys[0]], change.stored) and same(values[keys[1]], change.current):
            return True
    return False


def record(path: Path, base: str, new: str, found: list[Change], why: str) -> Path:
    """Add `found` (changes from version set `base` to `new`) to the accept file at `path`, with the reason."""
    entries = load(path)
    entries += [
        {"field": c.field, "versions": [base, new], "values": [c.stored, c.current], "why": why}
        for c in found
        if not is_accepted(c, (base, new), entries)
    ]
    write_json_atomic(path, entries)
    return path
