"""Incremental crawling end to end: a local site over real HTTP, crawl_source, the real load.

Each test runs one or more "nights" (crawl_source then load_batch) against a site whose
pages the test changes between nights, and checks what was fetched and what was stored.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flows.reprocess import reprocess
from schemas.config import Config, Crawl, Source, Topic
from schemas.ids import article_id_for, normalize_url
from schemas.models import PageBatch
from tasks.crawl import crawl_source
from tasks.store import LoadBatch, LoadCounts, load_batch, query
from tests.local import LOCAL_SITE

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, retries=0, per_host_concurrency=4)

PARAS = [
    "The commerce department said on Tuesday that it would tighten export rules for advanced "
    "chips sold to several countries, citing national security concerns raised by lawmakers.",
    "Industry groups warned that the move could cost American firms billions of dollars in "
    "lost sales, while supporters argued the rules were overdue and should have come earlier.",
    "A spokesperson for the agency declined to say when the rules would take effect, but noted "
    "that companies had been consulted during a months-long review of the licensing process.",
]
OTHER = [
    "Regulators in Brussels opened an inquiry into how large cloud providers bundle their "
    "artificial intelligence services, a step that could lead to fines next spring.",
    "The investigation follows complaints from smaller rivals who say customers are locked in "
    "by discounts that only apply when several products are bought together.",
    "Officials said the review would take at least six months and that no conclusion had been "
    "reached about whether any competition rules had actually been broken so far.",
]


def article_html(title: str, paras: list[str], *, canonical: str | None = None,
                 comments: tuple[tuple[str, str], ...] = (), charset: str | None = "utf-8",
                 ) -> str:
    head = f'<meta charset="{charset}">' if charset else ""
    if canonical:
        head += f'<link rel="canonical" href="{canonical}">'
    body = "".join(f"<p>{p}</p>" for p in paras)
    items = "".join(
        f'<li class="comment" id="comment-{i}"><div class="comment-author">{a}</div>'
        f'<div class="comment-content"><p>{t}</p></div></li>' for i, (a, t) in enumerate(comments))
    return (f"<!doctype html><html><head>{head}<title>{title}</title></head><body>"
            f'<nav><a href="/">Home</a> <a href="/world">World</a></nav>'
            f"<article><h1>{title}</h1>{body}</article>"
            f'<section id="comments"><ol class="comment-list">{items}</ol></section>'
            f"<footer>Copyright 2026 Example News</footer></body></html>")


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    validators: bool = True  # send ETag and Last-Modified, answer conditional GETs


@dataclass
class Site:
    """A news site whose pages tests edit between nights; it records every request."""

    server: HTTPServer
    pages: dict[str, Page] = field(default_factory=dict)
    feed: list[str] = field(default_factory=list)  # paths listed in /rss.xml
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return self.server.url_for("").rstrip("/")

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, html: str | bytes, *, listed: bool = True, **kw: object) -> str:
        data = html.encode() if isinstance(html, str) else html
        self.pages[path] = Page(data, **kw)  # type: ignore[arg-type]
        if listed and path not in self.feed:
            self.feed.append(path)
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.full_path.rstrip("?"), dict(request.headers)))
        if request.path == "/robots.txt":
            return Response("User-agent: *\nAllow: /\n", content_type="text/plain")
        if request.path == "/rss.xml":
            items = "".join(f"<item><title>{p}</title><link>{self.url(p)}</link>"
                            f"<pubDate>Sat, 28 Nov 2026 08:00:00 GMT</pubDate></item>"
                            for p in self.feed)
            feed = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>S'
                    f"</title>{items}</channel></rss>")
            tag = '"' + hashlib.sha1(feed.encode()).hexdigest()[:12] + '"'
            if request.headers.get("If-None-Match") == tag:
                return Response(status=304, headers={"ETag": tag})
            return Response(feed, content_type="application/rss+xml", headers={"ETag": tag})
        page = self.pages.get(request.path)
        if page is None:
            return Response("not found", status=404)
        if page.status != 200:
            return Response("error", status=page.status)
        etag = '"' + hashlib.sha1(page.body).hexdigest()[:12] + '"'
        headers = {"ETag": etag, "Last-Modified": "Sat, 28 Nov 2026 08:00:00 GMT"} \
            if page.validators else {}
        if page.validators and request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers=headers)
        return Response(page.body, content_type=page.content_type, headers=headers)


@pytest.fixture
def site(httpserver: HTTPServer) -> Site:
    made = Site(httpserver)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(made.handle)
    return made


def night(site: Site, db: Path, *, name: str = "news", crawl: Crawl = CRAWL,
          source: Source | None = None, run: str = "r") -> tuple[PageBatch, LoadCounts]:
    source = source or src(name=name, feed=site.url("/rss.xml"))
    batch = crawl_source(source, crawl, db, now=NOW)
    counts = load_batch(db, LoadBatch.of_pages(run, [batch]))
    return batch, counts


def one(db: Path, sql: str, params: list[Any] | None = None) -> Any:
    return query(db, sql, params or [])[1][0][0]


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return query(db, sql, params or [])[1]


def src(**fields: Any) -> Source:
    """A Source from plain strings (pydantic validates the URLs)."""
    return Source.model_validate(fields)


# -- conditional GET, content hash, seen URLs ---------------------------------------------------


def test_second_night_costs_only_304s_and_stores_nothing_new(site: Site, db_path: Path) -> None:
    for i in range(3):
        site.add(f"/2026/11/a{i}.html", article_html(f"Story {i}", [*PARAS, f"Detail {i}."],
                                                     comments=(("Ann", f"Comment {i}"),)))
    _, first = night(site, db_path, run="r1")
    assert first.articles_new == 3 and first.comments_new == 3
    batch, second = night(site, db_path, run="r2")
    assert (second.articles_new, second.comments_new, second.articles_updated) == (0, 0, 0)
    assert batch.articles == [] and batch.unchanged == 3
    page_fetches = [f for f in batch.fetch_log if "/2026/" in f.url]
    assert [f.status for f in page_fetches] == [304, 304, 304]
    assert sum(f.bytes for f in page_fetches) == 0
    sent = [h for p, h in site.requests if p.startswith("/2026/")][-3:]
    assert all(h.get("If-None-Match") and h.get("If-Modified-Since") for h in sent)
    assert one(db_path, "SELECT count(*) FROM articles") == 3


def test_an_unchanged_feed_costs_a_304_and_still_lists_its_items(site: Site,
                                                                  db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS))
    night(site, db_path, run="r1")
    batch, _ = night(site, db_path, run="r2")
    feed = [f for f in batch.fetch_log if f.url.endswith("/rss.xml")]
    assert [f.status for f in feed] == [304]
    assert [f.status for f in batch.fetch_log if f.url.endswith("/a.html")] == [304]
    site.add("/b.html", article_html("Cloud inquiry", OTHER))  # the feed changes
    batch, counts = night(site, db_path, run="r3")
    assert [f.status for f in batch.fetch_log if f.url.endswith("/rss.xml")] == [200]
    assert counts.articles_new == 1


def test_unchanged_body_without_validators_is_not_extracted_again(site: Site,
                                                                   db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS), validators=False)
    night(site, db_path, run="r1")
    batch, counts = night(site, db_path, run="r2")
    assert [f.status for f in batch.fetch_log if f.url.endswith("/a.html")] == [200]
    assert batch.articles == [] and batch.unchanged == 1 and counts.articles_updated == 0


def test_a_changed_page_is_updated_in_place_with_its_new_comments(site: Site,
                                                                   db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS, comments=(("Ann", "First!"),)))
    night(site, db_path, run="r1")
    first_id = one(db_path, "SELECT article_id FROM articles")
    site.add("/a.html", article_html("Story (updated)", [*PARAS, "An update came later."],
                                     comments=(("Ann", "First!"), ("Bob", "Second."))))
    _, counts = night(site, db_path, run="r2")
    assert counts.articles_updated == 1 and counts.comments_new == 1
    assert rows(db_path, "SELECT article_id, title FROM articles") == \
        [(first_id, "Story (updated)")]
    assert one(db_path, "SELECT count(*) FROM comments WHERE article_id = ?", [first_id]) == 2


def test_a_known_page_under_tracking_parameters_is_not_new(site: Site, db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS))
    night(site, db_path, run="r1")
    site.feed = ["/a.html?utm_source=rss&utm_medium=feed#comments"]
    batch, counts = night(site, db_path, run="r2")
    assert counts.articles_new == 0 and batch.articles == []
    last = [h for p, h in site.requests if p.startswith("/a.html")][-1]
    assert last.get("If-None-Match")  # recognised as the known page: a conditional GET
    assert one(db_path, "SELECT count(*) FROM pages") == 1


# -- failures --------------------------------------------------------------------------------


def test_a_page_failing_on_night_one_is_retried_and_stored_on_night_two(
        site: Site, db_path: Path) -> None:
    site.add("/ok.html", article_html("Fine", OTHER))
    site.add("/flaky.html", article_html("Flaky", PARAS), status=503)
    _, first = night(site, db_path, run="r1")
    assert first.articles_new == 1
    assert rows(db_path, "SELECT status, attempts, last_error FROM pages "
                         "WHERE url LIKE '%flaky%'") == [("failed", 1, "HTTP 503")]
    assert rows(db_path, "SELECT source, status, error FROM fetch_log "
                         "WHERE url LIKE '%flaky%'") == [("news", 503, "HTTP 503")]
    site.pages["/flaky.html"].status = 200
    site.feed.remove("/flaky.html")  # gone from the feed: offered again from the failures
    _, second = night(site, db_path, run="r2")
    assert second.articles_new == 1
    assert one(db_path, "SELECT title FROM articles WHERE url LIKE '%flaky%'") == "Flaky"
    assert one(db_path, "SELECT status FROM pages WHERE url LIKE '%flaky%'") == "ok"


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_page_is_recorded_and_not_fetched_again(site: Site, db_path: Path,
                                                       status: int) -> None:
    site.add("/gone.html", b"", status=status)
    night(site, db_path, run="r1")
    assert one(db_path, "SELECT status FROM pages WHERE url LIKE '%gone%'") == "gone"
    night(site, db_path, run="r2")
    assert site.hits("/gone.html") == 1


def test_fetch_failures_are_logged_with_their_reason(site: Site, db_path: Path) -> None:
    site.add("/doc.pdf", b"%PDF-1.4", content_type="application/pdf")
    site.add("/empty.html", "<html><body></body></html>")
    night(site, db_path, run="r1")
    log = dict(rows(db_path, "SELECT url, error FROM fetch_log WHERE error IS NOT NULL"))
    assert "unexpected content type 'application/pdf'" in log[site.url("/doc.pdf")]
    columns = query(db_path, "SELECT * FROM fetch_log")[0]
    assert {"run_id", "url", "source", "status", "bytes", "duration_ms", "error",
            "fetched_at"} <= set(columns)
    reasons = dict(rows(db_path, "SELECT url, reason FROM rejects WHERE stage = 'parse'"))
    assert site.url("/empty.html") in reasons
    assert one(db_path, "SELECT status FROM pages WHERE url LIKE '%empty%'") == "failed"


def test_one_failing_source_never_stops_the_others(site: Site, db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS))
    dead = src(name="dead", feed="http://127.0.0.1:9/rss.xml",
               urls=["http://127.0.0.1:9/page.html"])
    batch, _ = night(site, db_path, source=dead, run="r1")
    assert {r.stage for r in batch.rejects} == {"discover", "fetch"}
    assert all("connection failed" in r.reason for r in batch.rejects)
    _, counts = night(site, db_path, run="r1")
    assert counts.articles_new == 1


# -- one article under two addresses -----------------------------------------------------------


def test_a_page_naming_a_stored_page_as_canonical_is_the_same_article(site: Site,
                                                                      db_path: Path) -> None:
    original = site.add("/story.html", article_html("Story", PARAS))
    night(site, db_path, run="r1")
    site.add("/amp/story.html", article_html("Story", PARAS, canonical=original))
    _, counts = night(site, db_path, run="r2")
    assert counts.articles_new == 0
    [(article_id,)] = rows(db_path, "SELECT article_id FROM articles")
    urls = {u for (u,) in rows(db_path, "SELECT url FROM article_urls WHERE article_id = ?",
                               [article_id])}
    assert {normalize_url(original), normalize_url(site.url("/amp/story.html"))} <= urls


def test_a_syndicated_copy_with_its_own_canonical_is_merged(site: Site, db_path: Path) -> None:
    original = site.add("/wire/story.html", article_html(
        "Chip rules tighten | Wire", PARAS, canonical=site.url("/wire/story.html")))
    night(site, db_path, run="r1")
    copy = site.add("/partner/story.html", article_html(
        "Chip rules tighten - Partner News", [*PARAS, "This story first appeared on Wire."],
        canonical=site.url("/partner/story.html"), comments=(("Cat", "Old news."),)))
    unrelated = site.add("/other.html", article_html("Cloud inquiry", OTHER))
    _, counts = night(site, db_path, run="r2")
    assert counts.articles_new == 1  # only the unrelated story is new
    original_id = article_id_for(original, original)
    assert one(db_path, "SELECT article_id FROM article_urls WHERE url = ?",
               [normalize_url(copy)]) == original_id
    assert one(db_path, "SELECT article_id FROM article_urls WHERE url = ?",
               [normalize_url(unrelated)]) != original_id
    assert rows(db_path, "SELECT reason, duplicate_of FROM article_duplicates") == \
        [("near-duplicate", original_id)]
    # the copy's comments belong to the one article, and keep their ids on later nights
    comment = rows(db_path, "SELECT comment_id, article_id FROM comments")
    assert [c[1] for c in comment] == [original_id]
    site.add("/partner/story.html", article_html(
        "Chip rules tighten - Partner News", [*PARAS, "This story first appeared on Wire.",
                                              "Updated with a correction."],
        canonical=copy, comments=(("Cat", "Old news."), ("Dan", "Agreed."))))
    _, third = night(site, db_path, run="r3")
    assert (third.articles_new, third.comments_new) == (0, 1)
    assert one(db_path, "SELECT count(*) FROM comments WHERE article_id = ?",
               [original_id]) == 2
    assert one(db_path, "SELECT title FROM articles WHERE article_id = ?",
               [original_id]) == "Chip rules tighten | Wire"


def test_a_page_at_a_new_address_does_not_store_its_comments_twice(site: Site,
                                                                    db_path: Path) -> None:
    # the site moves its articles (http to https, a new path): the page is merged into the
    # stored article, and its comments, whose ids come from the new address, are the stored
    # ones, not new ones
    talk = (("Ann", "Export rules are overdue."), ("Bo", "This will hurt US firms."))
    site.add("/2026/story.html", article_html("Chip rules tighten", PARAS, comments=talk))
    _, first = night(site, db_path, run="r1")
    assert first.comments_new == 2
    stored = rows(db_path, "SELECT comment_id FROM comments ORDER BY comment_id")
    del site.pages["/2026/story.html"]
    site.feed.clear()
    site.add("/news/2026/story.html", article_html(
        "Chip rules tighten", PARAS, comments=(*talk, ("Cy", "Finally."))))
    _, second = night(site, db_path, run="r2")
    assert (second.articles_new, second.comments_new) == (0, 1)  # only Cy's is new
    assert one(db_path, "SELECT count(*) FROM comments") == 3
    assert one(db_path, "SELECT count(DISTINCT body) FROM comments") == 3
    kept = rows(db_path, "SELECT comment_id FROM comments WHERE author <> 'Cy' "
                         "ORDER BY comment_id")
    assert kept == stored


def test_two_copies_found_the_same_night_are_one_article(site: Site, db_path: Path) -> None:
    site.add("/a/story.html", article_html("Chip rules tighten", PARAS))
    site.add("/b/story.html", article_html("Chip rules tighten", [*PARAS, "Via Wire."]))
    _, counts = night(site, db_path, run="r1")
    assert counts.articles_new == 1
    assert one(db_path, "SELECT count(DISTINCT article_id) FROM pages") == 1


def test_different_stories_sharing_boilerplate_are_not_merged(site: Site,
                                                              db_path: Path) -> None:
    notice = [p.replace("commerce", "cookie") for p in PARAS]  # the same long notice
    site.add("/one.html", article_html("Senate passes privacy bill", notice))
    site.add("/two.html", article_html("Court blocks merger of chip makers", notice))
    _, counts = night(site, db_path, run="r1")
    assert counts.articles_new == 2


# -- encodings --------------------------------------------------------------------------------

TEXTS = {
    "gbk": "美国商务部周二表示，将收紧对多个国家出口先进芯片的规定，"
           "理由是议员们提出的国家安全担忧。行业团体警告说，此举可能使美国公司损失数十亿美元的销售额。",
    "gb2312": "华为公司发言人表示，公司将继续投资研发，并与全球合作伙伴保持合作关系。"
              "分析人士认为，新的出口管制措施将对供应链产生深远影响。",
    "big5": "美國商務部週二表示，將收緊對多個國家出口先進晶片的規定，"
            "理由是議員們提出的國家安全擔憂。行業團體警告說，此舉可能使美國公司損失數十億美元的銷售額。",
    "shift_jis": "経済産業省は火曜日、先端半導体の輸出規制を強化すると発表した。"
                 "業界団体は、この措置により国内企業が数十億円の売上を失う可能性があると警告した。",
    "windows-1252": "The minister’s “strict” plan — announced in Zürich — drew criticism from "
                    "Société Générale analysts, who called it naïve and costly for façade makers.",
    "latin-1": "Le ministre a présenté à Genève un plan très strict ; les analystes de la "
               "Société Générale l'ont jugé naïf et coûteux pour les entreprises françaises.",
}


@pytest.mark.parametrize("declared", ["header", "meta", "none"])
@pytest.mark.parametrize("codec", sorted(TEXTS))
def test_pages_in_legacy_encodings_decode(site: Site, db_path: Path, codec: str,
                                          declared: str) -> None:
    text = TEXTS[codec]
    paras = [text, text[: len(text) // 2], text[len(text) // 2:]]
    html = article_html("T", paras, charset=codec if declared == "meta" else None)
    content_type = f"text/html; charset={codec}" if declared == "header" else "text/html"
    site.add("/p.html", html.encode(codec), content_type=content_type)
    night(site, db_path, run="r1")
    body = one(db_path, "SELECT body FROM articles")
    assert isinstance(body, str) and text[:20] in body


def test_invalid_bytes_never_crash_a_run(site: Site, db_path: Path) -> None:
    good = article_html("Fine", PARAS).encode("utf-8")
    broken = good.replace(b"department", b"depart\xff\xfe\x80ment")
    site.add("/broken.html", broken)
    site.add("/binary.html", bytes(range(256)) * 50, content_type="text/html")
    site.add("/ok.html", article_html("Other", OTHER))
    batch, counts = night(site, db_path, run="r1")
    assert counts.articles_new == 2
    assert any(r.url.endswith("/binary.html") for r in batch.rejects)


# -- re-processing from the raw archive ---------------------------------------------------------


def _config(site: Site) -> Config:
    return Config.model_validate({"sources": [{"name": "news", "feed": site.url("/rss.xml")}]})


def test_reprocess_reparses_the_archive_in_place_without_fetching(site: Site,
                                                                  db_path: Path) -> None:
    site.add("/a.html", article_html("Story", PARAS, comments=(("Ann", "Yes."),)))
    site.add("/b.html", article_html("Cloud inquiry", OTHER))
    night(site, db_path, run="r1")
    before = rows(db_path, "SELECT article_id, first_seen_at FROM articles ORDER BY 1")
    comments = rows(db_path, "SELECT comment_id FROM comments")
    # simulate rows written by an older, worse parser
    from tasks.store import open_for_write

    with open_for_write(db_path) as con:
        con.execute("UPDATE articles SET title = 'wrong', body = 'stale'")
    requests = len(site.requests)
    counts = reprocess(db_path, _config(site), extract=False)
    assert len(site.requests) == requests  # nothing fetched
    assert (counts.pages, counts.failed, counts.articles_updated, counts.articles_new) == \
        (2, 0, 2, 0)
    assert counts.comments_updated == 1 and counts.comments_new == 0
    assert rows(db_path, "SELECT article_id, first_seen_at FROM articles ORDER BY 1") == before
    assert sorted(t for (t,) in rows(db_path, "SELECT title FROM articles")) == \
        ["Cloud inquiry", "Story"]
    assert one(db_path, "SELECT count(*) FROM articles WHERE body LIKE '%commerce%'") == 1
    assert rows(db_path, "SELECT comment_id FROM comments") == comments


def test_reprocess_keeps_merged_copies_merged(site: Site, db_path: Path) -> None:
    site.add("/a/story.html", article_html("Chip rules tighten", PARAS))
    site.add("/b/story.html", article_html("Chip rules tighten", [*PARAS, "Via Wire."],
                                           comments=(("Cat", "Hm."),)))
    night(site, db_path, run="r1")
    before = rows(db_path, "SELECT article_id, url, body FROM articles")
    comments = rows(db_path, "SELECT comment_id, article_id FROM comments")
    counts = reprocess(db_path, _config(site), extract=False)
    assert counts.articles_new == 0
    assert rows(db_path, "SELECT article_id, url, body FROM articles") == before
    assert rows(db_path, "SELECT comment_id, article_id FROM comments") == comments


def test_reprocess_replaces_claims_in_place(site: Site, db_path: Path) -> None:
    analyse = pytest.importorskip("tasks.analyse.pool", reason="the claim extractor is not ready")
    from tasks.store import open_for_write

    text = [*PARAS, '"These rules will cost us dearly," said Jane Doe, a chip executive.']
    site.add("/a.html", article_html("Story", text))
    batch, _ = night(site, db_path, run="r1")
    claims, _ = analyse.extract_article_claims(batch.articles, [])
    load_batch(db_path, LoadBatch(run_id="r1x", claims=claims))
    assert claims, "the extractor found no claim in the test text"
    kept = {c.claim_id for c in claims}
    first_seen = dict(rows(db_path, "SELECT claim_id, first_seen_at FROM claims"))
    with open_for_write(db_path) as con:  # a claim an older extractor got wrong
        con.execute("INSERT INTO claims (claim_id, article_id, speaker, speaker_entity, cue, "
                    "content, sentence, quote_kind, claim_key, first_seen_at, run_id) "
                    "SELECT 'bogus', article_id, 'x', NULL, 'said', 'y', 'x said y', "
                    "'indirect', 'k', now(), 'old' FROM articles")
        con.execute("UPDATE claims SET cue = 'wrong' WHERE claim_id <> 'bogus'")
    counts = reprocess(db_path, _config(site))
    assert counts.claims_removed == 1 and counts.claims_kept == len(kept)
    assert {c for (c,) in rows(db_path, "SELECT claim_id FROM claims")} == kept
    assert dict(rows(db_path, "SELECT claim_id, first_seen_at FROM claims")) == first_seen
    assert one(db_path, "SELECT count(*) FROM claims WHERE cue = 'wrong'") == 0


def _night_with_a_quoted_claim(site: Site, db_path: Path) -> None:
    """One night over a page holding a quoted claim, its claims loaded under run r1x."""
    analyse = pytest.importorskip("tasks.analyse.pool")
    text = [*PARAS, '"These rules will cost us dearly," said Jane Doe, a chip executive.']
    site.add("/a.html", article_html("Story", text))
    batch, _ = night(site, db_path, run="r1")
    claims, _ = analyse.extract_article_claims(batch.articles, [])
    load_batch(db_path, LoadBatch(run_id="r1x", claims=claims))


def test_reprocess_without_extraction_keeps_every_claim(site: Site, db_path: Path) -> None:
    _night_with_a_quoted_claim(site, db_path)
    before = rows(db_path, "SELECT claim_id, first_seen_at FROM claims ORDER BY 1")
    assert before
    counts = reprocess(db_path, _config(site), extract=False)
    assert (counts.claims_removed, counts.claims_new) == (0, 0)
    assert rows(db_path, "SELECT claim_id, first_seen_at FROM claims ORDER BY 1") == before


def test_reprocess_moves_a_claim_whose_speaker_changed_with_its_history(
        site: Site, db_path: Path) -> None:
    # an older extractor named the speaker differently, so the claim had another id; its
    # first_seen_at, run and alerts go to the claim the current code finds
    from tasks.store import open_for_write

    _night_with_a_quoted_claim(site, db_path)
    [(claim_id, key, first_seen)] = rows(
        db_path, "SELECT claim_id, claim_key, first_seen_at FROM claims "
                 "WHERE content LIKE '%cost us dearly%'")
    with open_for_write(db_path) as con:
        con.execute("UPDATE claims SET claim_id = 'old-id', speaker = 'Doe' "
                    "WHERE claim_id = ?", [claim_id])
        con.execute("INSERT INTO alerts (alert_id, claim_id, claim_key, entity, channel, "
                    "rule, mode, status, attempts, created_at, run_id) VALUES ('a1', "
                    "'old-id', ?, 'Acme', 'json://x', 'tracked', 'immediate', 'sent', 1, "
                    "now(), 'r1x')", [key])
    counts = reprocess(db_path, _config(site))
    assert counts.claims_new == 0 and counts.claims_removed == 0
    assert rows(db_path, "SELECT claim_id, first_seen_at, run_id FROM claims "
                         "WHERE claim_key = ?", [key]) == [(claim_id, first_seen, "r1x")]
    assert one(db_path, "SELECT claim_id FROM alerts WHERE alert_id = 'a1'") == claim_id


def test_reprocess_drops_stances_of_removed_topics(site: Site, db_path: Path) -> None:
    pytest.importorskip("tasks.analyse.pool")
    from tasks.store import open_for_write

    site.add("/a.html", article_html("Story", PARAS, comments=(("Ann", "Tighter rules now."),)))
    night(site, db_path, run="r1")
    [(comment_id,)] = rows(db_path, "SELECT comment_id FROM comments")
    with open_for_write(db_path) as con:
        con.execute("INSERT INTO stances (comment_id, topic, label, score, run_id) "
                    "VALUES (?, 'renamed-away', 'favor', 0.4, 'r1')", [comment_id])
    config = _config(site).model_copy(update={"topics": (Topic(
        name="controls", description="The US should restrict chip exports to China."),)})
    counts = reprocess(db_path, config)
    assert (counts.stances_new, counts.stances_updated, counts.stances_removed) == (1, 0, 1)
    assert rows(db_path, "SELECT topic FROM stances") == [("controls",)]


def test_a_source_night_reads_the_store_three_times_and_writes_nothing(
        site: Site, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its state before discovery, its listed pages' states, one look-up for copies after
    parsing; nothing written until the load."""
    import tasks.store.connection as connection
    import tasks.store.state as state

    for i in range(3):
        site.add(f"/2026/11/a{i}.html", article_html(f"Story {i}", [*PARAS, f"Detail {i}."],
                                                     comments=(("Ann", f"Comment {i}"),)))
    night(site, db_path, run="r1")
    opened: list[str] = []
    real = connection.open_for_write

    def counted(path: Path | str, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(state, "open_for_write", counted)
    monkeypatch.setattr(connection, "open_for_write", counted)
    site.add("/2026/11/a3.html", article_html("Story 3", [*PARAS, "Detail 3."]))
    before = one(db_path, "SELECT count(*) FROM listings")
    batch = crawl_source(src(name="news", feed=site.url("/rss.xml")), CRAWL, db_path, now=NOW)
    assert len(opened) == 3
    assert len(batch.articles) == 1 and len(batch.signatures) == 1
    # the feed fetched afresh rides to the load instead of being written by the crawl
    assert batch.listings and one(db_path, "SELECT count(*) FROM listings") == before
