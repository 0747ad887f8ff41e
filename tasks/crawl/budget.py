"""A night's budget per source: which listed items are fetched tonight and which wait.

`max_items` is how many of a source's listed pages one night fetches, not a cut of what
its listings name. Items never stored come first, newest first, the backlog of earlier
nights included; what the budget leaves waits in the `backlog` table for the next night,
as long as it is inside `window_days`. An item that leaves the window while waiting is
recorded as expired, with the reason, never dropped silently, and not deferred again if a
listing names it later. Pages stored before and due for a revisit (not gone, not settled)
share what budget is left. Pages under `urls:` are never capped, and failed pages are
retried outside the budget (they are bounded by their attempts).

Pure: the store's `CrawlState` and tonight's listings in, a `NightPlan` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.ids import normalize_url
from schemas.models import BacklogItem, PageState, SourceNight
from tasks.crawl.discover import Discovered
from tasks.store import CrawlState


@dataclass
class NightPlan:
    """Tonight's pages for one source, in the order to fetch them, and the rest."""

    urls: list[str] = field(default_factory=list)
    deferred: list[BacklogItem] = field(default_factory=list)
    expired: list[BacklogItem] = field(default_factory=list)
    night: SourceNight = field(default_factory=lambda: SourceNight(""))


def settled(state: PageState, listed_at: datetime | None, revisit_days: float | None,
            now: datetime) -> bool:
    """Whether a stored page can be left alone tonight: fetched fine before, its article
    published over `revisit_days` ago, and no listing date newer than that fetch."""
    if revisit_days is None or state.status != "ok" or state.last_fetched_at is None:
        return False
    if state.published_at is None or state.published_at > now - timedelta(days=revisit_days):
        return False
    return listed_at is None or listed_at <= state.last_fetched_at


@dataclass(frozen=True)
class _Listed:
    url: str  # as listed
    published_at: datetime | None
    seen_at: datetime  # when first left waiting (now for a new item): undated items rank by it
    order: int


def _newest_first(item: _Listed) -> tuple[bool, float, int]:
    # dated items newest first, then undated ones in listing order (a sitemap without dates
    # may name years of archive: those do not go before tonight's dated news)
    return (item.published_at is None,
            -(item.published_at.timestamp() if item.published_at else 0.0), item.order)


def planned_keys(items: Sequence[Discovered], state: CrawlState) -> list[str]:
    """Every address tonight's plan may touch: listed, waiting or failed."""
    return [*(i.url for i in items), *(b.listed_url for b in state.backlog.values()),
            *state.failed]


def plan_night(source: str, items: Sequence[Discovered], state: CrawlState, budget: int,
               window_days: float, revisit_days: float | None, now: datetime) -> NightPlan:
    """Pick tonight's pages: `urls:` pages, then up to `budget` listed ones.

    New items (no stored page) win over revisits of stored ones; those left over are
    deferred, and backlog items that left the window expire. `state` must hold the pages
    of `planned_keys` (tasks.store.read_pages).
    """
    oldest = now - timedelta(days=window_days)
    plan = NightPlan(urls=[i.url for i in items if i.from_list])
    pinned = {normalize_url(u) for u in plan.urls}
    listed: dict[str, _Listed] = {}
    for order, found in enumerate(i for i in items if not i.from_list):
        key = normalize_url(found.url)
        waiting = state.backlog.get(key)
        listed.setdefault(key, _Listed(found.url, found.published_at,
                                       waiting.first_deferred_at if waiting else now, order))
    for key, item in state.backlog.items():
        listed.setdefault(key, _Listed(item.listed_url, item.published_at,
                                       item.first_deferred_at, len(listed)))
    new: list[tuple[str, _Listed]] = []
    revisits = []
    for key, entry in listed.items():
        page = state.pages.get(key)
        if key in pinned or (page is not None and page.status == "failed"):
            continue  # fetched anyway: `urls:` pages and failed pages
        if page is not None:
            if page.status != "gone" and not settled(page, entry.published_at, revisit_days,
                                                     now):
                revisits.append(entry)
            continue
        if key in state.expired:
            continue  # reported as skipped once; not deferred again
        waiting = state.backlog.get(key)
        if waiting is not None and (entry.published_at or entry.seen_at) < oldest:
            nights = waiting.nights
            plan.expired.append(BacklogItem(
                key, entry.url, entry.published_at, entry.seen_at, nights,
                reason=f"not fetched within the {window_days:g}-day window: over max_items "
                       f"for {nights} night{'s' if nights != 1 else ''}"))
            continue
        new.append((key, entry))
    new.sort(key=lambda pair: _newest_first(pair[1]))
    tonight, left = new[:budget], new[budget:]
    plan.urls += [entry.url for _, entry in tonight]
    revisits.sort(key=_newest_first)
    plan.urls += [entry.url for entry in revisits[:max(0, budget - len(tonight))]]
    for key, entry in left:
        waiting = state.backlog.get(key)
        plan.deferred.append(BacklogItem(key, entry.url, entry.published_at, entry.seen_at,
                                         (waiting.nights if waiting else 0) + 1))
    fresh_pinned = len(pinned - set(state.pages))  # `urls:` pages never stored: all fetched
    plan.night = SourceNight(source, found=len(new) + fresh_pinned,
                             fetched=len(tonight) + fresh_pinned, deferred=len(left),
                             expired=len(plan.expired), backlog=len(left))
    return plan
