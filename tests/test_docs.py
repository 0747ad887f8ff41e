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


def test_readme_test_command_installs_chromium_for_the_browser_test() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines()[:12] if line.startswith("    ")]
    assert "apt-get install -y -qq chromium" in commands[1]
    assert commands[1].startswith("(command -v chromium >/dev/null ||")
    # .ci/run runs that command as written, and installs Chromium no other way
    ci = (DOCS.parent / ".ci" / "run").read_text()
    assert ci.count("apt-get install") == 1 and commands[1] in ci


def test_readme_walks_from_the_demo_to_policywatch_deploy() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    order = ["policywatch demo", "policywatch claims --entity Huawei --since 7d",
             "In a folder of your own", "policywatch run --config policywatch.yaml",
             "policywatch deploy --config policywatch.yaml",
             "prefect worker start --pool policywatch"]
    places = [readme.find(text) for text in order]
    assert -1 not in places and places == sorted(places), dict(zip(order, places, strict=True))


def test_what_the_demo_leaves_in_the_checkout_is_ignored() -> None:
    import subprocess

    left = ["policywatch-demo-feeds/huawei.atom", "policywatch-demo-reports/latest.html",
            "policywatch-demo.duckdb.lock", "policywatch-demo.duckdb"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *left], cwd=DOCS.parent,
                          capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(left)
