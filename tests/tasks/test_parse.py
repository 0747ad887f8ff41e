"""tasks.extract.page.parse_page on small invented pages (tests/data/pages/)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.config import CommentSelectors
from schemas.errors import ParseError
from tasks.extract import parse_page

PAGES = Path(__file__).resolve().parent.parent / "data" / "pages"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def _parse(name: str, url: str = "https://news.example/a", **kwargs):  # type: ignore[no-untyped-def]
    return parse_page(_page(name), url, fetched_at=NOW, **kwargs)


# -- WordPress: body, boilerplate, threaded comments --------------------------------------------


def test_wordpress_body_keeps_article_and_drops_boilerplate() -> None:
    page = _parse("wordpress_threaded.html")
    assert page.body.startswith("The city council postponed its vote")
    assert "sweep in ordinary marketing firms." in page.body
    assert page.body.count("\n\n") == 3  # four paragraphs
    for junk in ("Share on Facebook", "Advertisement", "Related stories", "Privacy board hires",
                 "Leave a Reply", "Your email address", "Most read", "All rights reserved",
                 "Opinion", "Delay after delay", "paper version", "Priya Raman"):
        assert junk not in page.body, junk


def test_wordpress_threaded_comments() -> None:
    page = _parse("wordpress_threaded.html")
    by_id = {c.local_id: c for c in page.comments}
    assert list(by_id) == ["comment-101", "comment-102", "comment-103"]
    first, reply, third = by_id.values()
    assert first.author == "Marguerite"
    assert first.body == ("Delay after delay. The council keeps finding reasons not to protect"
                          " residents.")
    assert first.posted_at == datetime(2026, 11, 20, 15, 4, tzinfo=UTC)
    assert first.parent_local_id is None
    assert reply.parent_local_id == "comment-101"
    assert reply.author == "Tomasz K."
    assert reply.body == ("To be fair, the amendments were filed only on Monday.\n\n"
                          "A week is not much time.")
    assert "Reply" not in first.body and "To be fair" not in first.body
    # relative time in the comment metadata resolves against fetched_at
    assert third.posted_at == NOW - timedelta(hours=3)
    assert third.parent_local_id is None


def test_wordpress_metadata_from_opengraph_and_meta() -> None:
    page = _parse("wordpress_threaded.html", url="https://civic-ledger.example/?p=77")
    assert page.title == "Council delays vote on data brokers bill"
    assert page.provenance["title"] == "og"
    assert page.published_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    assert page.provenance["published_at"] == "og"
    assert page.modified_at == datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    assert page.author == "Priya Raman"
    assert page.provenance["author"] == "meta"
    assert page.canonical_url == "https://civic-ledger.example/2026/11/20/council-delays-vote/"
    assert page.language == "en"


# -- schema.org microdata --------------------------------------------------------------------


def test_microdata_comments_and_metadata() -> None:
    page = _parse("microdata_comments.html")
    assert [c.local_id for c in page.comments] == ["c-1", "c-2", "c-3"]
    jules, sofia, marc = page.comments
    assert (jules.author, jules.body) == ("Jules", "Enfin un cadre clair, il était temps.")
    assert jules.posted_at == datetime(2026, 10, 5, 7, 15, tzinfo=UTC)
    assert sofia.parent_local_id == "c-1"
    assert sofia.body == "Un cadre sans sanctions reste un vœu pieux."
    assert sofia.posted_at == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    assert marc.parent_local_id is None and marc.posted_at is None
    assert "vœu pieux" not in page.body and "Réactions" not in page.body
    assert page.body.startswith("Le régulateur national a publié mardi")
    assert page.body.endswith("en cas de manquement.")
    assert page.author == "Claire Dubois"
    assert page.published_at == datetime(2026, 10, 5, 5, 0, tzinfo=UTC)
    assert page.language == "fr"


# -- JSON-LD ---------------------------------------------------------------------------------


def test_json_ld_metadata_with_graph_and_id_references() -> None:
    page = _parse("jsonld_comments.html")
    assert page.title == "Senators question chip export waiver"
    assert page.author == "Jo Okafor, Lee Park"
    assert page.published_at == datetime(2026, 9, 14, 18, 45, tzinfo=UTC)
    assert page.modified_at == datetime(2026, 9, 15, 7, 0, tzinfo=UTC)
    assert page.language == "en"
    assert {page.provenance[k] for k in ("title", "author", "published_at")} == {"json-ld"}


def test_json_ld_comments_nested() -> None:
    page = _parse("jsonld_comments.html")
    assert [(c.local_id, c.author, c.parent_local_id) for c in page.comments] == [
        ("cmt-1", "Rafa", None), ("cmt-2", "Imani", "cmt-1"), ("cmt-3", "Bo", None)]
    assert page.comments[1].posted_at == datetime(2026, 9, 14, 20, 30, tzinfo=UTC)
    assert page.comments[0].body == "The waiver makes the whole control regime pointless."
    assert "Sign up" not in page.body and "Home" not in page.body
    assert page.body.startswith("Two senators asked")


# -- configured selectors, relative times ----------------------------------------------------


def test_comment_selectors_override_detection() -> None:
    selectors = CommentSelectors(item=".talk .msg", body=".said", author=".who", time=".when",
                                 parent_attr="data-reply-to")
    page = _parse("custom_comments.html", comment_selectors=selectors)
    assert [(c.local_id, c.author, c.parent_local_id) for c in page.comments] == [
        ("m1", "Lena", None), ("m2", "Omar", "m1"), ("m3", "Vic", None)]
    assert page.comments[0].body == "The forms really are a nightmare to fill in."
    assert [c.posted_at for c in page.comments] == [
        NOW - timedelta(days=2), NOW - timedelta(hours=5), NOW - timedelta(hours=1)]
    assert "nightmare" not in page.body
    assert page.body.startswith("More than two hundred residents")


def test_dublin_core_metadata() -> None:
    page = _parse("custom_comments.html")
    assert page.author == "Sam Ortiz"
    assert page.published_at == datetime(2026, 8, 2, tzinfo=UTC)
    assert page.provenance["published_at"] == "meta"


@pytest.mark.parametrize(("text", "delta"), [
    ("2 days ago", timedelta(days=2)), ("3 hours ago", timedelta(hours=3)),
    ("an hour ago", timedelta(hours=1)), ("a minute ago", timedelta(minutes=1)),
    ("1 week ago", timedelta(weeks=1)), ("yesterday", timedelta(days=1)),
    ("just now", timedelta(0)), ("Posted 10 mins ago", timedelta(minutes=10)),
])
def test_relative_comment_times(text: str, delta: timedelta) -> None:
    from tasks.extract import comment_time

    assert comment_time(text, NOW) == NOW - delta


# -- metadata from each kind of source --------------------------------------------------------

_BODY = ("<p>" + "The committee heard testimony from regulators, researchers and industry "
         "representatives about the proposal, which has been debated for months. " * 3 + "</p>")


def _html(head: str = "", before: str = "", after: str = "") -> str:
    return (f"<html><head>{head}</head><body><article>{before}<div class='entry-content'>"
            f"{_BODY}</div>{after}</article></body></html>")


def test_time_element_and_byline() -> None:
    page = parse_page(_html(before="<h1>Hearing ends</h1><p class='byline'>By Ines Duarte</p>"
                            "<time datetime='2026-03-04T10:00:00+01:00'>March 4</time>"),
                      "https://x.example/story", fetched_at=NOW)
    assert page.published_at == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert page.provenance["published_at"] == "time"
    assert page.author == "Ines Duarte"
    assert page.provenance["author"] == "byline"
    assert page.title == "Hearing ends"
    assert "Ines Duarte" not in page.body


def test_date_from_url_is_the_last_resort() -> None:
    page = parse_page(_html(), "https://x.example/2026/11/28/some-story/", fetched_at=NOW)
    assert page.published_at == datetime(2026, 11, 28, tzinfo=UTC)
    assert page.provenance["published_at"] == "url"


def test_naive_dates_are_utc_and_future_dates_are_dropped() -> None:
    page = parse_page(_html(head="<meta name='date' content='2026-05-06 07:08'>"),
                      "https://x.example/a", fetched_at=NOW)
    assert page.published_at == datetime(2026, 5, 6, 7, 8, tzinfo=UTC)
    future = parse_page(_html(head="<meta name='date' content='2031-01-01'>"),
                        "https://x.example/a", fetched_at=NOW)
    assert future.published_at is None


def test_body_text_is_normalised() -> None:
    page = parse_page(_html(after="<p>Cafe\u0301   said \u201cno\u201d\u00a0\u200b today, "
                            "and it was the council that listened in the end.</p>"),
                      "https://x.example/a", fetched_at=NOW)
    assert "Café said “no” today" in page.body  # NFC, spaces collapsed, quotes as written


# -- encodings -------------------------------------------------------------------------------


def test_gbk_page_declared_as_gb2312() -> None:
    page = _parse("gbk.html")
    assert page.title == "工信部发布数据安全新规"
    assert "镕堃喆" in page.body  # GBK-only characters: gb2312 is read as its superset
    assert "首页" not in page.body


def test_gbk_page_without_declaration_is_detected() -> None:
    page = _parse("gbk_undeclared.html")
    assert "数据出境安全评估" in page.body


def test_windows_1252_page_declared_as_latin1() -> None:
    page = _parse("windows1252.html")
    assert page.title == "Café owners say “no” to new fees"
    assert "up to €450 a year" in page.body and "Zoë Müller" in page.body


def test_http_header_encoding_wins() -> None:
    data = _page("windows1252.html").replace(b"iso-8859-1", b"utf-8")
    page = parse_page(data, "https://x.example/a", fetched_at=NOW, encoding="windows-1252")
    assert "crêperie" in page.body


@pytest.mark.parametrize(("name", "phrase"), [("shift_jis.html", "個人情報保護委員会"),
                                              ("big5.html", "數位中介服務法")])
def test_east_asian_encodings(name: str, phrase: str) -> None:
    assert phrase in _parse(name).body


def test_invalid_bytes_never_crash() -> None:
    data = _page("wordpress_threaded.html").replace(b"postponed", b"post\xff\xfeponed")
    page = parse_page(data, "https://x.example/a", fetched_at=NOW)
    assert "city council" in page.body


def test_garbage_bytes_raise_parse_error() -> None:
    rng = random.Random(7)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    for data in (noise, b"", b"\x00\x00\x00", b"<html><body><nav>Home</nav></body></html>"):
        with pytest.raises(ParseError):
            parse_page(data, "https://x.example/a", fetched_at=NOW)


def test_str_input_is_accepted() -> None:
    page = parse_page(_page("wordpress_threaded.html").decode("utf-8"), "https://x.example/a",
                      fetched_at=NOW)
    assert page.body.startswith("The city council")


def test_malformed_canonical_and_comment_page_links_never_fail_a_page() -> None:
    from tasks.crawl.more_comments import comment_page_links

    body = "".join(f"<p>Paragraph {i} about export controls on advanced chips and the "
                   f"rules that officials said would tighten next year.</p>" for i in range(5))
    html = (f'<html><head><title>Chips</title><link rel="canonical" href="http://[::1:bad/x">'
            f"</head><body><article><h1>Chips</h1>{body}</article>"
            f'<div id="comments"><a href="http://[::1:bad/?cpage=2">Next</a>'
            f'<a href="/a.html?cpage=3">Later</a></div></body></html>')
    page = parse_page(html.encode(), "https://news.example/a.html",
                      fetched_at=datetime(2026, 11, 29, tzinfo=UTC))
    assert page.canonical_url is None and page.title == "Chips"
    assert comment_page_links(html, "https://news.example/a.html") == [
        "https://news.example/a.html?cpage=3"]
