"""A night's budget per source: which listed items are fetched tonight and which wait.

`max_items` is how many of a source's listed pages one night fetches, not a cut of what
its listings name. Items never stored come first, newest first, the backlog of earlier
nights included; what the budget leaves waits in the `backlog` table for the next night,
as long as it is inside `window_days`. An item that leaves the window while waiting is
recorded as expired, with the reason, never dropped silently. Pages stored before and
due for a revisit share what budget is left. Pages under `urls:` are never capped, and
failed pages are retried outside the budget (they are bounded by their attempts).

Pure: the store's `CrawlState` and tonight's listings in, a `NightPlan` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.ids import normalize_url
from schemas.models import BacklogItem, SourceNight
from tasks.crawl.discover import Discovered
from tasks.store import CrawlState


@dataclass
class NightPlan:
    """Tonight's pages for one source, in the order to fetch them, and the rest."""

    urls: list[str] = field(default_factory=list)
    deferred: list[BacklogItem] = field(default_factory=list)
    expired: list[BacklogItem] = field(default_factory=list)
    night: SourceNight = field(default_factory=lambda: SourceNight(""))


def _newest_first(item: tuple[str, datetime | None, int]) -> tuple[bool, float, int]:
    # dated items newest first, then undated ones in the order the listings gave them
    _, published, order = item
    return published is None, -(published.timestamp() if published else 0.0), order


def plan_night(source: str, items: Sequence[Discovered], state: CrawlState, budget: int,
               window_days: float, now: datetime) -> NightPlan:
    """Pick tonight's pages: `urls:` pages, then up to `budget` listed ones.

    New items (no stored page) win over revisits of stored ones; those left over are
    deferred, and backlog items that left the window expire.
    """
    oldest = now - timedelta(days=window_days)
    plan = NightPlan(urls=[i.url for i in items if i.from_list])
    pinned = {normalize_url(u) for u in plan.urls}
    listed: dict[str, tuple[str, datetime | None, int]] = {}
    for order, found in enumerate(i for i in items if not i.from_list):
        listed.setdefault(normalize_url(found.url), (found.url, found.published_at, order))
    for key, item in state.backlog.items():
        listed.setdefault(key, (item.listed_url, item.published_at, len(listed)))
    new: list[tuple[str, tuple[str, datetime | None, int]]] = []
    revisits = []
    for key, entry in listed.items():
        if key in pinned:
            continue
        if key in state.pages:
            revisits.append(entry)
            continue
        waiting = state.backlog.get(key)
        since = waiting.first_deferred_at if waiting else now
        published = entry[1]
        if waiting is not None and (published or since) < oldest:
            plan.expired.append(BacklogItem(
                key, entry[0], published, since, waiting.nights,
                reason=f"not fetched within the {window_days:g}-day window: over max_items "
                       f"for {waiting.nights} night{'s' if waiting.nights != 1 else ''}"))
            continue
        new.append((key, entry))
    new.sort(key=lambda pair: _newest_first(pair[1]))
    tonight, left = new[:budget], new[budget:]
    plan.urls += [entry[0] for _, entry in tonight]
    revisits.sort(key=_newest_first)
    plan.urls += [entry[0] for entry in revisits[:max(0, budget - len(tonight))]]
    for key, (url, published, _) in left:
        waiting = state.backlog.get(key)
        plan.deferred.append(BacklogItem(
            key, url, published, waiting.first_deferred_at if waiting else now,
            (waiting.nights if waiting else 0) + 1))
    fresh_pinned = len(pinned - set(state.pages))  # `urls:` pages never stored: all fetched
    plan.night = SourceNight(source, found=len(new) + fresh_pinned,
                             fetched=len(tonight) + fresh_pinned, deferred=len(left),
                             expired=len(plan.expired), backlog=len(left))
    return plan
