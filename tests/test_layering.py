"""The layering rules of docs/design.md, checked on the source.

- `tasks/` holds one package per stage and nothing else;
- a module imports another stage only through that package's surface (`tasks.store`, never
  `tasks.store.load`), and so do flows/ and the CLI;
- flows/ only compose tasks; DuckDB is touched only in `tasks.store`, HTTP only where pages
  are fetched and alerts delivered; schemas/ import no I/O library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(p.name for p in (ROOT / "tasks").iterdir()
                if p.is_dir() and (p / "__init__.py").exists())
HTTP_MODULES = {"tasks/crawl/fetch.py", "tasks/alerts/delivery.py"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top_level(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported_modules(path)}


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_tasks_is_one_package_per_stage() -> None:
    flat = sorted(p.name for p in (ROOT / "tasks").glob("*.py") if p.name != "__init__.py")
    assert flat == []
    assert set(STAGES) >= {"crawl", "extract", "claims", "stance", "store", "alerts", "report"}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_owns_and_names_its_surface(stage: str) -> None:
    tree = ast.parse((ROOT / "tasks" / stage / "__init__.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"tasks/{stage}/__init__.py has no docstring"
    exported = [node for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert exported, f"tasks/{stage}/__init__.py names no __all__"
    names = ast.literal_eval(exported[0].value)
    imported = {alias.asname or alias.name for node in tree.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert set(names) <= imported, set(names) - imported


@pytest.mark.parametrize("path", _modules("tasks", "flows", "policywatch"), ids=_rel)
def test_other_stages_are_reached_only_through_their_surface(path: Path) -> None:
    parts_of_path = path.relative_to(ROOT).parts
    own = parts_of_path[1] if parts_of_path[0] == "tasks" else None
    for module in _imported_modules(path):
        parts = module.split(".")
        if parts[0] != "tasks" or len(parts) < 3:
            continue
        assert parts[1] == own, (
            f"{_rel(path)} imports {module}: import tasks.{parts[1]} instead")


@pytest.mark.parametrize("path", _modules("flows"), ids=_rel)
def test_flows_only_compose_tasks(path: Path) -> None:
    assert not _top_level(path) & {"httpx", "bs4", "duckdb", "lxml", "apprise", "spacy"}


@pytest.mark.parametrize("path", _modules("tasks", "schemas"), ids=_rel)
def test_io_libraries_stay_in_their_modules(path: Path) -> None:
    imported = _top_level(path)
    rel = _rel(path)
    if rel.startswith("tasks/") and not rel.startswith("tasks/store/"):
        assert not imported & {"duckdb", "sqlite3"}, f"{rel} touches the database"
    if rel.startswith("tasks/") and rel not in HTTP_MODULES:
        assert "httpx" not in imported
    if rel.startswith("schemas/"):
        assert not imported & {"httpx", "duckdb", "bs4", "prefect"}


def test_the_store_is_reached_only_by_the_stages_that_keep_state() -> None:
    # extraction, claims and stance are pure: text in, records out
    for stage in ("extract", "claims", "stance"):
        for path in _modules(f"tasks/{stage}"):
            assert "tasks.store" not in _imported_modules(path), _rel(path)
