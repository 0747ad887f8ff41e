"""One source's night: discover its URLs, fetch what changed, parse it. A task per source.

Never raises for a page: every failure comes back as a reject with its reason, and pages that
failed before are offered again (with the feed's fresh items) so a passing fault heals.

What keeps a night from fetching or storing the same thing twice:
- feeds and sitemaps are asked for conditionally too; a 304 reuses the stored listing;
- discovered URLs are compared in their normalised form (schemas.ids.normalize_url), so a feed
  item with utm_* parameters is the page already known;
- a known page is asked for with If-None-Match / If-Modified-Since; a 304 costs no body;
- a page answering 404 or 410 is recorded as gone and not asked for again;
- a changed response with the same text is skipped before extraction (tasks.extract.pages);
- a new article whose canonical or final address is already stored takes that article's id,
  and so does a near-duplicate of a stored article (tasks.crawl.dedupe): a syndicated copy is one
  article with both addresses in `article_urls`.

The store is entered three times before the load, each with one connection:
`read_crawl_state` before discovery (listings, failed pages, the backlog), `read_pages`
once the listings name tonight's addresses (their states, merged copies and stored
addresses, whichever source stored them), and after parsing to look up what the new
articles may copy. Nothing is written here: the feeds fetched
afresh, the new signatures and the merges ride in the `PageBatch` to the night's one load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import task

from schemas.config import Crawl, Source
from schemas.ids import normalize_url, text_key
from schemas.models import (
    Article,
    Comment,
    Duplicate,
    FetchRequest,
    PageBatch,
    PageState,
    Signature,
)
from tasks.crawl.budget import plan_night, planned_keys
from tasks.crawl.dedupe import Fingerprint, NearDuplicateIndex, bands, signature, title_key
from tasks.crawl.discover import discover_source
from tasks.crawl.fetch import fetch_many
from tasks.crawl.more_comments import fetch_more_comments
from tasks.extract import process_pages
from tasks.store import StoreReader, fault_point, read_crawl_state, read_pages, reading

# stage timings go out as a record's `timings` extra, for benches and the curious
log = logging.getLogger(__name__)


def _fetched_pages(batch: PageBatch) -> list[tuple[str, str, str | None, bytes]]:
    """(article id, url, canonical, html) of each page fetched and parsed this run."""
    canonical = {a.article_id: a.canonical_url for a in batch.articles}
    return [(o.article_id, o.fetch.final_url or o.fetch.url, canonical.get(o.article_id),
             o.fetch.content)
            for o in batch.outcomes
            if o.article_id and o.fetch is not None and o.fetch.ok and o.fetch.content]


def crawl_source(source: Source, crawl: Crawl, db_path: Path | str, *,
                 now: datetime | None = None, workers: int = 8,
                 processes: int = 1, budget: int | None = None) -> PageBatch:
    """Discover, fetch and parse one source's pages; a `PageBatch` ready for the load.

    `workers` threads fetch; `processes` > 1 parses a large batch in worker processes.
    `budget` replaces the source's `max_items` for this night (`policywatch backfill`).
    """
    clock = [time.perf_counter()]
    now = now or datetime.now(UTC)
    state = read_crawl_state(db_path, source.name)
    discovery = discover_source(source, crawl, now=now, listings=state.listings)
    state = read_pages(db_path, state, planned_keys(discovery.items, state))
    plan = plan_night(source.name, discovery.items, state, budget or source.max_items,
                      crawl.window_days, crawl.revisit_days, now)
    urls = list(plan.urls)
    seen = {normalize_url(u) for u in urls}
    urls += [url for url in state.failed if url not in seen]  # failures are stored normalised
    states, merged = state.page_states(urls)
    requests = _requests(source, urls, states)
    clock.append(time.perf_counter())
    fetches = fetch_many(requests, crawl, workers=workers)
    fault_point("fetch")  # crash tests: killed with the pages fetched but nothing stored
    clock.append(time.perf_counter())
    batch = process_pages(fetches, source, states, state.article_ids, processes=processes)
    batch.source = source.name
    batch.listings = dict(discovery.listings)
    batch.deferred, batch.expired, batch.night = plan.deferred, plan.expired, plan.night
    clock.append(time.perf_counter())
    apply_merges(batch, merged)
    with reading(db_path) as store:  # the second and last look at the store before the load
        merge_duplicates(batch, store, states)
        stored = store.stored_comments({o.article_id for o in batch.outcomes if o.article_id})
    more = fetch_more_comments(_fetched_pages(batch), source, crawl, datetime.now(UTC))
    batch.comments.extend(more.comments)
    for outcome in batch.outcomes:
        # a page whose comment pages failed is stored as failed, so the next run fetches it
        # in full and follows its comment pages again (a 304 or the revisit policy would not)
        reason = more.incomplete.get(outcome.article_id or "")
        if reason is not None and outcome.error is None:
            outcome.error = f"comments incomplete: {reason}"
    batch.comments = adopt_stored_comments(batch.comments, stored)
    batch.rejects[:0] = discovery.rejects
    batch.rejects.extend(more.rejects)
    batch.fetch_log = [*discovery.fetches, *fetches, *more.fetches]
    clock.append(time.perf_counter())
    timings = {name: round(b - a, 4) for name, a, b in
               zip(("discover_s", "fetch_s", "parse_s", "dedupe_s"), clock[:-1], clock[1:],
                   strict=True)}
    log.info("crawl %s: %d fetched, %d new or changed articles; %s", source.name,
             len(fetches), len(batch.articles), timings,
             extra={"timings": timings, "source": source.name})
    return batch


def _requests(source: Source, urls: Sequence[str],
              states: Mapping[str, PageState]) -> list[FetchRequest]:
    """Tonight's requests, conditional for pages fetched fine before."""
    requests = []
    for url in urls:
        state = states.get(normalize_url(url))
        known = state is not None and state.status == "ok"
        requests.append(FetchRequest(
            url=url, source=source.name,
            etag=state.etag if state is not None and known else None,
            last_modified=state.last_modified if state is not None and known else None))
    return requests


def merge_duplicates(batch: PageBatch, store: StoreReader,
                     states: Mapping[str, PageState]) -> dict[str, str]:
    """Give each new article that copies a known one the known article's id, in place.

    An article is new when no earlier run stored it (no page state names it, no signature
    is stored under its id). It joins an existing article when its canonical or final
    address is stored under another id, or when its body is a near-duplicate
    (tasks.crawl.dedupe). The copy's record is dropped; its page and comments point at the
    earlier article; the merge and the new articles' signatures go to the load in the
    batch. Returns {copy's id: earlier article's id}.
    """
    known_ids = {s.article_id for s in states.values() if s.article_id}
    candidates = [a for a in batch.articles if a.article_id not in known_ids]
    if not candidates:
        return {}
    page_urls = {o.article_id: o.url for o in batch.outcomes if o.article_id}
    remap = _find_copies(candidates, store, batch, page_urls)
    merges = {own: d.duplicate_of for own, d in remap.items()}
    apply_merges(batch, merges)
    return merges


def _find_copies(articles: list[Article], store: StoreReader, batch: PageBatch,
                 page_urls: Mapping[str, str]) -> dict[str, Duplicate]:
    """{copy's id: its `Duplicate`}; new signatures and merges are added to the batch."""
    signed = store.signed_articles([a.article_id for a in articles])
    fresh = list({a.article_id: a for a in articles if a.article_id not in signed}.values())
    remap: dict[str, Duplicate] = {}
    urls = {a.article_id: page_urls.get(a.article_id, a.url) for a in fresh}
    stored = store.article_ids(u for a in fresh for u in (a.url, a.canonical_url) if u)
    prints: dict[str, Fingerprint] = {}
    for article in fresh:
        for url in (article.canonical_url, article.url):
            other = stored.get(normalize_url(url)) if url else None
            if other and other != article.article_id:
                remap[article.article_id] = Duplicate(article.article_id, other,
                                                      urls[article.article_id], "canonical",
                                                      None)
                break
        minhash = signature(article.body)
        if minhash is not None:
            prints[article.article_id] = Fingerprint(article.article_id, minhash,
                                                     title_key(article.title))
    index = NearDuplicateIndex()
    buckets = sorted({key for p in prints.values() for key in bands(p.minhash)})
    index.extend(Fingerprint(a, m, t) for a, t, m in store.similar_signatures(buckets))
    for article in fresh:  # in fetch order: the first of two copies found tonight wins
        fingerprint = prints.get(article.article_id)
        if article.article_id in remap or fingerprint is None:
            continue
        match = index.match(fingerprint)
        if match is not None:
            remap[article.article_id] = Duplicate(article.article_id, match[0],
                                                  urls[article.article_id], "near-duplicate",
                                                  round(match[1], 3))
            continue
        index.add(fingerprint)
        batch.signatures.append(Signature(article.article_id, article.source,
                                          fingerprint.title_key, fingerprint.minhash,
                                          tuple(bands(fingerprint.minhash))))
    batch.duplicates.extend(remap.values())
    return remap


def merge_night_copies(batches: Sequence[PageBatch]) -> int:
    """Fold copies found in two sources on the same night into the first; returns how many.

    Each source compares its new articles with the store and with each other; two sources
    crawled side by side cannot see each other's articles in the store until the load, so
    the night compares the sources' new signatures once more, in source order.
    """
    index = NearDuplicateIndex()
    folded = 0
    for batch in batches:
        remap: dict[str, Duplicate] = {}
        kept = []
        page_urls = {o.article_id: o.url for o in batch.outcomes if o.article_id}
        for sig in batch.signatures:
            fingerprint = Fingerprint(sig.article_id, sig.minhash, sig.title_key)
            match = index.match(fingerprint)
            if match is None:
                index.add(fingerprint)
                kept.append(sig)
            else:
                remap[sig.article_id] = Duplicate(
                    sig.article_id, match[0], page_urls.get(sig.article_id, ""),
                    "near-duplicate", round(match[1], 3))
        if remap:
            batch.signatures = kept
            into = {own: d.duplicate_of for own, d in remap.items()}
            # a page this source merged into an article now folded points past it too
            batch.duplicates = [replace(d, duplicate_of=into.get(d.duplicate_of,
                                                                 d.duplicate_of))
                                for d in batch.duplicates]
            batch.duplicates.extend(remap.values())
            apply_merges(batch, into)
            folded += len(remap)
    return folded


def apply_merges(batch: PageBatch, remap: Mapping[str, str]) -> None:
    """Point a batch's copies at the articles they were merged into; copies' records go."""
    if not remap:
        return
    batch.articles = [a for a in batch.articles if a.article_id not in remap]
    batch.comments = [c.model_copy(update={"article_id": remap[c.article_id]})
                      if c.article_id in remap else c for c in batch.comments]
    for outcome in batch.outcomes:
        if outcome.article_id is not None and outcome.article_id in remap:
            outcome.article_id = remap[outcome.article_id]


def adopt_stored_comments(comments: list[Comment],
                          stored: Sequence[tuple[str, str, str | None, str, datetime | None]]
                          ) -> list[Comment]:
    """Give a comment already stored under another id the stored id, so it is not stored twice.

    A comment's id comes from its article's id, so the same comment gets a new id when its
    article is found at a new address (http to https, a new domain) and merged into the
    stored one, or when a site renumbers its comments. `stored` holds (article id, comment
    id, author, body, posted_at) of the stored comments of these articles. A comment whose
    own id is not stored takes the id of a stored comment of the same article with the same
    author and text (and a posting time within a day, where both have one), each stored
    comment at most once and only if it is not in the batch under its own id.
    """
    batch_ids = {c.comment_id for c in comments}
    stored_ids = {row[1] for row in stored}
    free: dict[tuple[str, str, str], list[tuple[str, datetime | None]]] = {}
    for article_id, comment_id, author, body, posted_at in stored:
        if comment_id not in batch_ids and text_key(body):
            key = (article_id, text_key(author or ""), text_key(body))
            free.setdefault(key, []).append((comment_id, posted_at))
    renamed: dict[str, str] = {}
    for comment in comments:
        if comment.comment_id in stored_ids:
            continue
        candidates = free.get((comment.article_id, text_key(comment.author or ""),
                               text_key(comment.body)), [])
        for i, (comment_id, posted_at) in enumerate(candidates):
            if posted_at is None or comment.posted_at is None \
                    or abs(posted_at - comment.posted_at) <= timedelta(days=1):
                renamed[comment.comment_id] = comment_id
                del candidates[i]
                break
    if not renamed:
        return comments
    return [c.model_copy(update={
        "comment_id": renamed.get(c.comment_id, c.comment_id),
        "parent_id": renamed.get(c.parent_id, c.parent_id) if c.parent_id else None,
    }) for c in comments]


crawl_source_task = task(name="crawl-source", retries=0)(crawl_source)
