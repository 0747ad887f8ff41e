"""From fetched pages to articles and comments with stable ids.

Pure: fetch results and what earlier runs learnt in, models out. A page that cannot be
parsed becomes a reject with its reason and is retried next run; an unchanged page (304, or
the same body as last time) is skipped before any extraction.

Parsing is CPU-bound (~4 ms a page), so a large batch is parsed in worker processes
(`processes`); pages go out and parsed pages come back pickled, which costs far less than
the parse. One pool at a time per process: sources crawled in parallel threads do not
multiply the workers, the others parse in their own thread meanwhile.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from urllib.parse import urlsplit

from schemas.config import CommentSelectors, Source
from schemas.errors import ParseError
from schemas.ids import article_id_for, comment_id_for, content_hash, normalize_url
from schemas.models import (
    Article,
    Comment,
    FetchResult,
    PageBatch,
    PageOutcome,
    PageState,
    ParsedComment,
    ParsedPage,
    Reject,
)
from tasks.extract.page import parse_page

MIN_PARALLEL = 64  # pages; below this a pool's start-up (~50 ms per worker) does not pay
_POOL_SLOT = threading.Lock()


def _site(url: str) -> tuple[str, int | None] | None:
    """(host without `www.`, port unless a default one) of an address; None if unreadable.
    http and https count as one site: a page fetched over http often names its https
    address as canonical."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".").removeprefix("www.")
    return (host, None if port in (None, 80, 443) else port) if host else None


def trusted_canonical(canonical: str | None, url: str) -> str | None:
    """The page's canonical address if it is on the page's own site (`www.` aside), else
    None: a page on host A may not claim to be host B's article (its id would be B's, and
    B's real article would later merge into A's row, A's claims with it)."""
    if not canonical:
        return None
    site = _site(url)
    return canonical if site is not None and _site(canonical) == site else None


def to_records(page: ParsedPage, fetch: FetchResult, source: str,
               known_article_id: str | None = None) -> tuple[Article, list[Comment]]:
    """The article and comments of one parsed page, with their stable ids."""
    url = fetch.final_url or fetch.url
    canonical = trusted_canonical(page.canonical_url, url)
    article_id = known_article_id or article_id_for(url, canonical)
    article = Article(
        article_id=article_id, source=source, url=url, canonical_url=canonical,
        title=page.title, author=page.author, published_at=page.published_at, body=page.body,
        language=page.language, content_hash=content_hash(page.body),
        fetched_at=fetch.fetched_at, extracted_by=page.extracted_by,
    )
    return article, comment_records(page.comments, article_id)


def comment_records(found: Sequence[ParsedComment], article_id: str) -> list[Comment]:
    """Comments of an article with their stable ids; replies point at their parent's id."""
    ids = {c.local_id: comment_id_for(article_id, c.local_id) for c in found}
    return [Comment(comment_id=ids[c.local_id], article_id=article_id, author=c.author,
                    body=c.body, posted_at=c.posted_at,
                    parent_id=ids.get(c.parent_local_id) if c.parent_local_id else None)
            for c in found]


def process_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it: workers inherit the imports (and a loaded model)
    instead of importing everything again; spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


_Job = tuple[bytes, str, datetime, str | None, CommentSelectors | None]


def _parse(job: _Job) -> ParsedPage | ParseError:
    """One page's parse; a ParseError comes back as a value (it is the page's outcome)."""
    content, url, fetched_at, encoding, selectors = job
    try:
        return parse_page(content, url, fetched_at=fetched_at, encoding=encoding,
                          comment_selectors=selectors)
    except ParseError as exc:
        return exc
    except (Exception, RecursionError) as exc:
        # nested 100,000 deep, ...) is a reject for that page, never the whole source's loss
        return ParseError(f"cannot parse the page: {type(exc).__name__}: {str(exc)[:200]}")


def parse_all(jobs: Sequence[_Job], processes: int = 1,
              min_parallel: int = MIN_PARALLEL) -> Iterator[ParsedPage | ParseError]:
    """Parsed pages in input order; in `processes` workers when the batch is large enough
    and no other source's batch holds the pool."""
    if processes <= 1 or len(jobs) < min_parallel or not _POOL_SLOT.acquire(blocking=False):
        yield from map(_parse, jobs)
        return
    try:
        with ProcessPoolExecutor(max_workers=processes, mp_context=process_context()) as pool:
            results = list(pool.map(_parse, jobs, chunksize=16))
    except BrokenProcessPool:  # a worker died: parse here rather than lose the batch
        results = [_parse(job) for job in jobs]
    finally:
        _POOL_SLOT.release()
    yield from results


def process_pages(fetches: Sequence[FetchResult], source: Source,
                  states: Mapping[str, PageState],
                  known_urls: Mapping[str, str] | None = None, *,
                  processes: int = 1) -> PageBatch:
    """Parse every fetched page of a source; `known_urls` maps normalised URL -> article id.

    `processes` > 1 parses a large batch in that many worker processes.
    """
    known_urls = known_urls or {}
    out = PageBatch()
    to_parse = [f for f in fetches if f.ok and not f.not_modified and f.content is not None]
    parsed_pages = parse_all([(f.content or b"", f.final_url or f.url, f.fetched_at, f.encoding,
                               source.comments) for f in to_parse], processes)
    for fetch in fetches:
        state = states.get(normalize_url(fetch.url))
        if not fetch.ok:
            gone = fetch.gone
            reason = fetch.error or "fetch failed"
            out.outcomes.append(PageOutcome(url=fetch.url, source=source.name, fetch=fetch,
                                            error=reason, gone=gone))
            out.rejects.append(Reject(url=fetch.url, source=source.name, stage="fetch",
                                      reason=reason))
            continue
        if fetch.not_modified or fetch.content is None:
            out.unchanged += 1
            out.outcomes.append(PageOutcome(
                url=fetch.url, source=source.name, fetch=fetch,
                article_id=state.article_id if state else None,
                content_hash=state.content_hash if state else None))
            continue
        parsed = next(parsed_pages)  # same order as `to_parse`
        if isinstance(parsed, ParseError):
            exc = parsed
            out.outcomes.append(PageOutcome(url=fetch.url, source=source.name, fetch=fetch,
                                            error=f"parse: {exc}"))
            out.rejects.append(Reject(url=fetch.url, source=source.name, stage="parse",
                                      reason=str(exc)))
            continue
        known = _known_article(fetch, parsed, known_urls, state)
        article, comments = to_records(parsed, fetch, source.name, known)
        out.outcomes.append(PageOutcome(url=fetch.url, source=source.name, fetch=fetch,
                                        article_id=article.article_id,
                                        content_hash=article.content_hash))
        out.comments.extend(comments)  # new comments can come under an unchanged body
        if state is not None and state.content_hash == article.content_hash:
            out.unchanged += 1  # same text as last time: no claims to extract again
            continue
        out.articles.append(article)
    return out


def _known_article(fetch: FetchResult, parsed: ParsedPage, known_urls: Mapping[str, str],
                   state: PageState | None) -> str | None:
    """The id an earlier run gave this article under any of its addresses."""
    if state is not None and state.article_id:
        return state.article_id
    canonical = trusted_canonical(parsed.canonical_url, fetch.final_url or fetch.url)
    for url in (canonical, fetch.final_url, fetch.url):
        if url and normalize_url(url) in known_urls:
            return known_urls[normalize_url(url)]
    return None
