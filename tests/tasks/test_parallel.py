"""The CPU-bound stages in worker processes give exactly what they give in one process."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.config import Entity, Source
from schemas.errors import ParseError
from schemas.ids import content_hash
from schemas.models import Article, FetchResult
from tasks.analyse import pool as analyse
from tasks.extract import pages

PAGES = Path(__file__).resolve().parent.parent / "data" / "pages"
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ENTITIES = [Entity(name="Huawei", kind="org", tracked=True),
            Entity(name="China", aliases=("Beijing",), kind="country")]
BODIES = [
    "Huawei said on Monday that its new chips would ship next year.\n\n"
    "Analysts said the launch could test export rules.",
    "A spokesperson for the ministry said Beijing would respond to the new controls.\n\n"
    "\"We will not accept this,\" the official told reporters.",
    "The company said profits rose. Regulators warned that China was moving fast.",
    "According to the report, Huawei shipped fewer phones than expected this year.",
    "Nobody commented on the weather, which was mild for the season.",
]


def _articles(n: int) -> list[Article]:
    return [Article(article_id=f"a{i}", source="s", url=f"https://example.com/{i}",
                    title=f"Story {i}", body=BODIES[i % len(BODIES)] + f"\n\nStory {i}.",
                    content_hash=content_hash(BODIES[i % len(BODIES)]), fetched_at=NOW)
            for i in range(n)]


def test_nothing_to_analyse_loads_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was asked for with nothing to analyse")

    monkeypatch.setattr(analyse, "extract_claims_many", no_model)
    assert analyse.extract_article_claims([], ENTITIES, n_process=2) == ([], [])
    assert analyse.classify_comment_stances([], []) == ([], [])


def test_claims_in_worker_processes_equal_claims_in_process() -> None:
    articles = _articles(11)  # three chunks of four: uneven on purpose
    serial, serial_rejects = analyse.extract_article_claims(articles, ENTITIES)
    parallel, parallel_rejects = analyse.extract_article_claims(articles, ENTITIES,
                                                                n_process=2, min_parallel=2)
    assert serial and not serial_rejects and not parallel_rejects
    assert [c.model_dump() for c in parallel] == [c.model_dump() for c in serial]
    assert {c.article_id for c in parallel} >= {"a0", "a1", "a3"}


def test_small_batches_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pool was started for a small batch")

    monkeypatch.setattr(analyse, "ProcessPoolExecutor", no_pool)
    claims, _ = analyse.extract_article_claims(_articles(3), ENTITIES, n_process=2)
    assert claims


def _fetch(i: int, content: bytes | None, *, ok: bool = True,
           not_modified: bool = False) -> FetchResult:
    return FetchResult(url=f"https://example.com/p{i}.html", source="s", status=200,
                       ok=ok, content=content, encoding=None, not_modified=not_modified,
                       error=None if ok else "HTTP 500", fetched_at=NOW)


def test_pages_parsed_in_worker_processes_equal_pages_parsed_in_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int] = []
    from concurrent.futures import ProcessPoolExecutor as real_pool

    def counted(*args: Any, **kwargs: Any) -> Any:
        pools.append(kwargs["max_workers"])
        return real_pool(*args, **kwargs)

    files = sorted(PAGES.glob("*.html"))
    fetches = []
    for i in range(2 * pages.MIN_PARALLEL):  # enough for the pool; failures interleaved
        if i % 10 == 3:
            fetches.append(_fetch(i, None, ok=False))
        elif i % 10 == 7:
            fetches.append(_fetch(i, None, not_modified=True))
        elif i % 10 == 5:
            fetches.append(_fetch(i, b"\x00\x01\x02 binary \xff\xfe" * 20))  # a parse error
        else:
            fetches.append(_fetch(i, files[i % len(files)].read_bytes()))
    source = Source.model_validate({"name": "s", "urls": ["https://example.com/"]})
    serial = pages.process_pages(fetches, source, {})
    monkeypatch.setattr(pages, "ProcessPoolExecutor", counted)
    parallel = pages.process_pages(fetches, source, {}, processes=2)
    assert pools == [2]
    assert [a.model_dump() for a in parallel.articles] == \
        [a.model_dump() for a in serial.articles]
    assert [c.model_dump() for c in parallel.comments] == \
        [c.model_dump() for c in serial.comments]
    assert [r.model_dump() for r in parallel.rejects] == \
        [r.model_dump() for r in serial.rejects]
    assert [(o.url, o.article_id, o.error) for o in parallel.outcomes] == \
        [(o.url, o.article_id, o.error) for o in serial.outcomes]
    assert {r.stage for r in parallel.rejects} == {"fetch", "parse"}
    assert len(parallel.articles) > pages.MIN_PARALLEL
    assert parallel.unchanged == serial.unchanged > 0


def test_parse_errors_come_back_as_values() -> None:
    job = (b"\x00\x01 not a page \xff" * 30, "https://example.com/x", NOW, None, None)
    [result] = list(pages.parse_all([job]))
    assert isinstance(result, ParseError)


def test_one_pool_for_claims_and_stances_equals_the_serial_path() -> None:
    from schemas.config import Topic
    from schemas.models import Comment

    topics = [Topic(name="controls", description="The US should restrict China's access "
                                                  "to advanced chips.")]
    articles = _articles(9)
    texts = ["Export controls on chips are long overdue.", "This will backfire on the US.",
             "I had pasta for dinner.", "", "Restrict them all, they steal our tech."]
    comments = [Comment(comment_id=f"c{i}", article_id=f"a{i % 9}", body=texts[i % 5],
                        author=None) for i in range(13)]
    serial = analyse.analyse_batch(articles, comments, ENTITIES, topics)
    pooled = analyse.analyse_batch(articles, comments, ENTITIES, topics, n_process=2,
                                   min_parallel=2)
    assert [c.model_dump() for c in pooled[0]] == [c.model_dump() for c in serial[0]]
    assert len(pooled[1]) == len(comments) == len(serial[1])
    for a, b in zip(pooled[1], serial[1], strict=True):
        assert (a.comment_id, a.topic, a.label) == (b.comment_id, b.topic, b.label)
        assert a.score == pytest.approx(b.score, abs=1e-3)
    assert pooled[2] == serial[2] == []


def test_the_pool_runs_the_configured_stance_encoder() -> None:
    """`performance.stance_encoder: distilled` reaches the workers: pooled stances equal
    the serial distilled ones and differ from the default encoder's scores."""
    from schemas.config import Topic
    from schemas.models import Comment

    topics = [Topic(name="controls", description="The US should restrict China's access "
                                                  "to advanced chips.")]
    texts = ["Export controls on chips are long overdue.", "This will backfire on the US.",
             "I had pasta for dinner.", "Restrict them all, they steal our tech."]
    comments = [Comment(comment_id=f"c{i}", article_id="a0", body=texts[i % 4], author=None)
                for i in range(12)]
    serial = analyse.analyse_batch([], comments, ENTITIES, topics, stance_encoder="distilled")
    pooled = analyse.analyse_batch([], comments, ENTITIES, topics, n_process=2,
                                   min_parallel=1, stance_encoder="distilled")
    default = analyse.analyse_batch([], comments, ENTITIES, topics)
    assert [(s.label, round(s.score, 3)) for s in pooled[1]] == [
        (s.label, round(s.score, 3)) for s in serial[1]]
    assert [s.score for s in serial[1]] != [s.score for s in default[1]]
