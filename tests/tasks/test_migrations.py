"""A database written by schema version 1 is upgraded in place, its rows kept."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from schemas.ddl import SCHEMA_VERSION
from schemas.errors import LoadError
from schemas.ids import claim_key_for
from tasks.store import alerts_to_send, load_batch, open_for_write, query
from tests.tasks.test_load import _batch

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "schema_v1.sql"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(FIXTURE.read_text())
    con.close()
    return path


def test_version_1_is_upgraded_in_place(old_db: Path) -> None:
    with open_for_write(old_db):
        pass
    assert query(old_db, "SELECT value FROM schema_meta WHERE key = 'version'")[1] == \
        [(str(SCHEMA_VERSION),)]
    _, claims = query(old_db, "SELECT claim_id, content, claim_key FROM claims ORDER BY 1")
    assert [(c, k) for c, _, k in claims] == [
        ("cl1", claim_key_for("Huawei is closing the gap")),
        ("cl2", claim_key_for("China is months behind"))]
    _, alerts = query(old_db, "SELECT alert_id, status, rule, mode, claim_key, attempts "
                              "FROM alerts ORDER BY 1")
    key = claim_key_for("Huawei is closing the gap")
    assert alerts == [("al1", "sent", "tracked", "immediate", key, 1),
                      ("al2", "failed", "tracked", "immediate", key, 2)]
    # version 3: every body stored before the extraction chain came from the scorer
    assert query(old_db, "SELECT extracted_by FROM articles")[1] == [("dom",)]
    for table, count in (("articles", 1), ("comments", 1), ("stances", 1), ("runs", 1),
                         ("claim_entities", 3), ("pages", 1)):
        assert query(old_db, f"SELECT count(*) FROM {table}")[1] == [(count,)], table
    # the upgraded outbox still works: the failed alert is offered again, the sent one not
    [again] = alerts_to_send(old_db, max_attempts=10)
    assert again.alert_id == "al2" and again.outlets == ("wire: https://wire.example/a",)
    # and new nights load on top of it
    assert load_batch(old_db, _batch("r-new")).articles_new == 1


def test_upgrade_is_idempotent(old_db: Path) -> None:
    for _ in range(2):
        with open_for_write(old_db):
            pass
    assert query(old_db, "SELECT count(*) FROM claims WHERE claim_key IS NULL")[1] == [(0,)]


def test_a_newer_database_is_refused(old_db: Path) -> None:
    con = duckdb.connect(str(old_db))
    con.execute("UPDATE schema_meta SET value = '99' WHERE key = 'version'")
    con.close()
    with pytest.raises(LoadError, match="newer than this policywatch"), open_for_write(old_db):
        pass
