"""The package's folders are layers: every import of mlm_bench inside it (at any depth, lazy ones too) is one its
folder's docstring allows ("May import: ..."), so nothing imports back up the data flow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlm_bench"
# Over every layer: the command and `python -m mlm_bench`.
ANYTHING = {"cli", "__main__"}


def allowed_imports(init: Path) -> set[str]:
    """The names after "May import:" in a package docstring."""
    found = re.search(r"May import: ([\w, ]+)\.", ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "")
    assert found, f"{init} does not say what it may import"
    return {name.strip() for name in found.group(1).split(",")}


def layer_of(path: Path) -> str:
    """The folder a module belongs to, or the module's own name at the top."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_layers(source: str) -> set[str]:
    """The first component after `mlm_bench.` of every import of the package in `source`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "mlm_bench":
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mlm_bench.")}
    return found


def violations(path: Path, source: str) -> list[str]:
    """`module -> layer` for each import `path` makes that its layer's docstring does not allow."""
    layer = layer_of(path)
    if layer in ANYTHING:
        return []
    folder = PACKAGE / layer
    rules = allowed_imports(folder / "__init__.py" if folder.is_dir() else PACKAGE / "__init__.py")
    allowed = rules | {layer, "__version__"}
    return [f"{path.relative_to(PACKAGE)} -> {name}" for name in sorted(imported_layers(source) - allowed)]


def test_every_import_follows_the_layers() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    assert [v for path in modules for v in violations(path, path.read_text(encoding="utf-8"))] == []


def test_an_upward_import_is_seen() -> None:
    """Test of the test above: data importing training, a leaf importing data, lazily inside a function too."""
    assert violations(PACKAGE / "data" / "collate.py", "from mlm_bench.training.train import train\n") == [
        "data/collate.py -> training"
    ]
    lazy = "def f():\n    from mlm_bench import data\n    import mlm_bench.gate.compare\n"
    assert violations(PACKAGE / "config.py", lazy) == ["config.py -> data", "config.py -> gate"]
