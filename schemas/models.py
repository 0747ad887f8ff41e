"""The records policywatch produces, one pydantic model per DuckDB table.

Every stage hands the next one these models; `schemas/ddl.py` declares the same shapes as
tables, and a test checks the two stay in step.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# `event`: an act reported with an event verb ("unveiled", "launched", "signed"), not words
# spoken or thought; stored, but alert rules skip it unless they set include_events
QuoteKind = Literal["direct", "indirect", "mixed", "event"]
StanceLabel = Literal["favor", "against", "neutral"]
AlertStatus = Literal["pending", "sent", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParsedComment(_Record):
    """A reader comment as found on the page, before it is tied to a stored article."""

    local_id: str = Field(description="the page's own id for the comment, or its position")
    author: str | None = None
    body: str
    posted_at: datetime | None = None
    parent_local_id: str | None = None


class ParsedPage(_Record):
    """What `tasks.extract.page.parse_page` reads out of one HTML page."""

    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    modified_at: datetime | None = None
    language: str | None = None
    canonical_url: str | None = None
    body: str = ""
    comments: tuple[ParsedComment, ...] = ()
    # where each metadata field came from ("json-ld", "meta", "time", "byline", ...)
    provenance: dict[str, str] = Field(default_factory=dict)
    # which opinion of the body chain gave the body (docs/extraction.md)
    extracted_by: str = "dom"


class Article(_Record):
    article_id: str
    source: str
    url: str
    canonical_url: str | None = None
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    body: str
    language: str | None = None
    content_hash: str
    fetched_at: datetime
    # which opinion of the body chain gave the body: dom | json-ld | embedded | trafilatura
    # | main (docs/extraction.md); None for rows written before the chain
    extracted_by: str | None = None


class Comment(_Record):
    comment_id: str
    article_id: str
    author: str | None = None
    body: str
    posted_at: datetime | None = None
    parent_id: str | None = None


class ClaimDraft(_Record):
    """A claim as the extractor finds it in one text, before it is given ids."""

    speaker: str | None
    speaker_entity: str | None = None
    cue: str | None
    content: str
    sentence: str
    quote_kind: QuoteKind
    entities: tuple[str, ...] = ()
    # character offsets of the content in the article body (for evaluation and highlighting)
    content_start: int = -1
    content_end: int = -1
    # the content's pieces in the body (one, or several when a quotation is interrupted by
    # its attribution: '"A," X said. "B."'), the cue words' and the speaker phrase's spans
    content_pieces: tuple[tuple[int, int], ...] = ()
    cue_spans: tuple[tuple[int, int], ...] = ()
    speaker_span: tuple[int, int] | None = None


class Claim(_Record):
    claim_id: str
    article_id: str
    speaker: str | None
    speaker_entity: str | None
    cue: str | None
    content: str
    sentence: str
    quote_kind: QuoteKind
    entities: tuple[str, ...] = ()
    claim_key: str = ""  # schemas.ids.claim_key_for(content)


# how an alert goes out: a message per claim, the run's claims in one message per channel
# (a rule's `mode: digest`), folded into a first-run or backfill summary (`alerts.first_run:
# digest`), or recorded and never sent (`alerts.first_run: none`)
DeliveryMode = Literal["immediate", "digest", "summary", "muted"]


class PlannedAlert(_Record):
    """An alert a new claim raises under one rule, for one entity and channel."""

    alert_id: str
    claim_id: str
    claim_key: str
    entity: str
    channel: str  # masked
    rule: str
    mode: DeliveryMode


class Stance(_Record):
    comment_id: str
    topic: str
    label: StanceLabel
    score: float = Field(ge=0.0, le=1.0)


class FetchRequest(_Record):
    """One URL to fetch, with what the last fetch told us so an unchanged page costs a 304."""

    url: str
    source: str
    etag: str | None = None
    last_modified: str | None = None
    discovered_at: datetime | None = None


class FetchResult(_Record):
    """One attempt to fetch one URL, successful or not; a row of `fetch_log`."""

    url: str
    source: str
    final_url: str | None = None
    status: int | None = None
    ok: bool
    content: builtins.bytes | None = None
    content_type: str | None = None
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes: int = 0
    duration_ms: int = 0
    error: str | None = None
    not_modified: bool = False
    fetched_at: datetime
    # the Content-Location header: the base relative links in the content resolve against
    content_location: str | None = None

    @property
    def gone(self) -> bool:
        """404 and 410 mean the page is gone: recorded, and not fetched again every night."""
        return not self.ok and self.status in (404, 410)


class Reject(_Record):
    """A page or item dropped at some stage, kept with its reason so it is retried later."""

    url: str
    source: str
    stage: Literal["discover", "fetch", "parse", "extract", "load", "notify"]
    reason: str


class AlertMessage(_Record):
    """What a channel is told about one new claim on a tracked entity."""

    alert_id: str
    claim_id: str
    entity: str
    channel: str
    speaker: str | None
    cue: str | None
    content: str
    sentence: str
    article_title: str | None
    source: str
    url: str
    published_at: datetime | None
    attempts: int = 0  # deliveries tried before this one
    rule: str = "tracked"
    mode: DeliveryMode = "immediate"
    outlets: tuple[str, ...] = ()  # "source: url" of every article carrying the claim


@dataclass(frozen=True)
class SourceNight:
    """One source's night in numbers: listed items not stored yet (`found`, the backlog
    included), how many were `fetched`, `deferred` to a later night, or `expired`."""

    source: str
    found: int = 0
    fetched: int = 0
    deferred: int = 0
    expired: int = 0
    backlog: int = 0  # waiting after tonight


class RunSummary(_Record):
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    status: Literal["running", "completed", "failed"]
    articles_new: int = 0
    comments_new: int = 0
    claims_new: int = 0
    stances_new: int = 0
    alerts_sent: int = 0
    alerts_failed: int = 0
    pages_failed: int = 0
    # new or changed articles by the opinion that gave their body ({"dom": 40, ...})
    extracted_by: dict[str, int] = Field(default_factory=dict)
    failures: tuple[Reject, ...] = ()
    sources: tuple[SourceNight, ...] = ()  # found, fetched, deferred, expired per source
    report_path: str | None = None  # the run's briefing page


# -- a page's crawl state and this night's outcome (plain dataclasses: built per page, hot) --

@dataclass(frozen=True)
class PageState:
    """What the store knows of one page from earlier nights."""

    url: str
    status: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    article_id: str | None
    attempts: int
    last_fetched_at: datetime | None = None
    published_at: datetime | None = None  # of the page's article, where one is stored


@dataclass
class PageOutcome:
    """What happened to one discovered page in this run."""

    url: str  # as discovered
    source: str
    fetch: FetchResult | None
    article_id: str | None = None
    content_hash: str | None = None
    error: str | None = None
    gone: bool = False


@dataclass(frozen=True)
class Listing:
    """A feed or sitemap as last fetched: its validators and content, for a conditional GET."""

    etag: str | None
    last_modified: str | None
    content: builtins.bytes


@dataclass(frozen=True)
class Signature:
    """An article's MinHash and its band buckets, recorded so later copies are found."""

    article_id: str
    source: str
    title_key: str | None
    minhash: builtins.bytes
    bands: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Duplicate:
    """A page whose article copies an earlier one: its own id and the article it joins."""

    article_id: str
    duplicate_of: str
    url: str
    reason: str  # canonical | near-duplicate
    similarity: float | None


@dataclass(frozen=True)
class BacklogItem:
    """A listed item a night had no budget for, waiting for a later night."""

    url: str  # normalised
    listed_url: str
    published_at: datetime | None
    first_deferred_at: datetime
    nights: int  # nights it was left over, tonight included
    reason: str | None = None  # set when it expired


@dataclass
class PageBatch:
    """What one source's night produced, ready for the night's one load.

    Besides the pages' records it carries what the crawl learnt for the store: the feeds
    and sitemaps fetched afresh, the signatures of new articles and the copies merged.
    """

    source: str = ""
    outcomes: list[PageOutcome] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    fetch_log: list[FetchResult] = field(default_factory=list)
    unchanged: int = 0
    listings: dict[str, Listing] = field(default_factory=dict)
    signatures: list[Signature] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    deferred: list[BacklogItem] = field(default_factory=list)  # waiting after tonight
    expired: list[BacklogItem] = field(default_factory=list)
    night: SourceNight | None = None
