"""Never lose an article (issue #19), end to end: pages written here to reproduce each failure
class of the body extractor are served on 127.0.0.1, crawled and parsed by the real path and
loaded into a real DuckDB file; the stored body must hold the whole article and nothing of the
page's notices, ads or comments, and `articles.extracted_by` says which opinion gave it.

The pages are invented (no copy of a real page): one short news story about a chip export
bill, laid out in the ways that broke extraction on real sites.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from schemas.config import Crawl, Source
from tasks.crawl import crawl_source
from tasks.store import LoadBatch, load_batch, query
from tests.local import LOCAL_SITE

CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False, window_days=3650)
NOW = datetime(2026, 11, 29, tzinfo=UTC)

TITLE = "Senate panel advances chip export bill after lengthy hearing"
DESC = "Lawmakers on the commerce panel voted to send the chip export bill to the full Senate."
PARAS = [
    "Lawmakers on the Senate commerce panel voted 14 to 9 on Tuesday to advance a bill that "
    "would tighten export rules for advanced chips, sending it to the full chamber after a "
    "hearing that ran late into the evening.",
    "The measure, drafted by a bipartisan group of senators, would require licences for "
    "shipments of high-end processors and the tools used to make them, and would give the "
    "Commerce Department new powers to audit buyers abroad.",
    "Supporters argued that the current rules leave gaps that foreign manufacturers have "
    "exploited for years, while opponents warned that chip designers would lose customers to "
    "rivals in Europe and Asia.",
    "A trade group representing semiconductor firms said in a statement that it welcomed "
    "clearer rules but feared the licensing process would slow legitimate sales to "
    "universities and hospitals.",
    "The committee's chair told reporters that the bill could reach the floor before the "
    "winter recess, though leaders of both parties have yet to commit to a schedule for the "
    "vote.",
    "Several amendments were adopted during the session, including one that exempts shipments "
    "to allied governments and another that orders a yearly report on how the licences are "
    "used.",
    "Analysts who follow the industry said the vote signalled growing impatience in Congress "
    "with the pace of rule-making at the agencies responsible for export controls.",
    "The bill now heads to the full Senate, where it needs sixty votes to overcome a "
    "procedural hurdle; a companion measure is still waiting for a hearing in the House.",
]
CONSENT = [
    "Under the California Consumer Privacy Act, you have the right to opt out of the sale or "
    "sharing of your personal information, including for targeted advertising, and to ask "
    "what personal information we collect.",
    "We and our third-party partners use cookies and similar technologies to collect personal "
    "information, such as identifiers, browsing activity and inferences, for analytics, "
    "personalisation and advertising, as described in our privacy policy.",
    "To exercise your right to opt out, select Do Not Sell or Share My Personal Information "
    "below, or enable a global privacy control in your browser; your choice applies to this "
    "browser and device only, and you may need to repeat it elsewhere.",
    "If you opt out, you will still see advertising, but it may be less relevant to you; we "
    "will continue to process personal information as necessary to provide our services, "
    "comply with the law and protect against fraud and security incidents.",
    "You may also request access to, correction of, or deletion of your personal information "
    "by contacting our privacy team, and authorised agents may submit requests on your "
    "behalf, subject to verification of your identity and consent.",
]
NAV = ("<nav class='site-nav'><ul>"
       + "".join(f"<li><a href='/s{i}'>Section {i}</a></li>" for i in range(8)) + "</ul></nav>")
FOOT = "<footer><p>The Ledger, 1 Press Street. All rights reserved.</p></footer>"


def _ps(paras: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paras)


def _head() -> str:
    return (f"<head><meta charset='utf-8'><title>{TITLE} | The Ledger</title>"
            f"<meta property='og:title' content='{TITLE}'>"
            f"<meta name='description' content='{DESC}'></head>")


# -- one page per failure class -----------------------------------------------------------


def split_body() -> str:
    """1: the body split over repeated sibling containers, with ads and media between."""
    parts = []
    for i, chunk in enumerate([PARAS[0:2], PARAS[2:3], PARAS[3:5], PARAS[5:6], PARAS[6:8]]):
        parts.append(f"<div class='body__container body__container--{i}'>"
                     f"<div class='body__inner-container'>{_ps(chunk)}</div></div>"
                     f"<div class='ad-wrapper'><div class='ad-slot'>Advertisement</div></div>")
        if i == 1:
            parts.append("<div class='body__container body__container--media'><figure>"
                         "<img src='x.jpg'><figcaption>A hearing room.</figcaption></figure></div>")
    teasers = "".join(f"<article class='teaser'><h3><a href='/n{i}'>Other story {i} about the "
                      f"budget talks and the week ahead</a></h3><time>Nov {i + 1}</time></article>"
                      for i in range(6))
    return (f"<html>{_head()}<body>{NAV}<main><article><header><h1>{TITLE}</h1></header>"
            f"<div class='article__content'>{''.join(parts)}</div></article>"
            f"<section class='more'><h2>More news</h2>{teasers}</section></main>{FOOT}"
            f"</body></html>")


def sidebar_wrapper() -> str:
    """2: the article inside wrappers whose class names say grid and sidebar."""
    cells = "".join(f"<div class='grid__cell has-sidebar sidebar-layout__main'>{_ps(c)}</div>"
                    for c in (PARAS[0:3], PARAS[3:6], PARAS[6:8]))
    widgets = "".join(f"<div class='widget'><h4>Popular</h4><a href='/p{i}'>A popular item "
                      f"{i}</a></div>" for i in range(4))
    return (f"<html>{_head()}<body>{NAV}<div class='grid grid--sidebar'><div "
            f"class='sidebar-layout'><h1>{TITLE}</h1>{cells}</div><div class='sidebar'>"
            f"{widgets}</div></div>{FOOT}</body></html>")


def consent_notice() -> str:
    """3: a long privacy (CCPA opt-out) notice in the main column above a short wire story."""
    story = [PARAS[0], PARAS[1], "(Reporting by the Wire; editing by the desk)"]
    return (f"<html>{_head()}<body>{NAV}<div class='main-col'><section class='notice'>"
            f"<h2>Your privacy choices</h2>{_ps(CONSENT)}</section><div class='item'>"
            f"<h1>{TITLE}</h1><div class='txt'>{_ps(story)}</div></div></div>{FOOT}"
            f"</body></html>")


def template_body() -> str:
    """4a: a blog platform that keeps the post in a script template and renders it in JS."""
    post = f"<article class='post'><h1>{TITLE}</h1>{_ps(PARAS)}</article>"
    return (f"<html>{_head()}<body><div id='app'><header>The Ledger blog</header>"
            f"<div class='loading'>Loading...</div></div><script type='text/template' "
            f"id='post-tpl'>{post}</script><script src='/app.js'></script></body></html>")


def json_state_body() -> str:
    """4b: the post only in an embedded JSON state."""
    state = {"blog": {"name": "The Ledger"},
             "post": {"id": 42, "title": TITLE, "bodyHtml": _ps(PARAS), "tags": ["chips"]}}
    return (f"<html>{_head()}<body><div id='root'><p>Please enable JavaScript.</p></div>"
            f"<script>window.__BLOG_STATE__ = {json.dumps(state)};</script></body></html>")


def read_more() -> str:
    """5: the lead in the article element, then an inline ad and a read-more box, then the
    rest of the story outside the article element."""
    related = "".join(f"<li><a href='/r{i}'>Related: another story about trade rules, part "
                      f"{i}</a></li>" for i in range(4))
    return (f"<html>{_head()}<body>{NAV}<main><article class='story'><h1>{TITLE}</h1>"
            f"<div class='story-body'>{_ps(PARAS[0:2])}</div></article>"
            f"<div class='inline-ad'><span>Advertisement</span></div>"
            f"<div class='read-more-block'><h3>Read more</h3><ul>{related}</ul></div>"
            f"<div class='continuation'><div class='rich-text'>{_ps(PARAS[2:8])}</div></div>"
            f"</main>{FOOT}</body></html>")


def index_page() -> str:
    items = "".join(f"<li><a href='/a{i}'>Headline number {i} about policy</a> "
                    f"<time>Nov {i % 28 + 1}</time></li>" for i in range(30))
    return (f"<html>{_head()}<body>{NAV}<main><h1>Latest</h1><ul>{items}</ul></main>{FOOT}"
            f"</body></html>")


def paywall_stub() -> str:
    return (f"<html>{_head()}<body>{NAV}<main><h1>{TITLE}</h1><div class='paywall'><p>"
            f"Subscribe to keep reading. Already a subscriber? Sign in.</p></div></main>{FOOT}"
            f"</body></html>")


def _crawl(tmp_path: Path, server: HTTPServer, pages: dict[str, str]
           ) -> tuple[Path, list[tuple[str, str, str | None]]]:
    for path, page in pages.items():
        server.expect_request(path).respond_with_data(page, content_type="text/html")
    source = Source(name="ledger", urls=[server.url_for(p) for p in pages])
    db = tmp_path / "x.duckdb"
    batch = crawl_source(source, CRAWL, db, now=NOW)
    load_batch(db, LoadBatch(run_id="r1", pages=batch.outcomes, articles=batch.articles,
                             comments=batch.comments, rejects=batch.rejects,
                             fetch_log=batch.fetch_log))
    _, rows = query(db, "SELECT url, body, extracted_by FROM articles ORDER BY url")
    return db, rows


def _whole_and_clean(body: str) -> None:
    for i, para in enumerate(PARAS if len(body) > 800 else PARAS[:2]):
        assert para in body, f"paragraph {i} lost"
    for junk in ("Advertisement", "Related:", "Popular", "personal information", "privacy",
                 "Loading", "enable JavaScript", "Section 1", "All rights reserved"):
        assert junk not in body, junk


@pytest.mark.parametrize(("page", "paragraphs"), [
    (split_body, 8), (sidebar_wrapper, 8), (consent_notice, 2), (template_body, 8),
    (json_state_body, 8), (read_more, 8)])
def test_each_failure_class_keeps_the_whole_article(tmp_path: Path, httpserver: HTTPServer,
                                                    page: object, paragraphs: int) -> None:
    assert callable(page)
    _, rows = _crawl(tmp_path, httpserver, {"/story.html": page()})
    [(_url, body, extracted_by)] = rows
    _whole_and_clean(body)
    assert sum(p in body for p in PARAS) == paragraphs
    assert extracted_by in {"dom", "json-ld", "embedded", "trafilatura", "main"}


def test_the_winning_opinion_is_stored(tmp_path: Path, httpserver: HTTPServer) -> None:
    """Only the scripts hold these posts: the scorer has nothing, the embedded opinion wins."""
    for name, page in (("a", template_body), ("b", json_state_body)):
        (tmp_path / name).mkdir()
        _, rows = _crawl(tmp_path / name, httpserver, {f"/{name}.html": page()})
        assert [r[2] for r in rows] == ["embedded"]


def test_pages_without_an_article_are_recorded_with_a_reason(tmp_path: Path,
                                                            httpserver: HTTPServer) -> None:
    db, rows = _crawl(tmp_path, httpserver, {"/index.html": index_page(),
                                             "/paywalled.html": paywall_stub(),
                                             "/story.html": split_body()})
    assert [r[0].rsplit("/", 1)[1] for r in rows] == ["story.html"]
    _, rejects = query(db, "SELECT url, stage, reason FROM rejects ORDER BY url")
    reasons = {url.rsplit("/", 1)[1]: (stage, reason) for url, stage, reason in rejects}
    assert reasons["index.html"][0] == "parse"
    assert "no article text (index or listing page" in reasons["index.html"][1]
    assert "no article text (paywall or sign-in stub" in reasons["paywalled.html"][1]
    _, pages = query(db, "SELECT url, status, last_error FROM pages ORDER BY url")
    status = {url.rsplit("/", 1)[1]: (s, e) for url, s, e in pages}
    assert status["index.html"][0] == "failed" and "no article text" in status["index.html"][1]
    assert status["story.html"] == ("ok", None)
