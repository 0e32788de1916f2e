"""The tree keeps its own rules: the design doc's module map names every module of mlm_bench/ and nothing else, no
function runs over 60 lines, the README stays short and every link in the docs resolves, and the README's tour runs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def map_rows(readme: str) -> set[str]:
    """Module names in the first column of the README's module map (`a`, `b` cells name two)."""
    lines = readme[readme.index("| module | job |") :].splitlines()
    rows = [line.strip() for line in lines[2:]]
    rows = rows[: next((i for i, row in enumerate(rows) if not row.startswith("|")), len(rows))]
    return {name for row in rows for name in re.findall(r"`([\w.]+)`", row.split("|")[1])}


def test_the_module_map_matches_the_tree() -> None:
    """Every module, in folders too (`envs.lock`), and no package `__init__`, in docs/design.md's map."""
    package = ROOT / "mlm_bench"
    modules = {".".join(p.relative_to(package).with_suffix("").parts) for p in package.rglob("*.py")}
    modules = {name for name in modules if name != "__init__" and not name.endswith(".__init__")}
    assert map_rows((ROOT / "docs" / "design.md").read_text(encoding="utf-8")) == modules


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


DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 150


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(path: Path) -> list[str]:
    """Relative links in `path` whose file, or whose heading anchor, does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and anchor not in anchors(linked.read_text(encoding="utf-8"))):
            broken.append(f"{path.name}: {target}")
    return broken


def test_the_readme_is_short_and_every_doc_link_resolves() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= README_LINES
    assert [b for path in DOCS for b in broken_links(path)] == []


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    """Test of the test above."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](page.md#title) [b](gone.md) [c](page.md#nowhere) [d](https://x.org/y)\n")
    assert broken_links(page) == ["page.md: gone.md", "page.md: page.md#nowhere"]


GOLDEN = "mlm_bench/contract/fingerprints"


def tour_commands() -> list[list[str]]:
    """The `mlm-bench ...` lines of the README's tour, as argument lists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme[readme.index("## A tour") : readme.index("## Documentation")]
    return [shlex.split(line.strip())[1:] for line in tour.splitlines() if line.startswith("    mlm-bench ")]


def tiny(command: list[str], scratch: Path, envs: Path) -> list[str]:
    """A tour command made quick (20 training steps) that writes nothing into the checkout: the golden fingerprints
    are a scratch copy (a version set with none stored would add its file; a folder named mlm_bench in the working
    directory would shadow the package)."""
    command = [arg.replace(GOLDEN, str(scratch / "golden")) for arg in command]
    if command[0] == "run":
        return [*command, "--max_steps", "20", "--output-dir", str(scratch / "run"), "--force"]
    if command[0] == "fingerprint":
        return [*command, "--dir", str(scratch / "golden")]
    if command[0] == "upgrade":  # a same-set upgrade of the fingerprint alone: one environment, built in `envs`
        same = f"transformers=={importlib.metadata.version('transformers')}"
        return ["upgrade", same, "--stages", "fingerprint", "--out", str(scratch / "upgrade"), "--cache", str(envs)]
    return command


@pytest.mark.slow
def test_the_readmes_tour_runs(tmp_path: Path, env_cache: Path) -> None:
    """Each tour command, in a tiny variant, run where the committed results are copied (nothing of the checkout
    is written), exits 0."""
    commands = tour_commands()
    assert [c[0] for c in commands] == ["run", "fingerprint", "gate", "upgrade"]
    shutil.copytree(ROOT / "results", tmp_path / "results")
    shutil.copytree(ROOT / GOLDEN, tmp_path / "golden")
    for command in commands:
        where = ROOT if command[0] == "upgrade" else tmp_path  # upgrade runs the checkout's tests and benchmarks
        done = subprocess.run([sys.executable, "-m", "mlm_bench", *tiny(command, tmp_path, env_cache)], cwd=where,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
