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
