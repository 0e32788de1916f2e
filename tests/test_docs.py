"""The README's module map names every module of mlm_bench/ and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def map_rows(readme: str) -> set[str]:
    """Module names in the first column of the README's module map (`a`, `b` cells name two)."""
    lines = readme[readme.index("| module | job |") :].splitlines()
    rows = [line.strip() for line in lines[2:]]
    rows = rows[: next((i for i, row in enumerate(rows) if not row.startswith("|")), len(rows))]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_module_map_matches_the_tree() -> None:
    modules = {path.stem for path in (ROOT / "mlm_bench").glob("*.py")} - {"__init__"}
    assert map_rows((ROOT / "README.md").read_text(encoding="utf-8")) == modules
