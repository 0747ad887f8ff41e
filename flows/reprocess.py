"""Re-parse and re-extract everything from the raw archive with the current code, offline.

Every successfully fetched page is kept gzip-compressed in `raw_pages`. When the parser or
the extractors improve, `reprocess` runs them again over that archive without fetching
anything, and updates the stored rows in place:

- ids stay: a page keeps the article id earlier runs gave it (its page state), merged copies
  stay merged (tasks.store.CrawlState.page_states / apply_merges), comment ids derive from those;
- articles, comments and stances are updated under their keys, new ones inserted;
- each article's claims are replaced (tasks.store.reload_articles): claims found again keep
  their id and first_seen_at, new ones are inserted, vanished ones deleted; a claim whose
  speaker the current code names differently (so its id changes) takes over the old row's
  first_seen_at, run and alerts;
- stances on topics no longer in the config are deleted; `--no-extract` leaves claims and
  stances untouched;
- no alerts are raised: re-processing is maintenance, not news;
- a page the current parser cannot read is counted and left as it was.

Pages are handled a source at a time, so memory holds one source's archive, not all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from schemas.config import Config, Source
from schemas.ids import normalize_url
from schemas.models import Article, Claim, FetchResult, Stance
from tasks.crawl import apply_merges
from tasks.extract import process_pages
from tasks.store import (
    CrawlState,
    ReloadCounts,
    read_archived_sources,
    read_article_addresses,
    read_pages,
    read_raw_pages,
    reload_articles,
)


@dataclass(frozen=True)
class ReprocessCounts(ReloadCounts):
    """The reload's counts, plus the pages read and the ones that failed."""

    pages: int = 0
    failed: int = 0  # pages the current code cannot read or extract: their rows stay as they were

    def __add__(self, other: ReprocessCounts) -> ReprocessCounts:
        mine, theirs = asdict(self), asdict(other)
        return ReprocessCounts(**{k: mine[k] + theirs[k] for k in mine})


def reprocess(db_path: Path | str, config: Config, *, extract: bool = True,
              source: str | None = None) -> ReprocessCounts:
    """Re-parse every archived page (of one source, if given) and reload what it yields.

    `extract=False` re-parses articles and comments only, leaving claims and stances.
    """
    known = {s.name: s for s in config.sources}
    names = [source] if source else _archived_sources(db_path, known)
    run_id = "reprocess-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + \
        uuid.uuid4().hex[:6]
    addresses = read_article_addresses(db_path)
    total = ReprocessCounts()
    for name in names:
        total += _one_source(db_path, config, name, known.get(name), addresses, run_id,
                             extract=extract)
    return total


def _archived_sources(db_path: Path | str, known: dict[str, Source]) -> list[str]:
    # configured sources first, then any still in the archive but gone from the config
    archived = set(read_archived_sources(db_path))
    return [*[n for n in known if n in archived], *sorted(archived - set(known))]


def _one_source(db_path: Path | str, config: Config, name: str, source: Source | None,
                addresses: dict[str, str], run_id: str, *, extract: bool) -> ReprocessCounts:
    raw = read_raw_pages(db_path, name)
    if not raw:
        return ReprocessCounts()
    fetches = [FetchResult(url=url, source=name, final_url=final_url, status=200, ok=True,
                           content=html, encoding=encoding, bytes=len(html),
                           fetched_at=fetched_at)
               for url, _, final_url, encoding, html, fetched_at in raw]
    urls = [f.url for f in fetches]
    known = read_pages(db_path, CrawlState(name), urls)
    states, merged = known.page_states(urls)
    # without the old content hash nothing counts as unchanged: everything is re-extracted
    states = {k: replace(s, content_hash=None) for k, s in states.items()}
    settings = source or Source.model_validate({"name": name, "urls": [fetches[0].url]})
    batch = process_pages(fetches, settings, states, known.article_ids)
    apply_merges(batch, merged)
    articles = _one_record_per_article(batch.articles, addresses)
    claims: list[Claim] = []
    stances: list[Stance] = []
    failed_extract: set[str] = set()
    if extract:  # imported here: parsing alone must not load the NLP models
        from tasks.analyse import (
            classify_comment_stances,
            cut_for_analysis,
            extract_article_claims,
        )

        readable, _ = cut_for_analysis(articles, config.performance.max_text_chars)
        claims, rejects = extract_article_claims(readable, config.entities)
        stances, _ = classify_comment_stances(batch.comments, config.topics,
                                              config.performance.stance_encoder)
        failed_extract = {normalize_url(r.url) for r in rejects}
        # an article the extractor failed on keeps its old claims rather than losing them
        articles = [a for a in articles if normalize_url(a.url) not in failed_extract]
    # without extraction, claims and stances are left as they are (topics None)
    counts = reload_articles(db_path, run_id, articles, batch.comments, claims, stances,
                             topics=[t.name for t in config.topics] if extract else None)
    return ReprocessCounts(
        pages=len(raw), failed=sum(1 for o in batch.outcomes if o.error) + len(failed_extract),
        **asdict(counts))


def _one_record_per_article(articles: Sequence[Article],
                            addresses: dict[str, str]) -> list[Article]:
    """Two pages yielding one article (a canonical shared): the page it was stored from."""
    chosen: dict[str, Article] = {}
    for article in articles:
        stored = addresses.get(article.article_id)
        current = chosen.get(article.article_id)
        if current is None or (stored is not None
                               and normalize_url(article.url) == normalize_url(stored)):
            chosen[article.article_id] = article
    return list(chosen.values())
