"""No flood on the first night: a first run (and `run --backfill`) sends one digest per
channel, as `alerts.first_run` says; an unset `${VAR}` in a channel URL is refused at load.

Real runs of the nightly flow over the demo site, its real webhook receiver, a real DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from policywatch.cli import main
from policywatch.demo import Receiver, serve_demo_site, write_demo_config
from schemas.config import parse_config
from schemas.errors import ConfigError
from tasks.alerts import format_summary
from tasks.store import query


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- ${VAR} in channel URLs ----------------------------------------------------------------

CONFIG = """\
sources:
  - name: a
    urls: [https://a.example/x]
entities:
  - name: Huawei
    tracked: true
alerts:
  channels:
    - json://127.0.0.1:9/hook
    - "slack://${PW_TEST_TOKEN_A}/${PW_TEST_TOKEN_B}/C"
"""


def test_an_unset_variable_in_a_channel_is_refused_at_load_naming_it_and_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PW_TEST_TOKEN_A", raising=False)
    monkeypatch.setenv("PW_TEST_TOKEN_B", "b")
    config = tmp_path / "pw.yaml"
    config.write_text(CONFIG)
    code, out, err = _run("run", "--config", str(config), "--db", str(tmp_path / "x.duckdb"))
    assert (code, out) == (2, "")
    assert err == (f"policywatch: error: {config}: alerts.channels[1] (line 10): "
                   "${PW_TEST_TOKEN_A} is not set in the environment\n")
    assert not (tmp_path / "x.duckdb").exists()
    # a rule's own channels are checked too; once set, the config loads
    rule = CONFIG.replace('    - "slack', '  rules:\n    - name: r\n      channels:\n'
                                        '        - "slack')
    with pytest.raises(ConfigError, match=r"alerts\.rules\[0\]\.channels\[0\] \(line 13\)"):
        parse_config(rule, environ={"PW_TEST_TOKEN_B": "b"})
    assert parse_config(CONFIG, environ={"PW_TEST_TOKEN_A": "a", "PW_TEST_TOKEN_B": "b"})
    assert parse_config(CONFIG)  # without an environment to check (sql, claims, report)


# -- the first run's digest ----------------------------------------------------------------


def test_format_summary_counts_claims_once_and_per_entity() -> None:
    from schemas.models import AlertMessage

    def alert(claim: str, entity: str, outlets: int = 1) -> AlertMessage:
        return AlertMessage(alert_id=claim + entity, claim_id=claim, entity=entity,
                            channel="json://h/x", speaker="Ann", cue="said",
                            content=f"claim {claim}", sentence="s", article_title="t",
                            source="wire", url=f"http://h/{claim}", published_at=None,
                            outlets=tuple(f"o{i}" for i in range(outlets)), mode="summary")

    alerts = [alert("c1", "Huawei"), alert("c1", "Nvidia"), alert("c2", "Huawei", 3),
              *(alert(f"x{i}", "Nvidia") for i in range(12))]
    title, body = format_summary(alerts, "file:///r.html", top=10)
    assert title == "policywatch digest: 14 claims about 2 tracked entities"
    assert "  Nvidia: 13\n  Huawei: 2\n" in body
    assert body.count("\n- ") == 10 and "Top 10 claims:" in body
    assert body.index("claim c2") < body.index("claim c1")  # most-carried first
    assert "(and 2 more outlets)" in body
    assert body.endswith("Briefing page: file:///r.html")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, Receiver, str]]:
    with serve_demo_site(port=None) as (base, receiver):
        yield write_demo_config(base, tmp_path), receiver, base


def _config(path: Path, base: str, *, sources: tuple[str, ...] | None = None,
            **alerts: Any) -> Path:
    data = yaml.safe_load(path.read_text())
    if sources is not None:
        data["sources"] = [s for s in data["sources"] if s["name"] in sources]
    data["alerts"] = {"channels": [f"json://{base[7:]}/hook"], **alerts}
    target = path.with_name(f"{path.stem}-{len(list(path.parent.glob('*.yaml')))}.yaml")
    target.write_text(yaml.safe_dump(data))
    return target


def _alerts(db: Path, run: str | None = None) -> list[tuple[Any, ...]]:
    return query(db, "SELECT status, mode, count(*) FROM alerts "
                     + ("WHERE run_id = ? " if run else "") + "GROUP BY ALL ORDER BY ALL",
                 [run] if run else [])[1]


def _last_run(db: Path) -> str:
    return str(query(db, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")[1][0][0])


@pytest.mark.usefixtures("prefect_harness")
def test_first_run_sends_one_digest_then_backfill_does_too(
        demo: tuple[Path, Receiver, str], tmp_path: Path) -> None:
    demo_config, receiver, base = demo
    db = tmp_path / "a.duckdb"
    wire = _config(demo_config, base, sources=("policy-wire",))
    code, out, err = _run("run", "--config", str(wire), "--db", str(db))
    assert code == 0, err
    [digest] = receiver.messages
    assert digest["title"].startswith("policywatch digest: ")
    # the digest, the CLI and the briefing give the same count, in the same words
    claims = int(out.split("New claims about tracked entities: ")[1].split()[0])
    assert digest["title"].split()[2] == str(claims) and claims > 5
    page = (tmp_path / "a-reports" / "latest.html").read_text()
    assert f'<div class="n">{claims}</div><div class="l">new claims about tracked entities' \
        in page
    assert "in 1 digest: a first run; alerts.first_run" in out
    # and so does the run's Prefect artifact
    import httpx
    from prefect.settings import PREFECT_API_URL

    [artifact] = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json={
        "artifacts": {"key": {"any_": ["policywatch-run"]}}, "sort": "CREATED_DESC",
        "limit": 1}).json()
    assert "new claims about tracked entities |" in artifact["data"]
    row = artifact["data"].split("| --- |\n", 1)[1].splitlines()[0].split("|")
    assert row[4].strip() == str(claims)
    [(status, mode, count)] = _alerts(db)
    assert (status, mode) == ("sent", "summary") and count >= claims

    # a second night with new sources sends an alert per claim ... unless --backfill
    everything = _config(demo_config, base)
    code, out, err = _run("run", "--config", str(everything), "--db", str(db), "--backfill")
    assert code == 0, err
    assert len(receiver.messages) == 2 and receiver.messages[1]["title"].startswith(
        "policywatch digest: ")
    [(status, mode, count)] = _alerts(db, _last_run(db))
    assert (status, mode) == ("sent", "summary") and count > 0
    # and a re-run finds nothing to send: no claim of the digests comes back one by one
    code, out, err = _run("run", "--config", str(everything), "--db", str(db))
    assert code == 0, err
    assert len(receiver.messages) == 2


@pytest.mark.usefixtures("prefect_harness")
def test_first_run_none_records_the_alerts_then_later_nights_alert_each(
        demo: tuple[Path, Receiver, str], tmp_path: Path) -> None:
    demo_config, receiver, base = demo
    db = tmp_path / "b.duckdb"
    wire = _config(demo_config, base, sources=("policy-wire",), first_run="none")
    code, out, err = _run("run", "--config", str(wire), "--db", str(db))
    assert code == 0, err
    assert receiver.messages == []
    assert "alerts.first_run: none" in out
    [(status, mode, _)] = _alerts(db)
    assert (status, mode) == ("skipped", "muted")

    # the next night is no first run: an alert per claim
    everything = _config(demo_config, base, first_run="none")
    code, out, err = _run("run", "--config", str(everything), "--db", str(db))
    assert code == 0, err
    [*rows] = _alerts(db, _last_run(db))
    assert {mode for _, mode, _ in rows} == {"immediate"}
    sent = sum(n for status, _, n in rows if status == "sent")
    assert len(receiver.messages) == sent > 0
    assert not any(m["title"].startswith("policywatch digest") for m in receiver.messages)


def test_apprise_log_lines_go_to_the_log_file_not_the_console(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from tasks.alerts import apprise_log_to
    from tasks.alerts.delivery import send_message

    with apprise_log_to(tmp_path / "alerts.log") as log:
        error = send_message("json://127.0.0.1:9/dead", "t", "b", key="k")
    assert error and "127.0.0.1" in error  # the one-line reason the outbox keeps
    assert "Connection error" in log.read_text()  # apprise's own lines, in the file
    captured = capfd.readouterr()
    assert "127.0.0.1" not in captured.out + captured.err
