"""The DuckDB file: opening it (schema and migrations on first write), the run lock, reads.

A DuckDB file held open read-write by one process cannot be opened by another, so every
function in this package opens the file, does its work and closes it again: the writer is
held only while loading.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from schemas.ddl import INDEXES, MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS, ddl_hash
from schemas.errors import DatabaseBusy, LoadError
from schemas.ids import claim_key_for

DEFAULT_WAIT_S = 30.0


def _command_line() -> str:
    """How this process was started, as a user would type it."""
    args = list(sys.argv)
    if args:
        name = Path(args[0]).name
        args[0] = "policywatch" if name in ("cli.py", "__main__.py") else name
    return " ".join(args)[:300] or "python"


def _process_command(pid: int) -> str | None:
    """The command line of a running process, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _lock_holder(lock_path: Path) -> tuple[int, str] | None:
    """(pid, command) that a running policywatch wrote into the run lock file."""
    try:
        pid_text, command = lock_path.read_text(encoding="utf-8").split("\n", 1)
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return (pid, command.strip()) if _process_command(pid) is not None else None


def holder_of(path: Path | str, pid: int | None = None) -> str:
    """Who holds the database, for the "busy" message: the policywatch process (its pid
    and command) when it is one, else "another process" (with its pid when known)."""
    real = Path(path).resolve()
    holder = _lock_holder(real.with_name(f"{real.name}.lock"))
    if holder and (pid is None or holder[0] == pid):
        return f"policywatch (pid {holder[0]}: {holder[1]})"
    if pid is not None:
        command = _process_command(pid)
        if command and "policywatch" in command:
            return f"policywatch (pid {pid}: {command[:200]})"
        return f"another process (pid {pid}{': ' + command[:200] if command else ''})"
    return "another process"


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


SQLITE_HEADER = b"SQLite format 3\x00"
# A connection for the user's own SQL: no file, network or extension access beyond the
# database (read_csv('/etc/passwd'), ATTACH, INSTALL), and no setting changed after opening
# (SET log_query_path would write files). docs/security.md.
_LOCKED = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}


def _refuse_foreign_file(path: Path) -> None:
    """A file that is plainly no DuckDB database is refused in one line: DuckDB would try to
    download the sqlite extension for a SQLite file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return  # DuckDB's own error says it better
    if head.startswith(SQLITE_HEADER):
        raise LoadError(f"{path}: is a SQLite database, not a DuckDB one; give a DuckDB "
                        "file, or a new path for policywatch to create")


@contextmanager
def connect(path: Path | str, *, read_only: bool = False,
            wait_s: float = DEFAULT_WAIT_S, locked: bool = False,
            allowed_paths: Sequence[str] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database, waiting up to `wait_s` while another process holds it.

    `locked`: for the user's own SQL; no access to files but `allowed_paths`, no extension
    loaded or installed, and the configuration locked.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise LoadError(f"{path}: no such database")
    if path.is_file():
        _refuse_foreign_file(path)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(f"{path}: cannot create its folder: {exc.strerror}") from exc
    deadline = time.monotonic() + wait_s
    while True:
        try:
            config: dict[str, str | bool | int | float | list[str]] = {}
            if locked:
                config = {**_LOCKED, **({} if allowed_paths
                                        else {"enable_external_access": False})}
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise LoadError(f"{path}: cannot open database: {_open_problem(exc)}"
                                ) from exc
            if time.monotonic() >= deadline:
                found = re.search(r"\(PID (\d+)\)", str(exc))
                holder = holder_of(path, int(found[1]) if found else None)
                raise DatabaseBusy(
                    f"{path}: the database is busy: {holder} has the file open; "
                    f"waited {wait_s:g} s") from exc
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise LoadError(f"{path}: not a usable DuckDB database ({_first_line(exc)}); "
                            "restore it from a backup, or give a new path") from exc
    try:
        # times are shown, and views group them by day, in UTC whatever the machine's zone
        con.execute("SET TimeZone = 'UTC'")
        if locked:
            if allowed_paths:  # settable only before external access is switched off
                con.execute("SET allowed_paths = ?", [list(allowed_paths)])
                con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing and upgrade an older schema in place, in one transaction."""
    con.execute(TABLES["schema_meta"])
    meta = dict(con.execute("SELECT key, value FROM schema_meta").fetchall())
    version = int(meta["version"]) if "version" in meta else None
    if version is not None and version > SCHEMA_VERSION:
        raise LoadError(f"database schema version {version} is newer than this "
                        f"policywatch ({SCHEMA_VERSION}); upgrade policywatch")
    if version == SCHEMA_VERSION and meta.get("ddl_hash") == ddl_hash():
        return  # the usual case: nothing to do, so opening stays cheap
    con.create_function("pw_claim_key", claim_key_for, ["VARCHAR"], "VARCHAR",
                        side_effects=False)
    con.execute("BEGIN TRANSACTION")
    try:
        for target in sorted(MIGRATIONS):
            if version is not None and version < target:
                for statement in MIGRATIONS[target]:
                    con.execute(statement)
        for statement in (*TABLES.values(), *VIEWS.values(), *INDEXES):
            con.execute(statement)
        con.execute("INSERT OR REPLACE INTO schema_meta VALUES ('version', ?), ('ddl_hash', ?)",
                    [str(SCHEMA_VERSION), ddl_hash()])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise LoadError(f"cannot create or upgrade the schema: {write_problem(exc)}"
                        ) from exc


# One writer per process: DuckDB connections in one process share the database, and two
# writers in parallel threads hit write-write conflicts instead of waiting for each other.
_WRITE_LOCK = threading.RLock()


@contextmanager
def open_for_write(path: Path | str,
                   wait_s: float = DEFAULT_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writer connection with the schema in place."""
    with _WRITE_LOCK, connect(path, wait_s=wait_s) as con:
        ensure_schema(con)
        yield con


_HELD_RUN_LOCKS: dict[Path, int] = {}  # held by this process: taking one again is a no-op


@contextmanager
def run_lock(path: Path | str, wait_s: float = 60.0) -> Iterator[None]:
    """Hold `<database>.lock` for a whole run: a second run waits up to `wait_s`, then gives
    up with DatabaseBusy. The OS drops the lock when the process dies, even on kill -9.

    Re-entrant within a process, so the CLI can take it before Prefect starts (a busy
    database is then one line, not a failed flow run) and the flow can take it again."""
    # beside the real file: a run through a symlink must take the same lock
    real = Path(path).resolve()
    lock_path = real.with_name(f"{real.name}.lock")
    if _HELD_RUN_LOCKS.get(lock_path):
        _HELD_RUN_LOCKS[lock_path] += 1
        try:
            yield
        finally:
            _HELD_RUN_LOCKS[lock_path] -= 1
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise LoadError(f"{path}: cannot use this database path: "
                        f"{exc.strerror or exc}") from exc
    deadline = time.monotonic() + wait_s
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    holder = _lock_holder(lock_path)
                    who = (f" (pid {holder[0]}: {holder[1]})" if holder else "")
                    raise DatabaseBusy(f"{path}: another policywatch run{who} is using this "
                                       f"database; waited {wait_s:g} s") from exc
                time.sleep(0.25)
        # who holds it, for the message another process gives while it waits
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n{_command_line()}\n")
        handle.flush()
        _HELD_RUN_LOCKS[lock_path] = 1
        try:
            yield
        finally:
            _HELD_RUN_LOCKS.pop(lock_path, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


def fault_point(name: str) -> None:
    """Crash-test hook: with POLICYWATCH_FAULT=<name> the process kills itself here, as
    `kill -9` would. Inert otherwise."""
    if os.environ.get("POLICYWATCH_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _open_problem(exc: BaseException) -> str:
    """Why a file would not open, in one line, with what to do when it is damaged."""
    text = _first_line(exc)
    low = text.lower()
    if any(k in low for k in ("enough bytes", "corrupt", "checksum", "not a valid duckdb",
                              "invalid")):
        return f"{text}; the file is truncated or damaged: restore it from a backup, or " \
               "give a new path"
    return write_problem(exc)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def query(path: Path | str, sql: str, params: Sequence[Any] = (),
          wait_s: float = 5.0, *, locked: bool = False
          ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL on a read-only connection: (column names, rows). `locked` for the user's
    own SQL: one statement, on a connection that reaches nothing but the database."""
    if locked:
        one_statement(sql)
    with connect(path, read_only=True, wait_s=wait_s, locked=locked) as con:
        try:
            cursor = con.execute(sql, list(params))
        except duckdb.Error as exc:
            raise LoadError(str(exc).splitlines()[0]) from exc
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()


def one_statement(sql: str) -> None:
    """A `LoadError` unless `sql` is exactly one statement (its error if it is no SQL)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise LoadError(_first_line(exc)) from exc
    if len(statements) != 1:
        raise LoadError(f"give one SQL statement at a time (got {len(statements)})")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, quietly: after a failed write (a full disk, an I/O error) DuckDB may have
    ended the transaction itself, and "cannot rollback - no transaction is active" would
    hide the real error."""
    with suppress(duckdb.Error):
        con.execute("ROLLBACK")


def write_problem(exc: BaseException) -> str:
    """One line on why a write failed, with what to do for the usual causes."""
    text = _first_line(exc)
    low = text.lower()
    if any(k in low for k in ("no space left", "disk full", "enospc", "file too large")):
        return (f"{text}; the disk is full (or a file size limit was reached): free space "
                "and run again (nothing was stored)")
    if "permission denied" in low or "read-only file system" in low:
        return f"{text}; check the database file's and folder's permissions"
    if "corrupt" in low or "checksum" in low or ("invalid" in low and "file" in low):
        return f"{text}; the database file looks damaged: restore it from a backup"
    return text
