"""Metadata second opinions (issue #19): a byline's site name or "Staff" is never returned as
a person, and htmldate gives the date when the page's own markup gives none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.extract import parse_page

NOW = datetime(2026, 11, 29, tzinfo=UTC)
BODY = "".join(f"<p>Paragraph {i}: the regulator published its draft rules on chip exports "
               f"today, and industry groups said they would respond within weeks.</p>"
               for i in range(5))


def _page(head: str = "", byline: str = "", url: str = "https://www.theledger.example/x"
          ) -> tuple[str | None, datetime | None]:
    html = (f"<html><head><title>Draft rules</title>{head}</head><body><article>"
            f"<h1>Draft rules</h1>{byline}{BODY}</article></body></html>")
    page = parse_page(html, url, fetched_at=NOW)
    return page.author, page.published_at


@pytest.mark.parametrize("name", ["Staff", "The Ledger Staff", "Ledger Staff Writers",
                                  "Newsroom", "The Ledger", "theledger.example", "TheLedger"])
def test_a_site_name_or_staff_is_no_person(name: str) -> None:
    head = ("<meta property='og:site_name' content='The Ledger'>"
            f"<meta name='author' content='{name}'>")
    assert _page(head)[0] is None


def test_the_byline_person_replaces_a_staff_credit() -> None:
    head = "<meta name='author' content='Ledger Staff'>"
    byline = "<p class='byline'>By Dana Reyes, Staff Writer</p>"
    assert _page(head, byline)[0] == "Dana Reyes"


def test_people_next_to_a_desk_are_kept() -> None:
    head = "<meta name='author' content='Dana Reyes, Newsroom'>"
    assert _page(head)[0] == "Dana Reyes"


def test_an_organisation_declared_in_json_ld_is_kept() -> None:
    head = ("<script type='application/ld+json'>{\"@type\": \"NewsArticle\", \"headline\": "
            "\"Draft rules\", \"author\": {\"@type\": \"Organization\", \"name\": \"The Ledger\"}}"
            "</script>")
    assert _page(head)[0] == "The Ledger"


def test_htmldate_gives_the_date_the_markup_does_not() -> None:
    byline = "<div class='info'><span>Posted: Fri 6:45 PM, Nov 20, 2026</span></div>"
    _author, when = _page(byline=byline, url="https://news.example/story")
    assert when is not None and when.date().isoformat() == "2026-11-20"


def test_no_date_at_all_stays_none() -> None:
    assert _page(url="https://news.example/story")[1] is None
