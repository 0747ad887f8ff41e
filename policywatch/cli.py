"""The `policywatch` command: thin commands, each calling one flow or one query.

Errors become one human line on stderr and an exit code from `EXIT_CODES`; never a
traceback for something the user can fix.
"""

from __future__ import annotations

import base64
import csv
import difflib
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from rich.console import Console

from schemas.errors import (
    ConfigError,
    DatabaseBusy,
    FetchError,
    LoadError,
    NotifyError,
    ParseError,
    PolicywatchError,
)

# most specific first; 0 is success, 1 an unexpected error
EXIT_CODES: dict[type[BaseException], int] = {
    ConfigError: 2,
    DatabaseBusy: 3,
    LoadError: 2,
    FetchError: 4,
    ParseError: 5,
    NotifyError: 6,
    PolicywatchError: 1,
}
DEMO_DB = "policywatch-demo.duckdb"
# The words every count of new claims uses (CLI, briefing, artifact, digest): a claim is
# counted once however many outlets carry it, and once under each entity it is about, so
# the per-entity counts may add up to more than the total.
COUNT_WORDS = "New claims about tracked entities"

F = TypeVar("F", bound=Callable[..., Any])
DB_HELP = f"The DuckDB file to read (default: the config's, else {DEMO_DB})."
CONFIG_DB_HELP = "A config: read its `database`."


def exit_code_for(exc: BaseException) -> int:
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return 1


class CliError(click.ClickException):
    """Something wrong on the command line (an option's value, an --out path): one line on
    stderr, exit 2, like the other errors the user can fix."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        echo(f"policywatch: error: {self.format_message()}", err=True)


def _quiet_prefect(verbose: bool) -> None:
    # Prefect reads these when first imported: keep its console chatter out of the summary
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        _quiet_dask()
    # an offline tool: no usage reports from the local Prefect server, and no notice about them
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # with no API URL Prefect starts a local server; on a busy 2-core machine 20 s is too short
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _quiet_dask() -> None:
    """Only warnings and errors from Dask's `distributed` (`runner: {kind: dask}`): at INFO
    its scheduler, nanny and workers log every start, connection and stop."""
    if "DASK_LOGGING__DISTRIBUTED" in os.environ:  # the user's own choice
        return
    # `distributed` sets its loggers' levels from Dask's config when first imported, in this
    # process and in each worker process (they inherit the environment)
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
    if "dask" in sys.modules:  # already imported: its config has read the environment
        import dask.config

        dask.config.set({"logging.distributed": "warning"})
    if "distributed" in sys.modules:  # already imported: its loggers' levels are set
        logging.getLogger("distributed").setLevel(logging.WARNING)


# C0 and C1 control characters but tab and newline, and DEL: a feed's title or a page's
# address may carry terminal escape codes (colours, cursor moves, window titles)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text made safe for a terminal: control characters replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", str(text))


def echo(text: object = "", *, err: bool = False) -> None:
    """click.echo of `printable(text)`: what the web supplied never drives the terminal."""
    click.echo(printable(text), err=err)


def _fail(exc: BaseException) -> None:
    echo(f"policywatch: error: {exc}", err=True)
    sys.exit(exit_code_for(exc))


def handles_errors(func: F) -> F:
    """Turn policywatch errors into one line and an exit code."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PolicywatchError as exc:
            _fail(exc)
        except Exception as exc:  # Prefect may wrap our errors; unwrap them
            inner = _policywatch_cause(exc)
            if inner is None and "Timed out while attempting to connect to ephemeral " \
                    "Prefect API server" in str(exc):
                from policywatch.server import ServerUnavailable, way_out

                inner = ServerUnavailable(way_out())
            if inner is None:
                raise
            _fail(inner)

    return wrapper  # type: ignore[return-value]


def _policywatch_cause(exc: BaseException) -> PolicywatchError | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, PolicywatchError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policywatch")
def main() -> None:
    """policywatch: watch tech-policy news for claims about the entities you track."""


# -- run and demo --------------------------------------------------------------------------


def _print_run(db: Path, summary: Any, tracked_names: set[str]) -> None:
    from tasks.store import query

    echo(f"Run {summary.run_id}: {summary.status}")
    echo(f"  new articles  {summary.articles_new}")
    echo(f"  new comments  {summary.comments_new}")
    echo(f"  new claims    {summary.claims_new}")
    echo(f"  new stances   {summary.stances_new}")
    _, modes = query(db, "SELECT mode, count(DISTINCT channel) FROM alerts WHERE run_id = ? "
                         "GROUP BY mode", [summary.run_id])
    folded = dict(modes)
    note = ""
    if folded.get("summary"):
        digests = folded["summary"]
        note = (f" (one alert per claim and entity, in {digests} digest"
                f"{'s' if digests != 1 else ''}: a first run; alerts.first_run)")
    elif folded.get("muted"):
        note = " (a first run: alerts recorded, not sent; alerts.first_run: none)"
    echo(f"  alerts sent   {summary.alerts_sent}"
               + (f" ({summary.alerts_failed} failed)" if summary.alerts_failed else "")
               + note)
    for night in summary.sources:  # what each source listed, and what waits (max_items)
        over = " (over max_items: raise it to fetch more a night)" \
            if night.deferred or night.expired else ""
        echo(f"  {night.source}: {night.found} new item{'' if night.found == 1 else 's'} "
             f"found, {night.fetched} fetched, {night.deferred} deferred, "
             f"{night.expired} expired{over}")
    by = getattr(summary, "extracted_by", None)
    if by:  # which opinion of the body chain gave the new or changed articles' bodies
        echo("  bodies by     " + ", ".join(f"{k} {v}" for k, v in by.items()))
    echo(f"  failures      {len(summary.failures)}")
    for reject in summary.failures[:20]:
        echo(f"    [{reject.source}/{reject.stage}] {reject.url}: {reject.reason}")
    _, rows = query(
        db, "SELECT ce.entity, c.claim_key, any_value(c.speaker ORDER BY c.speaker NULLS LAST), "
            "any_value(c.cue ORDER BY c.speaker NULLS LAST), min(c.content), "
            "string_agg(DISTINCT a.source, ', ' ORDER BY a.source) "
            "FROM claims c JOIN claim_entities ce USING (claim_id) "
            "JOIN articles a ON a.article_id = c.article_id WHERE c.run_id = ? "
            "AND c.quote_kind <> 'event' GROUP BY ALL ORDER BY 1, 6, 3 NULLS LAST, 5",
        [summary.run_id])
    _, events = query(
        db, "SELECT count(DISTINCT c.claim_key) FROM claims c JOIN claim_entities ce "
            "USING (claim_id) WHERE c.run_id = ? AND c.quote_kind = 'event' "
            "AND ce.entity IN (SELECT unnest(?::VARCHAR[]))",
        [summary.run_id, sorted(tracked_names)])
    if summary.report_path:
        echo(f"  briefing      {summary.report_path}")
    new = [r for r in rows if r[0] in tracked_names]
    echo("")
    echo(f"{COUNT_WORDS}: {len({r[1] for r in new})}"
         + (f" (and {events[0][0]} event{'' if events[0][0] == 1 else 's'}, such as a "
            "launch or a signing, not alerted: alerts.rules[].include_events)"
            if events[0][0] else ""))
    entity = None
    for name, _, speaker, cue, content, sources in new:
        if name != entity:
            count = sum(1 for r in new if r[0] == name)
            echo(f"  {name}: {count} claim{'s' if count != 1 else ''}")
            entity = name
        echo(f"    - {speaker or '(unattributed)'} {cue or ''}: "
                   f"{_clip(content, 110)}  [{sources}]")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def _live_progress() -> Iterator[None]:
    """A spinner with the run's current stage and each source as it finishes (terminals only;
    piped output gets the summary alone)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    logger = logging.getLogger("policywatch.progress")
    with console.status("starting Prefect…") as status:

        class Show(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if ":" in message.split()[0]:  # a source finished: keep its line
                    console.print(f"  [green]✓[/] {message}")
                else:
                    status.update(message + "…")

        handler = Show()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # shown here, not again by Prefect's console handler
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.propagate = True


def _run_flow(config_path: Path, db: Path | None, extra_channels: Sequence[str] = (),
              wait_s: float = 60.0, **night: Any) -> Any:
    from schemas.config import load_config

    # validate the config before Prefect starts, so its errors are quick: the file first,
    # then its channels (apprise comes with tasks.alerts)
    config = load_config(config_path)
    from tasks.alerts import channel_problem

    config = load_config(config_path, channel_problem)
    from policywatch.server import early_local_server, prefect_api, stop_server

    # a local Prefect server, when one is needed, boots while Prefect and the flow import
    # and the database is checked (a busy database is then one line, without waiting for it)
    launched = early_local_server()
    try:
        from tasks.store import open_for_write, run_lock

        target = db or config.database
        with run_lock(target, wait_s=wait_s):
            with open_for_write(target, wait_s=wait_s):
                pass
            from flows.nightly import nightly

            tracked = {e.name for e in config.tracked_entities}
            with _live_progress(), prefect_api(launched):
                summary = nightly(str(config_path.resolve()), str(target) if db else None,
                                  list(extra_channels), lock_wait_s=wait_s, **night)
            return target, tracked, summary
    finally:
        if launched:  # stopped already, unless the run never got to use it
            stop_server(launched[0])


@main.command()
@click.option("--config", "config_path", required=True,
              type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="The DuckDB file (default: the config's `database`).")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for another run on the same database to finish.")
@click.option("--backfill", is_flag=True,
              help="Send one digest per channel instead of an alert per claim, as on a first "
                   "run (alerts.first_run).")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def run(config_path: Path, db: Path | None, wait_s: float, backfill: bool,
        verbose: bool) -> None:
    """One run of the nightly flow for a config."""
    _quiet_prefect(verbose)
    target, tracked, summary = _run_flow(config_path, db, wait_s=wait_s, backfill=backfill)
    _print_run(target, summary, tracked)


@main.command()
@click.option("--config", "config_path", required=True,
              type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("--source", "source_name", required=True, help="The source whose backlog to fetch.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Pages to fetch (default: the whole backlog, plus the source's max_items).")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="The DuckDB file (default: the config's `database`).")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for another run on the same database to finish.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def backfill(config_path: Path, source_name: str, limit: int | None, db: Path | None,
             wait_s: float, verbose: bool) -> None:
    """Fetch a source's backlog now: one night for that source with a larger budget.

    Its alerts come as one digest per channel, as on a first run (alerts.first_run)."""
    from schemas.config import load_config
    from tasks.store import query

    config = load_config(config_path)
    names = [s.name for s in config.sources]
    if source_name not in names:
        raise CliError(f"--source {source_name}: no such source in {config_path} "
                       f"(sources: {', '.join(names)})")
    if limit is None:
        target = db or config.database
        # a database no run of this version wrote yet has no backlog table
        waiting = query(target, "SELECT count(*) FROM duckdb_tables() "
                                "WHERE table_name = 'backlog'", wait_s=wait_s)[1][0][0] \
            if target.exists() else 0
        if waiting:
            waiting = query(target, "SELECT count(*) FROM backlog WHERE source = ? AND "
                                    "status = 'waiting'", [source_name], wait_s=wait_s)[1][0][0]
        source = next(s for s in config.sources if s.name == source_name)
        limit = int(waiting) + source.max_items
    _quiet_prefect(verbose)
    target, tracked, summary = _run_flow(config_path, db, wait_s=wait_s, backfill=True,
                                         only_source=source_name, budget=limit)
    _print_run(target, summary, tracked)


@main.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path(DEMO_DB), show_default=True,
              help="The DuckDB file to write.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def demo(db: Path, verbose: bool) -> None:
    """One full run on the bundled sample site, served on a loopback port."""
    _quiet_prefect(verbose)
    from policywatch.demo import serve_demo_site, write_demo_config

    with tempfile.TemporaryDirectory() as folder, serve_demo_site() as (base, receiver):
        config_path = write_demo_config(base, Path(folder))
        echo(f"Serving the demo site at {base}/ ; database {db}")
        target, tracked, summary = _run_flow(config_path, db, [f"json://{base[7:]}/hook"])
        _print_run(target, summary, tracked)
        echo("")
        echo(f"Alerts received by the demo webhook ({base}/hook): "
                   f"{len(receiver.messages)}")
        for message in receiver.messages[:50]:
            echo(f"  - {_clip(str(message.get('title', '')), 120)}")
            if str(message.get("title", "")).startswith("policywatch digest:"):
                # the first run's digest: what the channel was told, as it was told
                for line in str(message.get("message", "")).splitlines():
                    echo(f"      {_clip(line, 120)}" if line else "")


# -- sql -----------------------------------------------------------------------------------


def iso_duration(span: timedelta) -> str:
    """A time span in ISO 8601: "P1DT2H3M4.5S", "PT0S"; a negative one with a leading "-"."""
    sign, span = ("-", -span) if span < timedelta(0) else ("", span)
    minutes, seconds = divmod(span.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if span.microseconds:
        clock += f"{seconds}.{span.microseconds:06d}".rstrip("0") + "S"
    elif seconds or not (span.days or clock):
        clock += f"{seconds}S"
    return f"{sign}P{f'{span.days}D' if span.days else ''}{'T' + clock if clock else ''}"


def _json_value(value: Any) -> Any:
    """Any value DuckDB returns as something `json.dumps` writes as valid JSON."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN and infinity are not JSON
    if isinstance(value, datetime | date | time):  # an aware one keeps its offset
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):  # BLOB: base64 (RFC 4648)
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):  # STRUCT and MAP; JSON keys are strings
        return {_json_key(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):  # LIST, ARRAY
        return [_json_value(item) for item in value]
    return str(value)  # UUID and anything else


def _json_key(key: Any) -> str:
    key = _json_value(key)
    return key if isinstance(key, str) else json.dumps(key, ensure_ascii=False)


def _cell(value: Any) -> Any:
    """A value for the csv and table formats."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict | list | tuple):  # STRUCT, MAP, LIST, ARRAY: compact JSON
        return json.dumps(_json_value(value), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, float | None):
        return value
    return _json_value(value)


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [dict(zip(columns, map(_json_value, row), strict=True)) for row in rows],
            ensure_ascii=False, indent=2, allow_nan=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    text = [[("" if v is None else str(_cell(v))).replace("\n", " ") for v in row]
            for row in rows]
    widths = [min(60, max([len(c), *(len(r[i]) for r in text)])) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(_clip(v, w).ljust(w) for v, w in zip(r, widths, strict=True))
              for r in text]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def parse_since(text: str) -> timedelta:
    """"7d", "36h", "90m" or "2w" as a time span; a `CliError` naming --since if it is not
    one, or is beyond what a date can hold."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise CliError(f"--since {text!r}: use a number and m, h, d or w, such as 7d")
    try:
        return timedelta(**{units[unit]: float(number)})
    except OverflowError:
        raise CliError(f"--since {text!r}: too far back") from None


def since_cutoff(text: str, now: datetime | None = None) -> datetime:
    """The moment `--since TEXT` reaches back to from `now`."""
    now = now or datetime.now(UTC)
    span = parse_since(text)
    try:
        return now - span
    except OverflowError:
        limit = (now - datetime.min.replace(tzinfo=UTC)).days
        raise CliError(f"--since {text!r}: too far back; at most {limit}d") from None


def _check_out(out: Path, *, make_folders: bool = False) -> None:
    """A `CliError` naming --out, before any work, if `out` plainly cannot be written: a
    folder, a missing folder (unless the command makes it), or no permission."""
    if out.is_dir():
        raise CliError(f"--out {out}: is a folder; give a file name")
    folder = out.parent
    if make_folders:  # the nearest folder that exists is where one is made
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise CliError(f"--out {out}: no such folder {str(folder)!r}")
    if not folder.is_dir():
        raise CliError(f"--out {out}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (
            out.exists() and not os.access(out, os.W_OK)):
        raise CliError(f"--out {out}: permission denied")


def _cannot_write(out: Path, exc: OSError) -> CliError:
    return CliError(f"--out {out}: cannot write: {exc.strerror or exc}")


@main.command()
@click.option("--entity", required=True, help="A configured entity's canonical name.")
@click.option("--since", "since", default="7d", show_default=True,
              help="How far back: 36h, 7d, 2w.")
@click.option("--db", type=click.Path(path_type=Path), default=None, help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=CONFIG_DB_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@handles_errors
def claims(entity: str, since: str, db: Path | None, config_path: Path | None,
           fmt: str) -> None:
    """Claims about one entity, newest first."""
    from tasks.store import query

    cutoff = since_cutoff(since)
    db = _database(db, config_path)
    columns, rows = query(db, "SELECT claimed_at, speaker, cue, content, source, url "
                              "FROM entity_timeline WHERE entity = ? AND claimed_at >= ? "
                              "ORDER BY claimed_at DESC", [entity, cutoff])
    if not rows:
        stored = [r[0] for r in query(db, "SELECT DISTINCT entity FROM claim_entities")[1]]
        if entity not in stored:
            raise CliError(_unknown_entity(entity, stored))
    echo(format_rows(columns, rows, fmt))


def _database(db: Path | None, config_path: Path | None) -> Path:
    """The database a reading command opens: --db, else the config's, else the demo's,
    which it then names on stderr (so a forgotten --config is not a silent empty answer)."""
    if db is not None:
        return db
    if config_path is not None:
        from schemas.config import load_config

        return load_config(config_path, check_environment=False).database
    click.echo(f"policywatch: reading {DEMO_DB} (the demo's database; --db FILE or "
               "--config FILE for another)", err=True)
    return Path(DEMO_DB)


def _unknown_entity(entity: str, stored: Sequence[str]) -> str:
    """The message for an entity no stored claim names, with the closest stored names."""
    message = f"--entity {entity!r}: unknown entity (no stored claim names it)"
    by_key = {name.casefold(): name for name in sorted(stored, reverse=True)}
    close = difflib.get_close_matches(entity.casefold(), by_key, n=3, cutoff=0.6)
    if close:
        return message + "; did you mean " + ", ".join(repr(by_key[c]) for c in close) + "?"
    if not stored:
        return message + "; the database has no claims yet"
    return message + "; list them with: policywatch sql \"SELECT DISTINCT entity FROM " \
                     "claim_entities ORDER BY 1\""


@main.command()
@click.argument("query_text", metavar="QUERY")
@click.option("--db", type=click.Path(path_type=Path), default=None, help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=CONFIG_DB_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write (required for parquet).")
@handles_errors
def sql(query_text: str, db: Path | None, config_path: Path | None, fmt: str,
        out: Path | None) -> None:
    """Ad-hoc SQL over the database, on a read-only connection."""
    from tasks.store import export_parquet, query

    db = _database(db, config_path)
    _refuse_file_writes(query_text)
    if fmt == "parquet":
        if out is None:
            raise click.UsageError("--format parquet needs --out FILE")
        _check_out(out)
        count = export_parquet(db, query_text, out)
        click.echo(f"wrote {count} rows to {out}")
        return
    if out is not None:
        _check_out(out)
    columns, rows = query(db, query_text, locked=True)
    text = format_rows(columns, rows, fmt)
    if out is not None:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise _cannot_write(out, exc) from None
    else:
        echo(text)


def _refuse_file_writes(query_text: str) -> None:
    """The read-only connection refuses writes to the database, not to files: refuse the
    statements that write files (COPY ... TO, EXPORT DATABASE), as DuckDB parses them."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query_text)
    except duckdb.Error:
        return  # not SQL: running it gives DuckDB's own one-line error
    writers = {duckdb.StatementType.COPY, duckdb.StatementType.COPY_DATABASE,
               duckdb.StatementType.EXPORT}
    if any(statement.type in writers for statement in statements):
        raise CliError("sql is read-only: COPY and EXPORT DATABASE are refused; to save a "
                       "result use --out FILE (--format csv, json or parquet)")


# -- report and reprocess ------------------------------------------------------------------


@main.command()
@click.option("--since", "since", default="7d", show_default=True,
              help="The window the charts cover: 36h, 7d, 2w.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("policywatch-report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--db", type=click.Path(path_type=Path), default=None, help=DB_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A config: its database, and report on its tracked entities (default: "
                   "every entity).")
@click.option("--run", "run_id", default=None,
              help="The run whose new claims are listed (default: the latest completed).")
@handles_errors
def report(since: str, out: Path, db: Path | None, config_path: Path | None,
           run_id: str | None) -> None:
    """Write the briefing page: new claims per tracked entity, charts, stance, failures."""
    from schemas.config import load_config
    from tasks.report import write_report

    tracked = None
    if config_path is not None:
        config = load_config(config_path, check_environment=False)
        tracked = [e.name for e in config.tracked_entities] or None
    db = _database(db, config_path)
    cutoff = since_cutoff(since)
    _check_out(out, make_folders=True)  # write_report makes missing folders
    try:
        path = write_report(db, out, since=cutoff, run_id=run_id, tracked=tracked)
    except OSError as exc:
        raise _cannot_write(out, exc) from None
    click.echo(f"wrote {path}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML config file.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="The DuckDB file (default: the config's `database`).")
@click.option("--source", default=None, help="Only this source's pages.")
@click.option("--no-extract", is_flag=True,
              help="Re-parse articles and comments only; keep claims and stances.")
@handles_errors
def reprocess(config_path: Path, db: Path | None, source: str | None, no_extract: bool) -> None:
    """Re-parse and re-extract every archived page with the current code, without fetching.

    Ids stay stable: rows are updated in place. No alerts are raised."""
    from dataclasses import asdict

    from flows.reprocess import reprocess as reprocess_archive
    from schemas.config import load_config
    from tasks.store import read_archived_sources, run_lock

    config = load_config(config_path)
    target = db or config.database
    if not Path(target).exists():  # before the lock, which would leave `<target>.lock`
        raise LoadError(f"{target}: no such database")
    if source is not None:
        known = [s.name for s in config.sources]  # and those archived, gone from the config
        known += [name for name in read_archived_sources(target) if name not in known]
        if source not in known:
            raise CliError(f"--source {source!r}: no such source; known: {', '.join(known)}")
    with run_lock(target, wait_s=60):
        counts = reprocess_archive(target, config, extract=not no_extract, source=source)
    values = asdict(counts)
    for name in dict.fromkeys(("pages", "failed", *values)):  # the pages first, as read
        click.echo(f"  {name.replace('_', ' '):18} {values[name]}")


# -- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML config file.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The port of the local Prefect server (UI and API; default: a free one).")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def serve(config_path: Path, port: int | None, verbose: bool) -> None:
    """Keep running the nightly flow on the config's cron schedule.

    Starts a local Prefect server (it stops with this command) unless PREFECT_API_URL
    names one. Ctrl-C or SIGTERM stops."""
    _quiet_prefect(verbose)
    from policywatch.server import serve_nightly
    from schemas.config import load_config

    config = load_config(config_path)
    serve_nightly(config_path.resolve(), config.schedule, config.timezone, echo=echo,
                  port=port)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML config file (its absolute path goes into the deployment).")
@click.option("--pool", default="policywatch", show_default=True,
              help="The process work pool to deploy to (created if missing).")
@click.option("--name", default=None,
              help="The deployment's name (default: the config file's name).")
@handles_errors
def deploy(config_path: Path, pool: str, name: str | None) -> None:
    """Register the nightly flow for a config with a Prefect server, on its schedule.

    Uses PREFECT_API_URL, else a server running on this machine (`policywatch serve`,
    `prefect server start`). A worker runs it: prefect worker start --pool NAME."""
    _quiet_prefect(False)
    from schemas.config import load_config

    load_config(config_path, check_environment=False)  # a bad config: one line, no Prefect
    from tasks.alerts import channel_problem

    load_config(config_path, channel_problem, check_environment=False)
    if not os.environ.get("PREFECT_API_URL"):
        from policywatch.server import running_server

        api = running_server()
        if api:
            os.environ["PREFECT_API_URL"] = api
    from policywatch.deploy import deploy_nightly

    deploy_nightly(config_path, pool, name, echo=echo)


if __name__ == "__main__":
    main()
