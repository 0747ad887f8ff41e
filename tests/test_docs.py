"""The docs stay true: every table, column and view of the DDL is documented, and the
project's copy of the contract matches the tables."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from schemas.ddl import TABLES, VIEWS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _columns() -> dict[str, list[str]]:
    con = duckdb.connect()
    for statement in TABLES.values():
        con.execute(statement)
    return {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in TABLES}


def test_schema_doc_names_every_table_and_column() -> None:
    text = (DOCS / "schema.md").read_text()
    for table, columns in _columns().items():
        assert f"### {table}" in text, table
        section = text.split(f"### {table}", 1)[1].split("\n### ", 1)[0]
        for column in columns:
            assert re.search(rf"\b{column}\b", section), f"{table}.{column}"
    for view in VIEWS:
        assert f"**{view}**" in text


def test_contract_copy_tables_exist() -> None:
    text = (DOCS / "contract.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", text, flags=re.MULTILINE)
    columns = _columns()
    assert len(rows) == 7
    for table, required in rows:
        for column in re.findall(r"`(\w+)`", required):
            assert column in columns[table], f"{table}.{column}"


def test_readme_gives_the_two_commands_first() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    ci = (DOCS.parent / ".ci" / "run").read_text()
    commands = [line.strip() for line in readme.splitlines()[:10] if line.startswith("    ")]
    assert commands[0].endswith("pip install -e . && policywatch demo")
    assert commands[1] in ci


def test_cli_reference_is_current_and_every_command_has_help() -> None:
    import subprocess
    import sys

    from policywatch.cli import main

    for name, command in main.commands.items():
        assert (command.help or "").strip(), f"policywatch {name} has no help text"
        assert f"## policywatch {name}" in (DOCS / "cli.md").read_text()
    script = DOCS.parent / "scripts" / "cli_docs.py"
    done = subprocess.run([sys.executable, str(script), "--check"], cwd=DOCS.parent)
    assert done.returncode == 0, "docs/cli.md is stale: run python scripts/cli_docs.py"
