"""The body chain's choice (tasks/extract/chain.py), with a stub second opinion: asked only in
doubt, taken when it extends a body that was cut short or when ours is off the subject,
never for a body that holds the page; an article *about* privacy keeps its paragraphs."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.extract import parse_page

NOW = datetime(2026, 11, 29, tzinfo=UTC)
TITLE = "Regulator fines retailer over ignored privacy opt-out requests"
PARAS = [
    "The state privacy regulator fined a national retailer on Monday for ignoring opt-out "
    "requests sent through browsers' global privacy control, the first such penalty.",
    "Under the law, shoppers may opt out of the sale of their personal information, and the "
    "regulator said the retailer kept sharing data with advertising partners for months.",
    "The retailer said it disagreed with the finding but would change its systems and pay the "
    "fine, while consumer groups called the penalty small for a company of its size.",
    "Officials said further cases were under review and urged other firms to check that their "
    "websites honour the signal, which several browsers now send by default.",
]


def _parse(html: str, second: str | None = None) -> tuple[str, str, list[str]]:
    asked: list[str] = []

    def opinion(page: str, url: str) -> str:
        asked.append(url)
        return second or ""

    page = parse_page(html, "https://news.example/story", fetched_at=NOW,
                      second_opinion=opinion)
    return page.body, page.extracted_by, asked


def _html(body: str, extra: str = "") -> str:
    return (f"<html><head><title>{TITLE}</title></head><body><article><h1>{TITLE}</h1>"
            f"{body}</article>{extra}</body></html>")


def test_an_article_about_privacy_keeps_its_paragraphs() -> None:
    body, by, asked = _parse(_html("".join(f"<p>{p}</p>" for p in PARAS)))
    assert all(p in body for p in PARAS) and by == "dom" and asked == []


def test_a_cut_body_is_extended_by_an_opinion_that_holds_it() -> None:
    # the rest of the story is hidden behind a "read more" button: cleaning drops it
    html = _html(f"<p>{PARAS[0]}</p><button>Read more</button><div style='display:none'>"
                 + "".join(f"<p>{p}</p>" for p in PARAS[1:]) + "</div>")
    body, by, asked = _parse(html, "\n\n".join(PARAS))
    assert asked and by == "trafilatura" and all(p in body for p in PARAS)


def test_a_longer_opinion_that_does_not_hold_ours_is_not_taken() -> None:
    html = _html(f"<p>{PARAS[0]}</p><button>Read more</button><div style='display:none'>"
                 + "".join(f"<p>{p}</p>" for p in PARAS[1:]) + "</div>")
    other = "\n\n".join(f"Unrelated paragraph {i} about the weather in the mountains, with "
                        f"snow expected on the higher passes later this week." for i in range(8))
    body, by, _ = _parse(html, other)
    assert by == "dom" and PARAS[0] in body and "weather" not in body


def test_a_second_opinion_never_brings_comments() -> None:
    comments = ("<ol class='commentlist'><li class='comment' id='comment-1'>"
                "<div class='comment-author'><cite class='fn'>Ann</cite></div>"
                "<div class='comment-content'><p>I never opted out of anything, and nobody "
                "asked me about my personal information either.</p></div></li></ol>")
    html = _html(f"<p>{PARAS[0]}</p>", comments)
    second = "\n\n".join([*PARAS, "I never opted out of anything, and nobody asked me about "
                          "my personal information either."])
    body, by, asked = _parse(html, second)
    assert asked and by == "trafilatura"
    assert "nobody asked me" not in body and all(p in body for p in PARAS)
