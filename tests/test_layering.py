"""The layering rules of docs/design.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("path", _modules("flows"), ids=lambda p: p.name)
def test_flows_only_compose_tasks(path: Path) -> None:
    assert not _imports(path) & {"httpx", "bs4", "duckdb", "lxml", "apprise", "spacy"}


@pytest.mark.parametrize("path", _modules("tasks") + _modules("schemas"), ids=lambda p: p.name)
def test_io_libraries_stay_in_their_modules(path: Path) -> None:
    imported = _imports(path)
    if path.parent.name == "tasks" and path.name != "load.py":
        assert "duckdb" not in imported
    if path.parent.name == "tasks" and path.name not in {"fetch.py", "notify.py"}:
        assert "httpx" not in imported
    if path.parent.name == "schemas":
        assert not imported & {"httpx", "duckdb", "bs4", "prefect"}


@pytest.mark.parametrize("name", ["parse", "parse_body", "parse_meta", "parse_comments",
                                  "claims", "stance", "pages", "ids", "discover"])
def test_pure_stages_do_not_touch_the_database(name: str) -> None:
    path = ROOT / "tasks" / f"{name}.py"
    if path.exists():
        assert not _imports(path) & {"duckdb", "sqlite3"}
