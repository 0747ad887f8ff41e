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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import task

from schemas.config import Crawl, Source
from schemas.ids import normalize_url, text_key
from schemas.models import Article, Comment, FetchRequest, PageState
from tasks.crawl.dedupe import Fingerprint, NearDuplicateIndex, bands, signature, title_key
from tasks.crawl.discover import Listing, discover_source
from tasks.crawl.fetch import fetch_many
from tasks.crawl.more_comments import fetch_more_comments
from tasks.extract import PageBatch, process_pages
from tasks.store import (
    fault_point,
    read_article_ids,
    read_duplicates,
    read_failed_pages,
    read_listings,
    read_page_states,
    read_signed_articles,
    read_similar_signatures,
    read_stored_comments,
    record_duplicates,
    record_listings,
    record_signatures,
)

# Sources are crawled in parallel threads; looking up and recording signatures under one
# lock means the second of two copies found the same night sees the first.
_DEDUPE_LOCK = threading.Lock()
# stage timings go out as a record's `timings` extra, for benches and the curious
log = logging.getLogger(__name__)


def settled(state: PageState, listed_at: datetime | None, revisit_days: float | None,
            now: datetime) -> bool:
    """Whether a stored page can be left alone tonight: fetched fine before, its article
    published over `revisit_days` ago, and no listing date newer than that fetch."""
    if revisit_days is None or state.status != "ok" or state.last_fetched_at is None:
        return False
    if state.published_at is None or state.published_at > now - timedelta(days=revisit_days):
        return False
    return listed_at is None or listed_at <= state.last_fetched_at


def _fetched_pages(batch: PageBatch) -> list[tuple[str, str, str | None, bytes]]:
    """(article id, url, canonical, html) of each page fetched and parsed this run."""
    canonical = {a.article_id: a.canonical_url for a in batch.articles}
    return [(o.article_id, o.fetch.final_url or o.fetch.url, canonical.get(o.article_id),
             o.fetch.content)
            for o in batch.outcomes
            if o.article_id and o.fetch is not None and o.fetch.ok and o.fetch.content]


def crawl_source(source: Source, crawl: Crawl, db_path: Path | str, *,
                 now: datetime | None = None, workers: int = 8,
                 processes: int = 1) -> PageBatch:
    """Discover, fetch and parse one source's pages; a `PageBatch` ready for the load.

    `workers` threads fetch; `processes` > 1 parses a large batch in worker processes.
    """
    clock = [time.perf_counter()]
    listings = {u: Listing(*v) for u, v in read_listings(db_path, source.name).items()}
    discovery = discover_source(source, crawl, now=now or datetime.now(UTC),
                                listings=listings)
    record_listings(db_path, source.name, {u: (v.etag, v.last_modified, v.content)
                                           for u, v in discovery.listings.items()})
    urls = [item.url for item in discovery.items]
    seen = {normalize_url(u) for u in urls}
    for url in read_failed_pages(db_path, source.name):
        if url not in seen:  # failures are stored normalised
            seen.add(url)
            urls.append(url)
    states, merged = page_states(db_path, urls)
    listed = {item.url: item.published_at for item in discovery.items if not item.from_list}
    clock_now = now or datetime.now(UTC)
    requests = []
    for url in urls:
        state = states.get(normalize_url(url))
        if state is not None and state.status == "gone":
            continue  # 404/410 before: not fetched again every night
        if state is not None and url in listed and settled(
                state, listed[url], crawl.revisit_days, clock_now):
            continue  # an old article its listing does not show as changed
        requests.append(FetchRequest(
            url=url, source=source.name,
            etag=state.etag if state and state.status == "ok" else None,
            last_modified=state.last_modified if state and state.status == "ok" else None))
    clock.append(time.perf_counter())
    fetches = fetch_many(requests, crawl, workers=workers)
    fault_point("fetch")  # crash tests: killed with the pages fetched but nothing stored
    clock.append(time.perf_counter())
    batch = process_pages(fetches, source, states, read_article_ids(db_path, urls),
                          processes=processes)
    clock.append(time.perf_counter())
    apply_merges(batch, merged)
    merge_duplicates(batch, db_path, states)
    more = fetch_more_comments(_fetched_pages(batch), source, crawl, datetime.now(UTC))
    batch.comments.extend(more.comments)
    for outcome in batch.outcomes:
        # a page whose comment pages failed is stored as failed, so the next run fetches it
        # in full and follows its comment pages again (a 304 or the revisit policy would not)
        reason = more.incomplete.get(outcome.article_id or "")
        if reason is not None and outcome.error is None:
            outcome.error = f"comments incomplete: {reason}"
    batch.comments = adopt_stored_comments(
        batch.comments, read_stored_comments(db_path, {c.article_id for c in batch.comments}))
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


def page_states(db_path: Path | str, urls: Sequence[str]
                ) -> tuple[dict[str, PageState], dict[str, str]]:
    """Earlier runs' page states, and {copy's own id: article it was merged into}.

    A page merged into an earlier article is given its own id back here, so its comments
    get the same ids as on the night it was merged; `apply_merges` then points the batch
    at the earlier article again.
    """
    states = read_page_states(db_path, urls)
    copies = read_duplicates(db_path, urls)
    for key, (own, merged_into) in copies.items():
        state = states.get(key)
        if state is not None and state.article_id in (None, merged_into):
            states[key] = replace(state, article_id=own)
    return states, dict(copies.values())


def merge_duplicates(batch: PageBatch, db_path: Path | str,
                     states: Mapping[str, PageState]) -> dict[str, str]:
    """Give each new article that copies a known one the known article's id, in place.

    An article is new when no earlier run stored it (no page state names it, no signature
    is stored under its id). It joins an existing article when its canonical or final
    address is stored under another id, or when its body is a near-duplicate
    (tasks.crawl.dedupe). The copy's record is dropped; its page and comments point at the
    earlier article. Returns {copy's id: earlier article's id}.
    """
    known_ids = {s.article_id for s in states.values() if s.article_id}
    candidates = [a for a in batch.articles if a.article_id not in known_ids]
    if not candidates:
        return {}
    with _DEDUPE_LOCK:
        page_urls = {o.article_id: o.url for o in batch.outcomes if o.article_id}
        remap = _find_copies(candidates, db_path, batch.articles[0].source, page_urls)
    apply_merges(batch, {own: into for own, (into, _, _) in remap.items()})
    return {own: into for own, (into, _, _) in remap.items()}


def _find_copies(articles: list[Article], db_path: Path | str, source: str,
                 page_urls: Mapping[str, str]) -> dict[str, tuple[str, str, float | None]]:
    """{copy's id: (earlier id, reason, similarity)}; records signatures and merges."""
    signed = read_signed_articles(db_path, [a.article_id for a in articles])
    fresh = list({a.article_id: a for a in articles if a.article_id not in signed}.values())
    remap: dict[str, tuple[str, str, float | None]] = {}
    addresses = [u for a in fresh for u in (a.url, a.canonical_url) if u]
    stored = read_article_ids(db_path, addresses)
    prints: dict[str, Fingerprint] = {}
    for article in fresh:
        for url in (article.canonical_url, article.url):
            other = stored.get(normalize_url(url)) if url else None
            if other and other != article.article_id:
                remap[article.article_id] = (other, "canonical", None)
                break
        minhash = signature(article.body)
        if minhash is not None:
            prints[article.article_id] = Fingerprint(article.article_id, minhash,
                                                     title_key(article.title))
    index = NearDuplicateIndex()
    buckets = sorted({key for p in prints.values() for key in bands(p.minhash)})
    index.extend(Fingerprint(a, m, t) for a, t, m in read_similar_signatures(db_path, buckets))
    to_record = []
    for article in fresh:  # in fetch order: the first of two copies found tonight wins
        fingerprint = prints.get(article.article_id)
        if article.article_id in remap or fingerprint is None:
            continue
        match = index.match(fingerprint)
        if match is not None:
            remap[article.article_id] = (match[0], "near-duplicate", round(match[1], 3))
            continue
        index.add(fingerprint)
        to_record.append((article.article_id, source, fingerprint.title_key,
                          fingerprint.minhash, bands(fingerprint.minhash)))
    record_signatures(db_path, to_record)
    urls = {a.article_id: page_urls.get(a.article_id, a.url) for a in fresh}
    record_duplicates(db_path, [(own, into, urls[own], reason, score)
                                for own, (into, reason, score) in remap.items()])
    return remap


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
