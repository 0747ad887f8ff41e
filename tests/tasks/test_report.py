"""The nightly briefing page (tasks/report/page.py) on a real DuckDB file with two runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest

from schemas.config import AlertRule
from schemas.errors import LoadError
from schemas.ids import article_id_for, claim_id_for, claim_key_for, comment_id_for
from schemas.models import (
    Article,
    Claim,
    Comment,
    FetchResult,
    PageOutcome,
    Reject,
    RunSummary,
    Stance,
)
from tasks.alerts import plan_alerts
from tasks.report import render_report, write_report
from tasks.store import LoadBatch, begin_run, finish_run, load_batch, open_for_write, query

NOW = datetime(2026, 11, 29, 6, tzinfo=UTC)
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SVG = '"><svg onload=alert(1)>'
EVIL_ENTITY = "<b onmouseover=alert(1)>Evil Corp</b>"
RULE = AlertRule(name="tracked", entities=("Huawei", "Nvidia", "DeepSeek"),
                 channels=("json://127.0.0.1:9/hook",), mode="immediate")


def _day(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _article(source: str, path: str, title: str, published: datetime) -> Article:
    url = f"https://{source}.example/{path}"
    return Article(article_id=article_id_for(url, None), source=source, url=url, title=title,
                   body="Body.", content_hash=path, fetched_at=published,
                   published_at=published)


def _claim(article: Article, speaker: str | None, content: str, *entities: str,
           kind: str = "direct") -> Claim:
    return Claim(claim_id=claim_id_for(article.article_id, speaker, content),
                 article_id=article.article_id, speaker=speaker, speaker_entity=None,
                 cue="said" if speaker else None, content=content,
                 sentence=f"{speaker} said {content}.", quote_kind=kind,  # type: ignore[arg-type]
                 entities=entities, claim_key=claim_key_for(content))


def _comments(article: Article, topic: str, labels: str, posted: datetime
              ) -> tuple[list[Comment], list[Stance]]:
    """One comment per letter of `labels` (f/a/n), an hour apart."""
    names = {"f": "favor", "a": "against", "n": "neutral"}
    comments, stances = [], []
    for i, letter in enumerate(labels):
        cid = comment_id_for(article.article_id, f"{topic}-{i}")
        comments.append(Comment(comment_id=cid, article_id=article.article_id,
                                author=f"reader{i}", body=f"Comment {i}.",
                                posted_at=posted + timedelta(hours=i)))
        stances.append(Stance(comment_id=cid, topic=topic, label=names[letter],  # type: ignore[arg-type]
                              score=0.8))
    return comments, stances


def _fetch(url: str, source: str, status: int | None, error: str | None = None
           ) -> FetchResult:
    return FetchResult(url=url, source=source, final_url=url, status=status,
                       ok=error is None and status in (200, 304), error=error,
                       fetched_at=NOW, bytes=100, not_modified=status == 304)


# the first run (27 Nov)
A1 = _article("wire", "2026/11/27/chips.html", "Huawei gains", _day(27))
C1 = _claim(A1, "David Sacks", "Huawei is closing the gap", "Huawei")
C2 = _claim(A1, "Jensen Huang", "export rules hurt American firms", "Nvidia")
# the second run (29 Nov): the same claim in two outlets, one claim already known, and
# an article made of markup
A2 = _article("wire", "2026/11/28/ascend.html", "Ascend output doubles", _day(28, 8))
A3 = _article("tribune", "2026/11/28/ascend-yields.html", "Yields at SMIC", _day(28, 15))
A4 = _article("tribune", "2026/11/29/sacks.html", "Sacks again", _day(29, 3))
A5 = _article(XSS_SVG, "2026/11/29/x.html", f"Title {XSS_SCRIPT}", _day(29, 4))
A5 = A5.model_copy(update={"url": "javascript:alert(1)"})
SHARED = "Huawei will ship 600,000 Ascend chips next year"
C3 = _claim(A2, "Lutnick", SHARED, "Huawei")
C4 = _claim(A3, "Lutnick", SHARED, "Huawei")
C5 = _claim(A4, "David Sacks", "Huawei is closing the gap", "Huawei")  # known key, new outlet
C6 = _claim(A3, None, "DeepSeek trained on smuggled chips", "DeepSeek", "Nvidia",
            kind="indirect")
C7 = _claim(A5, XSS_SVG, f"claim {XSS_IMG} {XSS_SCRIPT}", "Huawei", EVIL_ENTITY)
C8 = _claim(A2, "Jensen Huang", "China is nanoseconds behind", "Nvidia", "Huawei")


def build_db(db: Path) -> Path:
    """Two completed runs and a failed one; several entities, days, outlets and topics."""
    begin_run(db, "r1", _day(27, 2))
    co1, st1 = _comments(A1, "export-controls", "ffa", _day(27, 10))
    load_batch(db, LoadBatch(
        run_id="r1", articles=[A1], claims=[C1, C2], comments=co1, stances=st1,
        fetch_log=[_fetch(A1.url, "wire", 200)], alerts=plan_alerts([C1, C2], [RULE])))
    finish_run(db, RunSummary(run_id="r1", started_at=_day(27, 2), finished_at=_day(27, 3),
                              status="completed", articles_new=1, claims_new=2))

    begin_run(db, "r2", _day(29, 2))
    co2, st2 = _comments(A2, "export-controls", "aan", _day(28, 9))
    co3, st3 = _comments(A3, "open-models", "fn", _day(28, 16))
    co5, st5 = _comments(A5, "export-controls", "a", _day(29, 4))
    co5 = [c.model_copy(update={"body": f"{XSS_SCRIPT} {XSS_IMG}", "author": XSS_SVG})
           for c in co5]
    missing = "https://wire.example/2026/11/01/missing.html"
    claims = [C3, C4, C5, C6, C7, C8]
    load_batch(db, LoadBatch(
        run_id="r2", articles=[A2, A3, A4, A5], claims=claims,
        comments=co2 + co3 + co5, stances=st2 + st3 + st5,
        pages=[PageOutcome(url=missing, source="wire", fetch=None, error="HTTP 404")],
        fetch_log=[_fetch(A2.url, "wire", 200), _fetch(A1.url, "wire", 304),
                   _fetch(missing, "wire", 404, "HTTP 404 Not Found"),
                   _fetch(A3.url, "tribune", 200),
                   _fetch("https://tribune.example/slow.html", "tribune", None,
                          "timed out after 20 s"),
                   _fetch(A4.url, "tribune", 200)],
        rejects=[Reject(url=missing, source="wire", stage="fetch", reason="HTTP 404 Not Found"),
                 Reject(url="https://tribune.example/empty.html", source="tribune",
                        stage="parse", reason=f"no article body {XSS_IMG}")],
        alerts=plan_alerts(claims, [RULE])))
    finish_run(db, RunSummary(run_id="r2", started_at=_day(29, 2), finished_at=_day(29, 2),
                              status="completed", articles_new=4, comments_new=6,
                              claims_new=6, alerts_sent=3))
    begin_run(db, "r3", _day(29, 5))  # a later run that failed: never the default
    finish_run(db, RunSummary(run_id="r3", started_at=_day(29, 5), status="failed"))
    return db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("report") / "briefing.duckdb")


@pytest.fixture(scope="module")
def page(db: Path) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(render_report(db, now=NOW))


def _section(page: lxml.html.HtmlElement, entity: str) -> lxml.html.HtmlElement:
    [heading] = [h for h in page.iter("h2") if h.text_content() == entity]
    return heading.getparent().getparent()


def _cards(section: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    return list(section.find_class("claim"))


def _data(figure: lxml.html.HtmlElement) -> list[list[str]]:
    return [[cell.text_content() for cell in row] for row in figure.iter("tr")][1:]


def test_new_claims_of_the_latest_completed_run_grouped_by_claim(
        page: lxml.html.HtmlElement) -> None:
    assert "r2" in page.find_class("meta")[0].text_content()  # not the failed r3
    huawei = _cards(_section(page, "Huawei"))
    texts = [c.find("blockquote").text_content() for c in huawei]
    # the shared claim is one card with both outlets, and comes first
    assert texts[0] == f"“{SHARED}”"
    assert huawei[0].find("blockquote").get("title") == C3.sentence  # the whole sentence
    assert [li.find_class("src")[0].text for li in huawei[0].iter("li")] == ["wire", "tribune"]
    assert [a.get("href") for a in huawei[0].iter("a")] == [A2.url, A3.url]
    assert "Lutnick" in huawei[0].find_class("who")[0].text_content()
    assert len(huawei) == 4  # shared, known-with-new-outlet, markup claim, Jensen Huang
    # the claim first stored in r1 is not new, but its new outlet is, marked as known
    [known] = [c for c in huawei if "closing the gap" in c.text_content()]
    assert "known" in known.get("class")
    assert "Known claim: first carried by wire, 27 Nov 09:00 (1 earlier outlet)" \
        in known.text_content()
    assert [a.get("href") for a in known.iter("a")] == [A4.url]
    # an entity without a speaker-attributed claim still gets its card
    [deepseek] = _cards(_section(page, "DeepSeek"))
    assert "Unattributed" in deepseek.text_content()


def test_entities_ordered_by_news_and_at_a_glance(page: lxml.html.HtmlElement) -> None:
    rows = [[td.text_content() for td in tr.iter("td")]
            for tr in page.find_class("glance")[0].iter("tr")][1:]
    assert [r[0] for r in rows] == ["Huawei", "Nvidia", EVIL_ENTITY, "DeepSeek"]  # ties: by name
    assert rows[0][1:4] == ["4 new", "6", "2"]  # new cards, claims in window, today


def test_a_chosen_run_window_and_entity_list(db: Path) -> None:
    html = render_report(db, run_id="r1", tracked=["Nvidia", "Nobody"], now=NOW,
                         since=NOW - timedelta(days=2))
    page = lxml.html.document_fromstring(html)
    assert [h.text_content() for h in page.iter("h2") if h.getparent().tag == "header"] \
        == ["Nvidia", "Nobody"]
    [card] = _cards(_section(page, "Nvidia"))
    assert "export rules hurt American firms" in card.text_content()
    assert "first run" in page.find_class("meta")[0].text_content()
    chart = _section(page, "Nvidia").find(".//figure")
    # 27 .. 29 Nov; the r1 claim was published on the 27th, r2's two on the 28th and 29th
    assert _data(chart) == [["2026-11-27", "1"], ["2026-11-28", "2"], ["2026-11-29", "0"]]
    assert "No new claim in this run" in _section(page, "Nobody").text_content()


def test_charts_are_accessible_svg_with_their_data(page: lxml.html.HtmlElement) -> None:
    charts = page.xpath("//svg")
    assert len(charts) >= 6
    for svg in charts:
        assert svg.get("role") == "img"
        title, desc = svg[0], svg[1]
        assert (title.tag, desc.tag) == ("title", "desc") and title.text and desc.text
        assert set(svg.get("aria-labelledby").split()) == {title.get("id"), desc.get("id")}
        details = svg.getparent().find("details")
        assert details is not None and details.find(".//table") is not None
        assert svg.xpath(".//text[@class='tick']"), "axis tick labels"
    ids = page.xpath("//@id")
    assert len(ids) == len(set(ids))
    overview = page.xpath("//svg[title='Claims per day, by entity']")[0]
    assert {t.text for t in overview.xpath(".//text[@class='legend']")} >= {"Huawei", "Nvidia"}
    # Huawei: r1's claim on the 27th; A2 (2 claims) on the 28th, A3 on the 28th; A4, A5 the 29th
    huawei = _section(page, "Huawei").find(".//figure")
    assert _data(huawei)[-3:] == [["2026-11-27", "1"], ["2026-11-28", "3"],
                                  ["2026-11-29", "2"]]
    assert len(_data(huawei)) == 8  # 22 .. 29 Nov


def test_top_speakers_count_claims_and_outlets(page: lxml.html.HtmlElement) -> None:
    table = _section(page, "Huawei").find_class("bars")[0]
    rows = [[c.text_content() for c in tr][:3] for tr in table.iter("tr")][1:]
    assert rows[:2] == [["David Sacks", "1", "2"], ["Lutnick", "1", "2"]]
    assert ["Jensen Huang", "1", "1"] in rows


def test_stance_share_per_topic_and_day(page: lxml.html.HtmlElement) -> None:
    nvidia = _section(page, "Nvidia")
    # comments under articles about Nvidia: A1 (f f a), A2 (a a n), A3 (open-models: f n)
    topics = [t.find_class("name")[0].text for t in nvidia.find_class("topic")]
    assert topics == ["export-controls", "open-models"]
    legend = nvidia.find_class("sharelegend")[0].text_content()
    assert legend == "favor 2 · neutral 1 · against 3 · 6 comments"
    days = _data(nvidia.find_class("topic")[0].find("figure"))
    assert days[-3:] == [["2026-11-27", "3", "2", "0", "1"], ["2026-11-28", "3", "0", "1", "2"],
                         ["2026-11-29", "0", "0", "0", "0"]]
    # all comments: each counted once although its article is about several entities
    overall = page.xpath("//section[h2='Reader comments: stance per topic']")[0]
    assert overall.find_class("sharelegend")[0].text_content() == \
        "favor 2 · neutral 1 · against 4 · 7 comments"
    # the 90% Wilson intervals of 2/6 and 3/6, and a warning that six comments are few
    assert nvidia.find_class("sharelegend")[1].text_content() == \
        "90% interval: favor 12%–65% · against 22%–78% (too few comments to read a trend)"


def test_stance_share_gives_the_comments_and_a_90_percent_interval(db: Path) -> None:
    from schemas.stats import share_interval

    rows = query(db, "SELECT comments, favor_share, favor_low, favor_high, against_share, "
                     "against_low, against_high FROM stance_share")[1]
    assert rows
    for n, favor, f_low, f_high, against, a_low, a_high in rows:
        assert f_low <= favor <= f_high and a_low <= against <= a_high
        assert (f_low, f_high) == pytest.approx(share_interval(round(favor * n), n))
        assert (a_low, a_high) == pytest.approx(share_interval(round(against * n), n))
    one = [r for r in rows if r[0] == 1]
    assert one and all(r[3] - r[2] > 0.5 for r in one)  # one comment: a wide interval


def test_failures_per_source_with_why(page: lxml.html.HtmlElement) -> None:
    sources = page.get_element_by_id("sources")
    summary = {tr[0].text_content(): [td.text_content() for td in tr[1:]]
               for tr in sources.find(".//table").iter("tr") if tr[0].tag == "th"
               and tr.getparent().tag == "tbody"}
    # new items found, fetches, ok, 304, failed, deferred, expired, problems
    assert summary["wire"] == ["0", "3", "1", "1", "1", "0", "0", "1"]
    assert summary["tribune"] == ["0", "3", "2", "0", "1", "0", "0", "2"]
    problems = [[td.text_content() for td in tr]
                for tr in sources.find_class("problems")[0].iter("tr")][1:]
    assert ["wire", "fetch", "404", "https://wire.example/2026/11/01/missing.html",
            "HTTP 404 Not Found"] in problems
    assert ["tribune", "fetch", "–", "https://tribune.example/slow.html",
            "timed out after 20 s"] in problems
    assert ["tribune", "parse", "–", "https://tribune.example/empty.html",
            f"no article body {XSS_IMG}"] in problems


def test_article_text_cannot_inject_markup(db: Path) -> None:
    html = render_report(db, now=NOW)
    page = lxml.html.document_fromstring(html)
    assert page.xpath("//script") == []
    assert page.xpath("//img") == [] and not page.xpath("//b[contains(., 'Evil')]")
    assert all(svg.get("class") == "chart" for svg in page.xpath("//svg"))
    for element in page.iter():
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert "javascript:" not in value.lower(), (element.tag, name)
    text = page.text_content()
    for payload in (XSS_SCRIPT, XSS_IMG, XSS_SVG, EVIL_ENTITY):
        assert payload in text  # shown to the reader as text, never as markup
    # a javascript: article URL is not a link
    [card] = [c for c in _cards(_section(page, "Huawei")) if XSS_IMG in c.text_content()]
    assert card.xpath(".//a") == [] and f"Title {XSS_SCRIPT}" in card.text_content()


def test_page_is_self_contained(db: Path) -> None:
    html = render_report(db, now=NOW)
    page = lxml.html.document_fromstring(html)
    assert page.xpath("//link | //iframe | //object | //embed | //*[@src]") == []
    csp = page.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0]
    assert "default-src 'none'" in csp and "script" not in csp
    style = "".join(page.xpath("//style/text()"))
    assert "@import" not in style and "url(" not in style
    assert not re.search(r"https?://(?!(wire|tribune)\.example/|www\.w3\.org/2000/svg)", html)


def test_write_report_replaces_the_file_atomically(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "briefing.html"
    assert write_report(db, out, now=NOW) == out
    first = out.read_text(encoding="utf-8")
    assert first.startswith("<!DOCTYPE html>") and "Huawei" in first
    write_report(db, out, now=NOW + timedelta(days=1), run_id="r1")
    assert out.read_text(encoding="utf-8") != first
    assert sorted(p.name for p in out.parent.iterdir()) == ["briefing.html"]


def test_an_unknown_run_or_database_is_an_error(db: Path, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no run 'r9'"):
        render_report(db, run_id="r9", now=NOW)
    with pytest.raises(LoadError, match="no such database"):
        render_report(tmp_path / "missing.duckdb", now=NOW)


def test_a_database_without_runs(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    with open_for_write(db):
        pass
    page = lxml.html.document_fromstring(render_report(db, now=NOW))
    assert "No completed run yet" in page.text_content()
    assert "No tracked entity has any claim yet" in page.text_content()
    assert page.xpath("//svg") == []
