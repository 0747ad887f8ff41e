"""The `policywatch` command: thin commands, each calling one flow or one query.

Errors become one human line on stderr and an exit code from `EXIT_CODES`; never a
traceback for something the user can fix.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

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

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(exc: BaseException) -> int:
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return 1


def _quiet_prefect(verbose: bool) -> None:
    # Prefect reads these when first imported: keep its console chatter out of the summary
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # an offline tool: no usage reports from the local Prefect server, and no notice about them
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # with no API URL Prefect starts a local server; on a busy 2-core machine 20 s is too short
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _fail(exc: BaseException) -> None:
    click.echo(f"policywatch: error: {exc}", err=True)
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
    from tasks.load import query

    click.echo(f"Run {summary.run_id}: {summary.status}")
    click.echo(f"  new articles  {summary.articles_new}")
    click.echo(f"  new comments  {summary.comments_new}")
    click.echo(f"  new claims    {summary.claims_new}")
    click.echo(f"  new stances   {summary.stances_new}")
    click.echo(f"  alerts sent   {summary.alerts_sent}"
               + (f" ({summary.alerts_failed} failed)" if summary.alerts_failed else ""))
    click.echo(f"  failures      {len(summary.failures)}")
    for reject in summary.failures[:20]:
        click.echo(f"    [{reject.source}/{reject.stage}] {reject.url}: {reject.reason}")
    _, tracked = query(
        db, "SELECT DISTINCT ce.entity, c.speaker, c.cue, c.content, a.source "
            "FROM claims c JOIN claim_entities ce USING (claim_id) "
            "JOIN articles a ON a.article_id = c.article_id WHERE c.run_id = ? "
            "ORDER BY 1, 5, 2",
        [summary.run_id])
    if summary.report_path:
        click.echo(f"  briefing      {summary.report_path}")
    new = [r for r in tracked if r[0] in tracked_names]
    click.echo("")
    click.echo(f"New claims about tracked entities: {len(new)}")
    entity = None
    for name, speaker, cue, content, source in new:
        if name != entity:
            click.echo(f"  {name}")
            entity = name
        click.echo(f"    - {speaker or '(unattributed)'} {cue or ''}: "
                   f"{_clip(content, 110)}  [{source}]")


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
              wait_s: float = 60.0) -> Any:
    from schemas.config import load_config
    from tasks.load import open_for_write, run_lock

    # validate the config and the database before Prefect starts, so those errors are quick
    config = load_config(config_path)
    target = db or config.database
    with run_lock(target, wait_s=wait_s):
        with open_for_write(target, wait_s=wait_s):
            pass
        from flows.nightly import nightly

        tracked = {e.name for e in config.tracked_entities}
        with _live_progress():
            summary = nightly(str(config_path), str(target) if db else None,
                              list(extra_channels), lock_wait_s=wait_s)
        return target, tracked, summary


@main.command()
@click.option("--config", "config_path", required=True,
              type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="The DuckDB file (default: the config's `database`).")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for another run on the same database to finish.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def run(config_path: Path, db: Path | None, wait_s: float, verbose: bool) -> None:
    """One run of the nightly flow for a config."""
    _quiet_prefect(verbose)
    target, tracked, summary = _run_flow(config_path, db, wait_s=wait_s)
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
        click.echo(f"Serving the demo site at {base}/ ; database {db}")
        target, tracked, summary = _run_flow(config_path, db, [f"json://{base[7:]}/hook"])
        _print_run(target, summary, tracked)
        click.echo("")
        click.echo(f"Alerts received by the demo webhook ({base}/hook): "
                   f"{len(receiver.messages)}")
        for message in receiver.messages[:50]:
            click.echo(f"  - {_clip(str(message.get('title', '')), 120)}")


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
    """"7d", "36h", "90m" or "2w" as a time span."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise click.BadParameter(f"{text!r}: use a number and m, h, d or w, such as 7d")
    return timedelta(**{units[unit]: float(number)})


@main.command()
@click.option("--entity", required=True, help="A configured entity's canonical name.")
@click.option("--since", "since", default="7d", show_default=True,
              help="How far back: 36h, 7d, 2w.")
@click.option("--db", type=click.Path(path_type=Path), default=Path(DEMO_DB), show_default=True,
              help="The DuckDB file to read.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@handles_errors
def claims(entity: str, since: str, db: Path, fmt: str) -> None:
    """Claims about one entity, newest first."""
    from tasks.load import query

    cutoff = datetime.now(UTC) - parse_since(since)
    columns, rows = query(db, "SELECT claimed_at, speaker, cue, content, source, url "
                              "FROM entity_timeline WHERE entity = ? AND claimed_at >= ? "
                              "ORDER BY claimed_at DESC", [entity, cutoff])
    click.echo(format_rows(columns, rows, fmt))


@main.command()
@click.argument("query_text", metavar="QUERY")
@click.option("--db", type=click.Path(path_type=Path), default=Path(DEMO_DB), show_default=True,
              help="The DuckDB file to read.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write (required for parquet).")
@handles_errors
def sql(query_text: str, db: Path, fmt: str, out: Path | None) -> None:
    """Ad-hoc SQL over the database, on a read-only connection."""
    from tasks.load import export_parquet, query

    if fmt == "parquet":
        if out is None:
            raise click.UsageError("--format parquet needs --out FILE")
        count = export_parquet(db, query_text, out)
        click.echo(f"wrote {count} rows to {out}")
        return
    columns, rows = query(db, query_text)
    text = format_rows(columns, rows, fmt)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


# -- report and reprocess ------------------------------------------------------------------


@main.command()
@click.option("--since", "since", default="7d", show_default=True,
              help="The window the charts cover: 36h, 7d, 2w.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("policywatch-report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help=f"The DuckDB file to read (default: the config's, else {DEMO_DB}).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A config: report on its tracked entities (default: every entity).")
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
        config = load_config(config_path)
        tracked = [e.name for e in config.tracked_entities] or None
        db = db or config.database
    path = write_report(db or Path(DEMO_DB), out, since=datetime.now(UTC) - parse_since(since),
                        run_id=run_id, tracked=tracked)
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

    from schemas.config import load_config
    from tasks.load import run_lock
    from tasks.reprocess import reprocess as reprocess_archive

    config = load_config(config_path)
    target = db or config.database
    with run_lock(target, wait_s=60):
        counts = reprocess_archive(target, config, extract=not no_extract, source=source)
    values = asdict(counts)
    for name in dict.fromkeys(("pages", "failed", *values)):  # the pages first, as read
        click.echo(f"  {name.replace('_', ' '):18} {values[name]}")


# -- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The YAML config file.")
@click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs.")
@handles_errors
def serve(config_path: Path, verbose: bool) -> None:
    """Keep running the nightly flow on the config's cron schedule."""
    _quiet_prefect(verbose)
    from policywatch.server import serve_nightly
    from schemas.config import load_config

    config = load_config(config_path)
    serve_nightly(config_path.resolve(), config.schedule, config.timezone, echo=click.echo)


if __name__ == "__main__":
    main()
