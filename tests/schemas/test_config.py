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
