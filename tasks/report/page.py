"""The nightly briefing: one self-contained HTML page of what is new about each entity.

Per tracked entity: the run's new claims (one card per claim, listing every outlet that
carries it), claims per day over the window, the top speakers and the comment stance per
topic; then, per source, what this run failed to fetch or dropped, and why.

The page opens offline and runs no script: styles are inlined, charts are inline SVG drawn
here, and a Content-Security-Policy forbids scripts and any outside request. Everything read
from the database passes through `html.escape`, and links are kept only for http(s) URLs,
so an article can never inject markup, whatever it contains.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from prefect import task

from schemas.stats import share_interval
from tasks.alerts import slug
from tasks.report.data import (
    UNATTRIBUTED,
    Briefing,
    ClaimGroup,
    EntityReport,
    Outlet,
    SourceHealth,
    StanceSummary,
    read_briefing,
    utc,
)
from tasks.report.style import CSS
from tasks.report.svg import (
    STANCE_ORDER,
    colour,
    column_chart,
    day_label,
    e,
    line_chart,
    share_chart,
)

DEFAULT_WINDOW = timedelta(days=7)
MAX_CARDS = 60  # per entity; the rest is one query away (`policywatch claims`)
OVERVIEW_LINES = 8  # more lines than this on one chart cannot be told apart
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
       "form-action 'none'")


def render_report(db_path: Path | str, *, since: datetime | None = None,
                  run_id: str | None = None, tracked: Sequence[str] | None = None,
                  now: datetime | None = None) -> str:
    """The briefing page as HTML.

    `since`: start of the window the charts cover (default: 7 days before `now`);
    `run_id`: the run whose new claims are listed (default: the latest completed run);
    `tracked`: the entities to report on (default: every entity with a claim).
    """
    now = utc(now or datetime.now(UTC))
    since = min(utc(since), now) if since else now - DEFAULT_WINDOW
    briefing = read_briefing(db_path, since=since, now=now, run_id=run_id, tracked=tracked)
    return _page(briefing)


def write_report(db_path: Path | str, out: Path | str, *, since: datetime | None = None,
                 run_id: str | None = None, tracked: Sequence[str] | None = None,
                 now: datetime | None = None) -> Path:
    """Render the briefing into `out`, atomically: a reader never sees half a page."""
    html = render_report(db_path, since=since, run_id=run_id, tracked=tracked, now=now)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(html)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# -- small pieces -----------------------------------------------------------------------------


def _when(at: datetime, now: datetime) -> str:
    at = utc(at)
    stamp = at.strftime("%H:%M")
    if at.date() == now.date():
        return f"today {stamp}"
    if at.date() == now.date() - timedelta(days=1):
        return f"yesterday {stamp}"
    return f"{at.day} {at.strftime('%b')}{'' if at.year == now.year else at.strftime(' %Y')}" \
           f" {stamp}"


def _time(at: datetime, now: datetime, label: str = "") -> str:
    return (f'<time datetime="{e(utc(at).isoformat())}" title="{e(label)}'
            f'{e(utc(at).strftime("%Y-%m-%d %H:%M UTC"))}">{e(_when(at, now))}</time>')


def _link(url: str, text: str) -> str:
    """A link only to http(s): a `javascript:` URL from a page stays inert text."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in {"http", "https"}:
        return e(text)
    return (f'<a href="{e(url)}" title="{e(text)}" rel="noopener noreferrer nofollow">'
            f"{e(text)}</a>")


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return (parts.netloc + parts.path)[:90] or url[:90]


def _data_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = "".join(f'<th scope="col"{" class=num" if i else ""}>{e(h)}</th>'
                    for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(
        f'<th scope="row">{e(v)}</th>' if i == 0 else f'<td class="num">{e(v)}</td>'
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return (f"<details><summary>Data table</summary><table><thead><tr>{cells}</tr></thead>"
            f"<tbody>{body}</tbody></table></details>")


def _figure(caption: str, svg: str, table: str) -> str:
    return f"<figure><figcaption>{e(caption)}</figcaption>{svg}{table}</figure>"


def _pct(part: int, total: int) -> str:
    return f"{part / total:.0%}" if total else "–"


# -- sections -----------------------------------------------------------------------------


def _masthead(b: Briefing) -> str:
    run = b.run
    if run:
        finished = run.finished_at or run.started_at
        since_last = (f" · new since run <code>{e(run.previous[0])}</code> "
                      f"({e(run.previous[1].strftime('%d %b %H:%M UTC'))})"
                      if run.previous else " · first run")
        about = (f"Run <code>{e(run.run_id)}</code> ({e(run.status)}, "
                 f"{e(finished.strftime('%d %b %Y %H:%M UTC'))}){since_last}")
    else:
        about = "No completed run yet"
    window = (f"{day_label(b.days[0])} – {day_label(b.days[-1])} {b.days[-1].year}"
              if b.days else "")
    return (f'<header class="masthead"><div class="page">'
            f'<div class="kicker">policywatch · nightly briefing</div>'
            f'<h1>What is new, {e(b.now.strftime("%A %d %B %Y"))}</h1>'
            f'<p class="meta">{about} · charts cover {e(window)} (UTC)</p>'
            f"</div></header>")


def _kpis(b: Briefing) -> str:
    keys = {g.claim_key for r in b.entities for g in r.new}
    with_news = sum(1 for r in b.entities if r.new)
    problems = sum(len(s.problems) for s in b.sources)
    run = b.run
    items = [
        (len(keys), "new claims about tracked entities", "good" if keys else ""),
        (f"{with_news} / {len(b.entities)}", "entities with news", ""),
        (run.articles_new if run else 0, "new articles", ""),
        (run.comments_new if run else 0, "new comments", ""),
        (problems, "failures this run", "bad" if problems else ""),
    ]
    if run and (run.alerts_sent or run.alerts_failed):
        items.append((f"{run.alerts_sent} / {run.alerts_failed}", "alerts sent / failed",
                      "bad" if run.alerts_failed else ""))
    cells = []
    for n, label, cls in items:
        text = f'<a href="#sources">{e(label)}</a>' if label.startswith("fail") else e(label)
        cells.append(f'<div class="kpi {cls}"><div class="n">{e(n)}</div>'
                     f'<div class="l">{text}</div></div>')
    return f'<section class="kpis" aria-label="This run in numbers">{"".join(cells)}</section>'


def _glance(b: Briefing, anchors: dict[str, str], colours: dict[str, str]) -> str:
    if not b.entities:
        return ('<section class="panel"><h2>At a glance</h2><p class="empty-state">'
                "No tracked entity has any claim yet.</p></section>")
    rows = []
    for r in b.entities:
        top = r.speakers[0][0] if r.speakers else "–"
        new = f'<span class="pill new">{len(r.new)} new</span>' if r.new else "–"
        rows.append(
            f'<tr class="{"" if r.new or r.window_total else "quiet"}">'
            f'<td class="ent"><span class="swatch" style="background:{colours[r.name]}">'
            f'</span><a href="#{anchors[r.name]}">{e(r.name)}</a></td>'
            f'<td class="num">{new}</td>'
            f'<td class="num">{r.window_total}</td>'
            f'<td class="num">{r.per_day[-1] if r.per_day else 0}</td>'
            f"<td>{e(top)}</td></tr>")
    return ('<section class="panel"><h2>At a glance</h2><table class="glance"><thead><tr>'
            '<th scope="col">Entity</th><th scope="col" class="num">This run</th>'
            f'<th scope="col" class="num">Claims, {len(b.days)} days</th>'
            '<th scope="col" class="num">Today</th><th scope="col">Most quoted</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _overview_chart(b: Briefing, colours: dict[str, str]) -> str:
    shown = sorted((r for r in b.entities if r.window_total),
                   key=lambda r: -r.window_total)[:OVERVIEW_LINES]
    if not shown:
        return ""
    series = [(r.name, colours[r.name], r.per_day) for r in shown]
    desc = "; ".join(f"{r.name}: {r.window_total} claims" for r in shown)
    svg = line_chart(b.days, series, "Claims per day, by entity", desc)
    table = _data_table(["Day", *(r.name for r in shown)],
                        [[d.isoformat(), *(r.per_day[i] for r in shown)]
                         for i, d in enumerate(b.days)])
    more = len([r for r in b.entities if r.window_total]) - len(shown)
    note = (f'<p class="note">The {len(shown)} busiest entities; {more} more in their own '
            "sections below.</p>" if more > 0 else "")
    return ('<section class="panel"><h2>Claims per day</h2><p class="note">Claims (one per '
            "outlet) naming each entity, by the day of publication, UTC.</p>"
            f'{_figure("Claims per day, by entity", svg, table)}{note}</section>')


def _share_bar(total: dict[str, int]) -> str:
    n = sum(total.values())
    label = ", ".join(f"{k} {_pct(total.get(k, 0), n)}" for k in STANCE_ORDER)
    segments = "".join(
        f'<span class="{k}" style="width:{100 * total.get(k, 0) / n:.2f}%">'
        f'{_pct(total.get(k, 0), n) if total.get(k, 0) / n >= 0.12 else ""}</span>'
        for k in STANCE_ORDER if total.get(k, 0))
    legend = " · ".join(f'<b class="{k}">{k}</b> {total.get(k, 0)}' for k in STANCE_ORDER)
    spread = " · ".join(f"{k} {low:.0%}–{high:.0%}" for k in ("favor", "against")
                        for low, high in [share_interval(total.get(k, 0), n)])
    return (f'<div class="sharebar" role="img" aria-label="{e(label)} of {n} comments">'
            f'{segments}</div><div class="sharelegend">{legend} · {n} comments</div>'
            f'<div class="sharelegend" title="90% Wilson interval: where the share among all '
            f'such comments may lie, given only {n}">90% interval: {spread}'
            f'{" (too few comments to read a trend)" if n < 10 else ""}</div>')


def _stance_block(summary: StanceSummary, days: Sequence[date], scope: str) -> str:
    n_day = [sum(c.values()) for c in summary.per_day]
    shares = [{k: c.get(k, 0) / n for k in STANCE_ORDER} if n else {}
              for c, n in zip(summary.per_day, n_day, strict=True)]
    total = sum(summary.total.values())
    desc = (f"{scope}: of {total} comments on {summary.topic}, "
            + ", ".join(f"{_pct(summary.total.get(k, 0), total)} {k}" for k in STANCE_ORDER))
    svg = share_chart(days, shares, n_day, f"Comment stance on {summary.topic} per day", desc)
    table = _data_table(["Day", "Comments", *STANCE_ORDER],
                        [[d.isoformat(), n_day[i],
                          *(summary.per_day[i].get(k, 0) for k in STANCE_ORDER)]
                         for i, d in enumerate(days)])
    return (f'<div class="topic"><div class="name">{e(summary.topic)}</div>'
            f"{_share_bar(summary.total)}"
            f'{_figure("Per day (comments above each column)", svg, table)}'
            "</div>")


def _overall_stance(b: Briefing) -> str:
    if not b.overall_stance:
        return ""
    blocks = "".join(_stance_block(s, b.days, "All comments") for s in b.overall_stance)
    return ('<section class="panel"><h2>Reader comments: stance per topic</h2>'
            '<p class="note">Every comment posted in the window, by the stance policywatch '
            'read in it.</p>'
            f'<div class="stance-grid">{blocks}</div></section>')


def _outlet_item(o: Outlet, now: datetime) -> str:
    return (f'<li><span class="src">{e(o.source)}</span>'
            f"{_link(o.url, o.title or _short_url(o.url))}"
            f"{_time(o.at, now, '' if o.published else 'first seen ')}</li>")


def _claim_card(g: ClaimGroup, now: datetime) -> str:
    # a direct claim is wrapped in quote marks, unless it carries its own: an interrupted
    # quotation is its parts joined, each with the marks as written ('"A," "B."')
    quoted = g.quote_kind == "direct" and not g.content.startswith(('"', "“", "'"))
    content = f"“{e(g.content)}”" if quoted else e(g.content)
    who = (f"<strong>{e(g.speaker)}</strong> <span class=\"cue\">{e(g.cue or 'said')}</span>"
           if g.speaker else f'<strong class="cue">{UNATTRIBUTED}</strong>')
    outlets = "".join(_outlet_item(o, now) for o in g.outlets)
    count = (f'<span class="tag">{len(g.outlets)} outlets</span>'
             if len(g.outlets) > 1 else "")
    earlier = ""
    if g.earlier:
        first, more = g.earlier[0], len(g.earlier)
        earlier = (f'<p class="earlier">Known claim: first carried by {e(first.source)}, '
                   f"{_time(first.at, now)} ({more} earlier "
                   f"{'outlet' if more == 1 else 'outlets'}); this run adds the "
                   f"{'outlet' if len(g.outlets) == 1 else 'outlets'} above.</p>")
    return (f'<article class="claim{" known" if g.earlier else ""}">'
            f'<blockquote title="{e(g.sentence)}">{content}</blockquote>'
            f'<p class="who">{who}<span class="tag">{e(g.quote_kind)}</span>{count}</p>'
            f'<ul class="outlets">{outlets}</ul>{earlier}</article>')


def _speakers(r: EntityReport) -> str:
    if not r.speakers:
        return '<p class="empty-state">No claims in the window.</p>'
    top = max(n for _, n, _ in r.speakers)
    rows = "".join(
        f'<tr><th scope="row">{e(name)}<div class="meter" style="width:{100 * n / top:.1f}%">'
        f'</div></th><td class="num">{n}</td><td class="num">{outlets}</td></tr>'
        for name, n, outlets in r.speakers)
    return ('<table class="bars"><thead><tr><th scope="col">Speaker</th>'
            '<th scope="col" class="num">Claims</th><th scope="col" class="num">Outlets</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _entity(r: EntityReport, b: Briefing, anchor: str, fill: str) -> str:
    now = b.now
    pills = (f'<span class="pill new">{len(r.new)} new</span>' if r.new
             else '<span class="pill">nothing new</span>')
    pills += f'<span class="pill">{r.window_total} claims in {len(b.days)} days</span>'
    if r.new:
        cards = "".join(_claim_card(g, now) for g in r.new[:MAX_CARDS])
        if len(r.new) > MAX_CARDS:
            cards += (f'<p class="note">{len(r.new) - MAX_CARDS} more new claims not shown: '
                      f"<code>policywatch claims {e(r.name)}</code>.</p>")
    else:
        cards = '<p class="empty-state">No new claim in this run.</p>'
    chart = _figure(
        "Claims per day",
        column_chart(b.days, r.per_day, fill, f"Claims per day about {r.name}",
                     f"{r.window_total} claims about {r.name} over {len(b.days)} days, "
                     f"{r.per_day[-1] if r.per_day else 0} on the last day"),
        _data_table(["Day", "Claims"], [[d.isoformat(), r.per_day[i]]
                                        for i, d in enumerate(b.days)]))
    stance = ("".join(_stance_block(s, b.days, f"Comments under articles about {r.name}")
                      for s in r.stance)
              or '<p class="empty-state">No comments with a stance in the window.</p>')
    return (f'<section class="entity" id="{anchor}" aria-labelledby="{anchor}-h">'
            f'<header class="entity-head" style="border-top-color:{fill}">'
            f'<h2 id="{anchor}-h">{e(r.name)}</h2>{pills}'
            f'<a class="top toplink" href="#top">↑ top</a></header>'
            f'<div class="entity-body"><div><h3>New since the last run</h3>{cards}</div>'
            f"<aside><section>{chart}</section>"
            f"<section><h3>Top speakers, {len(b.days)} days</h3>{_speakers(r)}</section>"
            f"<section><h3>Comment stance</h3>{stance}</section></aside></div></section>")


def _source_rows(s: SourceHealth) -> str:
    def bad(n: int) -> str:
        return f'<td class="num{" failed" if n else ""}">{n}</td>'

    return (f'<tr><th scope="row">{e(s.source)}</th><td class="num">{s.found}</td>'
            f'<td class="num">{s.fetched}</td>'
            f'<td class="num">{s.ok}</td><td class="num">{s.not_modified}</td>'
            f"{bad(s.failed)}{bad(s.deferred)}{bad(s.expired)}{bad(len(s.problems))}</tr>")


def _sources(b: Briefing) -> str:
    if not b.run:
        return ""
    if not b.sources:
        return ('<section class="panel" id="sources"><h2>Sources</h2><p class="empty-state">'
                "No fetch recorded for this run.</p></section>")
    summary = "".join(_source_rows(s) for s in b.sources)
    details = []
    for s in b.sources:
        for stage, url, status, why in s.problems:
            details.append(
                f'<tr><td>{e(s.source)}</td><td>{e(stage)}</td>'
                f'<td class="num">{e(status) if status is not None else "–"}</td>'
                f'<td class="url">{_link(url, url)}</td><td class="why">{e(why)}</td></tr>')
    problems = ('<h3 style="margin-top:16px">Not fetched or dropped, and why</h3>'
                '<table class="problems"><thead><tr><th scope="col">Source</th>'
                '<th scope="col">Stage</th><th scope="col" class="num">HTTP</th>'
                '<th scope="col">Address</th><th scope="col">Why</th></tr></thead>'
                f'<tbody>{"".join(details)}</tbody></table>' if details else
                '<p class="note"><span class="ok">Every page of this run was fetched and '
                "parsed.</span></p>")
    return ('<section class="panel sources" id="sources"><h2>Sources in this run</h2>'
            '<table><thead><tr><th scope="col">Source</th><th scope="col" class="num">'
            'New items found</th><th scope="col" class="num">'
            'Fetches</th><th scope="col" class="num">OK</th><th scope="col" class="num">'
            'Unchanged (304)</th><th scope="col" class="num">Failed</th>'
            '<th scope="col" class="num" title="over max_items: fetched on a later night">'
            'Deferred</th><th scope="col" class="num" title="left the window while waiting">'
            'Expired</th><th scope="col" class="num">Problems</th></tr></thead>'
            f"<tbody>{summary}</tbody></table>{problems}</section>")


def _page(b: Briefing) -> str:
    anchors: dict[str, str] = {}
    for r in b.entities:
        anchor = base = f"entity-{slug(r.name)}"
        n = 2
        while anchor in anchors.values():
            anchor, n = f"{base}-{n}", n + 1
        anchors[r.name] = anchor
    # colours follow the window's activity so the busiest entities get the clearest ones
    by_activity = sorted(b.entities, key=lambda r: -r.window_total)
    colours = {r.name: colour(i) for i, r in enumerate(by_activity)}
    body = "".join([
        _masthead(b), '<main class="page">', _kpis(b), _glance(b, anchors, colours),
        _overview_chart(b, colours),
        *(_entity(r, b, anchors[r.name], colours[r.name]) for r in b.entities),
        _overall_stance(b), _sources(b),
        f"<footer>Generated by policywatch at {e(b.now.strftime('%Y-%m-%d %H:%M UTC'))}. "
        "Times are UTC; a claim's day is its article's publication day (else the day "
        "policywatch first saw it).</footer></main>"])
    title = f"policywatch briefing {b.now.strftime('%Y-%m-%d')}"
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head>"
            f'<body id="top">{body}</body></html>\n')


write_report_task = task(name="write-report")(write_report)


def copy_report(report: Path | str, target: Path | str) -> Path:
    """Copy a written report to a stable name (`latest.html`), atomically."""
    source, out = Path(report), Path(target)
    temporary = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, out)
    return out.resolve()


copy_report_task = task(name="copy-report")(copy_report)
