"""Where kfp may be imported. import-linter's contracts (pyproject.toml, `make lint`) hold the
library's layers; this holds the rest of the shipped tree (tools/, scripts/, bench/), which is no package."""

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The KFP glue, and the library's two layers that drive KFP (runs, task server, the cluster's API).
MAY_IMPORT_KFP = ("components", "pipelines", "mlops/runners", "mlops/cluster")
SHIPPED = ("mlops", "components", "pipelines", "tools", "scripts", "bench")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def shipped_modules() -> list[Path]:
    return sorted(path for top in SHIPPED for path in (PROJECT_ROOT / top).rglob("*.py") if "peers" not in path.parts)


@pytest.mark.parametrize("path", shipped_modules(), ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_only_the_kfp_layers_import_kfp(path):
    relative = path.relative_to(PROJECT_ROOT).as_posix()
    if relative.startswith(MAY_IMPORT_KFP):
        pytest.skip("may import kfp")
    assert "kfp" not in imported_roots(path), f"{relative} imports kfp; only {', '.join(MAY_IMPORT_KFP)} may"


def private_names_used_from_other_modules(path: Path) -> list[str]:
    """``from m import _x`` and ``m._x`` where ``m`` is a module of this project (not the same file)."""
    ours = ("mlops", "components", "pipelines")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith(ours))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(ours):
            for alias in node.names:
                modules.add(alias.asname or alias.name)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


LIBRARY = ("mlops", "components", "pipelines")


@pytest.mark.parametrize(
    "path",
    sorted(path for top in LIBRARY for path in (PROJECT_ROOT / top).rglob("*.py")),
    ids=lambda path: str(path.relative_to(PROJECT_ROOT)),
)
def test_no_module_uses_another_modules_private_names(path):
    """A helper two modules share is public, in the layer both may import (e.g. mlops.reporting.html)."""
    assert private_names_used_from_other_modules(path) == []


def test_the_private_name_check_finds_both_spellings(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from mlops.reporting.report import _x, page\nimport mlops.stages.ingest as ingest\ningest._y()")
    assert private_names_used_from_other_modules(module) == [
        "line 1: from mlops.reporting.report import _x",
        "line 3: ingest._y",
    ]
