"""The tree keeps its own rules: the README's module map names every module of mlm_bench/ and nothing else, and no
function runs over 60 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def map_rows(readme: str) -> set[str]:
    """Module names in the first column of the README's module map (`a`, `b` cells name two)."""
    lines = readme[readme.index("| module | job |") :].splitlines()
    rows = [line.strip() for line in lines[2:]]
    rows = rows[: next((i for i, row in enumerate(rows) if not row.startswith("|")), len(rows))]
    return {name for row in rows for name in re.findall(r"`([\w.]+)`", row.split("|")[1])}


def test_the_module_map_matches_the_tree() -> None:
    """Every module, in folders too (`envs.lock`), and no package `__init__`."""
    package = ROOT / "mlm_bench"
    modules = {".".join(p.relative_to(package).with_suffix("").parts) for p in package.rglob("*.py")}
    modules = {name for name in modules if name != "__init__" and not name.endswith(".__init__")}
    assert map_rows((ROOT / "README.md").read_text(encoding="utf-8")) == modules


MAX_FUNCTION_LINES = 60


def long_functions(source: str, name: str) -> list[str]:
    """`name:function (lines)` for each function of `source` longer than MAX_FUNCTION_LINES."""
    return [
        f"{name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_runs_over_60_lines() -> None:
    files = [path for part in ("mlm_bench", "tests", "benchmarks", "scripts") for path in (ROOT / part).rglob("*.py")]
    assert files
    assert [f for path in files for f in long_functions(path.read_text(encoding="utf-8"), path.name)] == []


def test_the_length_check_sees_a_long_function() -> None:
    """Test of the test above."""
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}", "m.py") == ["m.py:f (61 lines)"]
