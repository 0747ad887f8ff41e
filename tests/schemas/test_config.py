from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import load_config, parse_config
from schemas.errors import ConfigError

GOOD = """\
database: data/pw.duckdb
sources:
  - name: example-news
    feed: https://example.com/rss.xml
  - name: example-sitemap
    sitemap: https://example.com/sitemap.xml
  - name: hand-picked
    urls: [https://example.com/2026/11/some-article.html]
entities:
  - name: Huawei
    aliases: [Huawei Technologies, Huawei Technologies Co.]
    kind: org
    tracked: true
  - name: David Sacks
    aliases: [Sacks]
    kind: person
topics:
  - name: us-tech-controls
    description: The US should restrict China's access to advanced chips and AI technology.
alerts:
  channels:
    - json://127.0.0.1:9000/hook
"""


def test_the_contract_example_validates(tmp_path: Path) -> None:
    path = tmp_path / "pw.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert [s.name for s in config.sources] == ["example-news", "example-sitemap", "hand-picked"]
    assert config.database == tmp_path / "data" / "pw.duckdb"  # relative to the file
    assert [e.name for e in config.tracked_entities] == ["Huawei"]
    assert config.entities[1].names == ("David Sacks", "Sacks")
    assert config.alerts.channels == ("json://127.0.0.1:9000/hook",)


def test_only_sources_is_required() -> None:
    config = parse_config("sources:\n  - name: a\n    urls: [https://a.example/x]\n"
                          "entities:\ntopics: []\n")
    assert config.entities == () and config.topics == () and config.alerts.channels == ()


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("    kind: person", "    kind: person\n    colour: red"),
     "entities[1].colour (line 17): unknown key"),
    (GOOD.replace("  - name: hand-picked", "  - name: example-news"),
     "sources[2].name (line 7): duplicate name 'example-news'"),
    (GOOD.replace("    feed: https://example.com/rss.xml\n", ""),
     "sources[0] (line 3): needs one of 'feed', 'sitemap', 'homepage' or 'urls'"),
    (GOOD.replace("feed: https://example.com/rss.xml", "feed: not a url"),
     "sources[0].feed (line 4)"),
    (GOOD.replace("kind: org", "kind: company"), "entities[0].kind (line 12)"),
    ("entities: []\n", "sources (line 1): required key is missing"),
    ("sources: [\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    (GOOD.replace("json://127.0.0.1:9000/hook", "not-a-url"),
     "alerts.channels[0] (line 22): 'not-a-url' is not a notification URL"),
    (GOOD + "performance:\n  stance_encoder: tiny\n", "performance.stance_encoder (line 24)"),
])
def test_bad_configs_name_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, origin="pw.yaml")
    message = str(caught.value)
    assert expected in message
    assert message.startswith("pw.yaml")
    assert "\n" not in message


def test_stance_encoder_defaults_to_minilm() -> None:
    assert parse_config(GOOD).performance.stance_encoder == "minilm"
    fast = parse_config(GOOD + "performance:\n  stance_encoder: distilled\n")
    assert fast.performance.stance_encoder == "distilled"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


ONE_SOURCE = "sources:\n  - name: a\n    urls: [https://a.example/x]\n"


@pytest.mark.parametrize("tail", [
    "alerts:\n",
    "alerts:\n  channels:\n",
    "alerts:\n  rules:\n",
    "crawl:\nperformance:\nrunner:\n",
    "entities:\n  - name: X\n    aliases:\n",
])
def test_empty_sections_and_lists_mean_the_defaults(tail: str) -> None:
    config = parse_config(ONE_SOURCE + tail)
    assert config.alerts.channels == () and config.alerts.rules == ()
    assert config.alerts.mode == "immediate"
    assert config.crawl.retries == 3 and config.performance.min_batch == 32
    assert config.runner.kind == "local"
    assert all(entity.aliases == () for entity in config.entities)


def test_empty_source_urls_and_rule_lists_are_empty() -> None:
    config = parse_config("sources:\n  - name: a\n    feed: https://a.example/rss\n    urls:\n"
                          "alerts:\n  channels:\n  rules:\n    - name: r\n      entities:\n"
                          "      speakers:\n      topics:\n      channels:\n")
    assert config.sources[0].urls == ()
    [rule] = config.alerts.rules
    assert rule.entities == rule.speakers == rule.topics == rule.channels == ()


def test_empty_urls_alone_is_still_no_source_url() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\] \(line 2\): needs one of"):
        parse_config("sources:\n  - name: a\n    urls:\n")


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD + "sources:\n  - name: b\n    urls: [https://b.example/x]\n",
     "pw.yaml: sources (line 23): duplicate key; first at line 2"),
    ("database: a.duckdb\n" + GOOD, "pw.yaml: database (line 2): duplicate key; first at line 1"),
    (GOOD.replace("    feed: https://example.com/rss.xml\n",
                  "    feed: https://example.com/rss.xml\n    feed: https://example.com/b.xml\n"),
     "pw.yaml: sources[0].feed (line 5): duplicate key; first at line 4"),
    (GOOD.replace("    kind: person\n", "    kind: person\n    'kind': org\n"),
     "pw.yaml: entities[1].kind (line 17): duplicate key; first at line 16"),
    (GOOD + "  mode: digest\n  mode: immediate\n",
     "pw.yaml: alerts.mode (line 24): duplicate key; first at line 23"),
], ids=["sources", "database", "source-feed", "quoted-entity-kind", "alerts-mode"])
def test_repeated_keys_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, origin="pw.yaml")
    assert str(caught.value) == expected


def test_keys_merged_from_an_anchor_may_be_overridden() -> None:
    config = parse_config("sources:\n  - &a {name: a, urls: ['https://a.example/x']}\n"
                          "  - <<: *a\n    name: b\n")
    assert [s.name for s in config.sources] == ["a", "b"]


def test_schedule_and_timezone_are_checked() -> None:
    config = parse_config(ONE_SOURCE + "schedule: '30 6 * * 1-5'\ntimezone: Europe/Berlin\n")
    assert (config.schedule, config.timezone) == ("30 6 * * 1-5", "Europe/Berlin")
    assert (parse_config(ONE_SOURCE).schedule, parse_config(ONE_SOURCE).timezone) == (
        "0 2 * * *", "UTC")


@pytest.mark.parametrize(("tail", "expected"), [
    ("schedule: '61 2 * * *'\n", "schedule (line 4): '61 2 * * *' is not a valid cron string"),
    ("schedule: nightly\n", "schedule (line 4): 'nightly' is not a valid cron string"),
    ("schedule: '0 2 * *'\n", "schedule (line 4): '0 2 * *' is not a valid cron string"),
    ("timezone: Mars/Olympus\n", "timezone (line 4): unknown time zone 'Mars/Olympus'"),
    ("timezone: ../../etc/passwd\n", "timezone (line 4): unknown time zone '../../etc/passwd'"),
    ("timezone: ''\n", "timezone (line 4): unknown time zone ''"),
])
def test_bad_schedule_or_timezone_names_the_key_and_line(tail: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(ONE_SOURCE + tail, origin="pw.yaml")
    assert str(caught.value).startswith(f"pw.yaml: {expected}")
    assert "\n" not in str(caught.value)


def test_a_valid_schedule_is_one_prefect_serves() -> None:
    from prefect.schedules import Cron  # what `policywatch serve` builds from the config

    config = parse_config(ONE_SOURCE + "schedule: '*/15 8-18 * * mon-fri'\n"
                          "timezone: America/New_York\n")
    Cron(config.schedule, timezone=config.timezone)
