"""The user's YAML config, validated by pydantic.

`load_config` turns every problem into a `ConfigError` whose one-line message names the key
and, where the YAML gives it, the line: "sources[1].feed (line 7): ...".
"""

from __future__ import annotations

import functools
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.addresses import parse_allow_entry
from schemas.errors import ConfigError

EntityKind = Literal["person", "org", "country", "policy", "product", "other"]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A key written with nothing after it (`aliases:`, `alerts:`) is YAML null: for a list it
# means empty, for a section its defaults (the `_none_is_*` validators below).
def _empty_list(value: Any) -> Any:
    return () if value is None else value


def _empty_section(value: Any) -> Any:
    return {} if value is None else value


class CommentSelectors(_Strict):
    """Per-source CSS selectors that override comment detection."""

    item: str
    body: str | None = None
    author: str | None = None
    time: str | None = None
    parent_attr: str | None = None


class CommentEndpoint(_Strict):
    """Comments served as JSON: a URL template with {url}, {canonical} or {article_id}
    (URL-encoded), and where each field is in the answer (dotted paths).

    "Load more" endpoints: `next` is the dotted path to the next page in the answer, a URL
    (absolute or relative) or, with `page_param`, a cursor or page number put in that query
    parameter of the last URL; at most `max_pages` pages are read per article. An answer
    whose `items` is a string, or that is not JSON at all, is an HTML fragment of comments,
    read like the page's own (the source's `comments` selectors, else detection); there the
    next page is a `rel=next` or "load more" link (href, data-href, data-url or data-next).
    """

    url: str
    items: str = "comments"  # dotted path to the list in the JSON answer; "" for a bare list
    id: str = "id"
    author: str = "author"
    body: str = "body"
    time: str = "created_at"
    parent: str = "parent_id"
    next: str = ""  # dotted path to the next page (URL or cursor); "" when not paginated
    page_param: str = ""  # query parameter carrying a cursor or page number from `next`
    max_pages: int = Field(default=20, ge=1, le=200)


class Source(_Strict):
    name: str
    feed: AnyHttpUrl | None = None
    sitemap: AnyHttpUrl | None = None
    homepage: AnyHttpUrl | None = None
    urls: tuple[AnyHttpUrl, ...] = ()
    comments: CommentSelectors | None = None
    comments_api: CommentEndpoint | None = None
    max_items: int = Field(default=200, ge=1)

    @field_validator("urls", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return _empty_list(value)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be a slug: lower-case letters, digits, '-' and '_'")
        return value

    @model_validator(mode="after")
    def _has_somewhere_to_look(self) -> Source:
        if not (self.feed or self.sitemap or self.homepage or self.urls):
            raise ValueError("needs one of 'feed', 'sitemap', 'homepage' or 'urls'")
        return self


class Entity(_Strict):
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    kind: EntityKind = "other"
    tracked: bool = False

    @field_validator("aliases", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return _empty_list(value)

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name first, then every alias."""
        return (self.name, *self.aliases)


class Topic(_Strict):
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


def _notification_url(value: str) -> str:
    if "://" not in value:
        raise ValueError(f"{value!r} is not a notification URL (scheme://...)")
    return value


ChannelUrl = Annotated[str, AfterValidator(_notification_url)]


AlertMode = Literal["immediate", "digest"]
# what the first run of a database (and any `run --backfill`) sends: one digest per channel
# (counts per entity, the top claims, the briefing's link), every alert, or nothing
FirstRunMode = Literal["digest", "each", "none"]
# the comment encoder of the stance task (docs/stance.md): the 6-layer MiniLM, or the
# 3-layer distilled one (twice as fast; 0.567 vs 0.579 macro-F1 on ARC's unseen claims)
StanceEncoder = Literal["minilm", "distilled"]


class AlertRule(_Strict):
    """Which new claims alert whom. Without rules, every tracked entity alerts every channel."""

    name: str = Field(min_length=1)
    entities: tuple[str, ...] = ()  # canonical entity names; empty: every tracked entity
    speakers: tuple[str, ...] = ()  # only claims by these speakers (name or entity)
    topics: tuple[str, ...] = ()  # only claims close in meaning to one of these topics
    topic_similarity: float = Field(default=0.25, ge=0, le=1)  # cosine, sentence vs topic
    min_outlets: int = Field(default=1, ge=1)  # wait until this many outlets carry the claim
    # events ("Huawei unveiled a cluster", claims.quote_kind 'event') alert only when asked
    include_events: bool = False
    channels: tuple[ChannelUrl, ...] = ()  # empty: alerts.channels
    mode: AlertMode | None = None  # empty: alerts.mode

    @field_validator("entities", "speakers", "topics", "channels", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return _empty_list(value)


class Alerts(_Strict):
    channels: tuple[ChannelUrl, ...] = ()
    mode: AlertMode = "immediate"  # immediate: a message per claim; digest: one per run
    first_run: FirstRunMode = "digest"  # a first or backfill run: no flood of old claims
    max_attempts: int = Field(default=10, ge=1, le=100)  # tries in all, across runs
    rules: tuple[AlertRule, ...] = ()
    feeds_dir: Path | None = None  # Atom feeds per tracked entity; default: beside the database
    # messages a channel gets per run: alerts about one article beyond `max_per_article`,
    # and any beyond `max_per_run`, are folded into one extra message with the counts
    max_per_article: int = Field(default=10, ge=1)
    max_per_run: int = Field(default=100, ge=1)

    @field_validator("channels", "rules", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return _empty_list(value)


class Crawl(_Strict):
    """How politely and how far back to fetch."""

    user_agent_contact: str | None = None
    window_days: float = Field(default=7, gt=0)
    timeout_s: float = Field(default=20, gt=0)
    page_deadline_s: float = Field(default=60, gt=0)
    max_bytes: int = Field(default=10_000_000, gt=0)
    per_host_concurrency: int = Field(default=2, ge=1)
    per_host_delay_s: float = Field(default=0.0, ge=0)
    retries: int = Field(default=3, ge=0, le=10)
    obey_robots: bool = True
    # a stored article older than this is not requested again unless its feed or sitemap
    # entry says it changed since (comments mostly arrive in the first days); None: always
    revisit_days: float | None = Field(default=2, gt=0)
    # a source that has yielded no new article for this many days raises a health alert
    stale_after_days: float | None = Field(default=3, gt=0)
    # loopback, private, link-local, CGNAT, multicast, ... addresses are refused (SSRF);
    # true allows them all, or list hosts, host:port pairs and CIDR ranges (docs/security.md)
    allow_private_addresses: bool | tuple[str, ...] = False
    # feeds, sitemaps and robots.txt fetched per source and night
    max_listing_fetches: int = Field(default=50, ge=1)
    # addresses collected from a source's listings: this many times its max_items
    max_listed_per_item: int = Field(default=10, ge=1)

    @field_validator("allow_private_addresses", mode="before")
    @classmethod
    def _allow_entries(cls, value: Any) -> Any:
        if value is None:
            return False
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            for entry in value:
                if not isinstance(entry, str):
                    raise ValueError(f"{entry!r}: write each entry as a string")
                parse_allow_entry(entry)
        return value


class Performance(_Strict):
    """How a night uses this machine's cores (docs/performance.md)."""

    # worker processes for the CPU-bound stages (parsing pages, extracting claims);
    # None: one per core; 1: everything stays in the flow process
    processes: int | None = Field(default=None, ge=1)
    # batches smaller than this stay in the flow process: starting workers costs ~1 s
    min_batch: int = Field(default=32, ge=1)
    stance_encoder: StanceEncoder = "minilm"
    # characters of an article's body that claim extraction reads; the rest is cut, and the
    # cut recorded as a reject (a 9 MB paragraph took minutes and gigabytes)
    max_text_chars: int = Field(default=100_000, ge=1000)


class Runner(_Strict):
    """Where claims and stances are computed: in this process (`local`) or on Dask workers.

    The crawl and the load stay in the flow process either way: DuckDB has one writer.
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None  # a running scheduler, tcp://host:8786; None: a LocalCluster
    workers: int = Field(default=2, ge=1)  # LocalCluster workers (without `address`)
    threads: bool = False  # LocalCluster workers as threads of this process (tests)
    chunk: int = Field(default=100, ge=1)  # articles per Dask task (comments: 5x as many)


class Config(_Strict):
    database: Path = Path("policywatch.duckdb")
    sources: tuple[Source, ...] = Field(min_length=1)
    entities: tuple[Entity, ...] = ()
    topics: tuple[Topic, ...] = ()
    alerts: Alerts = Alerts()
    crawl: Crawl = Crawl()
    performance: Performance = Performance()
    runner: Runner = Runner()
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    reports_dir: Path | None = None  # the nightly briefing pages; default: beside the database

    @field_validator("sources", "entities", "topics", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return _empty_list(value)

    @field_validator("alerts", "crawl", "performance", "runner", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return _empty_section(value)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        # croniter is what Prefect's CronSchedule checks with (it vendors a copy); importing
        # prefect here would freeze its settings before `serve` sets PREFECT_API_URL
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron string, such as '0 2 * * *'")
        # as Prefect's CronSchedule: croniter's random (R) and hashed (H) fields are refused
        if any(field.casefold() in ("r", "h") for field in value.split()):
            raise ValueError(f"{value!r}: random (R) and hashed (H) fields are not supported")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            known = False
        else:  # Prefect's schedules also want it among the listed IANA names
            known = value in _timezones()
        if not known:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                             "'Europe/Berlin' or 'UTC'")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        named: tuple[tuple[str, Sequence[Source | Entity | Topic]], ...] = (
            ("sources", self.sources), ("entities", self.entities), ("topics", self.topics))
        for key, items in named:
            seen: dict[str, int] = {}
            for index, item in enumerate(items):
                if item.name in seen:
                    raise _DuplicateName(key, index, item.name, seen[item.name])
                seen[item.name] = index
        return self

    @model_validator(mode="after")
    def _rules_name_known_entities(self) -> Config:
        known = {entity.name for entity in self.entities}
        topics = {topic.name for topic in self.topics}
        for index, rule in enumerate(self.alerts.rules):
            for position, name in enumerate(rule.entities):
                if name not in known:
                    raise _BadReference(("alerts", "rules", index, "entities", position),
                                        f"{name!r} is not an entity in 'entities'")
            for position, name in enumerate(rule.topics):
                if name not in topics:
                    raise _BadReference(("alerts", "rules", index, "topics", position),
                                        f"{name!r} is not a topic in 'topics'")
        return self

    @property
    def tracked_entities(self) -> tuple[Entity, ...]:
        return tuple(entity for entity in self.entities if entity.tracked)

    def alert_rules(self) -> tuple[AlertRule, ...]:
        """The rules in force, each with its entities, channels and mode filled in."""
        tracked = tuple(entity.name for entity in self.tracked_entities)
        rules = self.alerts.rules or (AlertRule(name="tracked"),)
        return tuple(
            rule.model_copy(update={
                "entities": rule.entities or tracked,
                "channels": rule.channels or self.alerts.channels,
                "mode": rule.mode or self.alerts.mode,
            })
            for rule in rules
        )


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class _DuplicateName(ValueError):
    def __init__(self, key: str, index: int, name: str, first: int) -> None:
        super().__init__(f"duplicate name {name!r} (first used by {key}[{first}])")
        self.loc: tuple[str | int, ...] = (key, index, "name")


class _BadReference(ValueError):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


# -- loading -----------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping key and sequence item, and
    refuses a key repeated in one mapping (PyYAML would keep the last one silently)."""

    paths: dict[int, tuple[str | int, ...]]

    def construct_document(self, node: yaml.Node) -> Any:
        # where each node sits in the document, for naming the key of a duplicate
        self.paths = {}
        stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(node, ())]
        while stack:
            current, path = stack.pop()
            if id(current) in self.paths:  # an alias: named by its first place
                continue
            self.paths[id(current)] = path
            if isinstance(current, yaml.MappingNode):
                stack.extend((value, (*path, key.value)) for key, value in current.value
                             if isinstance(key, yaml.ScalarNode))
            elif isinstance(current, yaml.SequenceNode):
                stack.extend((child, (*path, index)) for index, child in enumerate(current.value))
        return super().construct_document(node)


class _DuplicateKey(Exception):
    def __init__(self, loc: tuple[str | int, ...], line: int, first: int) -> None:
        super().__init__(f"{_dotted(loc)} (line {line}): duplicate key; first at line {first}")
        self.loc, self.line, self.first = loc, line, first


def _refuse_duplicate_keys(loader: _LineLoader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        # keys merged in with `<<: *anchor` may be overridden; only written keys count
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            where = loader.paths.get(id(node), ())
            raise _DuplicateKey((*where, key_node.value), line, seen[key])
        seen[key] = line


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    _refuse_duplicate_keys(loader, node)
    mapping = loader.construct_mapping(node, deep=True)
    lines = {
        key_node.value: key_node.start_mark.line + 1
        for key_node, _ in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    return _LinedDict(mapping, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = loader.construct_sequence(node, deep=True)
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value])


class _LinedDict(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class _LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(root: Any, loc: tuple[str | int, ...]) -> int | None:
    """The YAML line of the deepest part of `loc` that exists in the document."""
    node, line = root, getattr(root, "line", None)
    for part in loc:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LinedList) and isinstance(part, int) and part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _unset_variables(url: str, environ: Mapping[str, str]) -> list[str]:
    """The `${NAME}` (or `$NAME`) references in a channel URL that the environment lacks."""
    return [name for name in Template(url).get_identifiers() if name not in environ]


ChannelCheck = Callable[[str], str | None]


def _channel_places(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    places: list[tuple[tuple[str | int, ...], str]] = [
        (("alerts", "channels", i), url) for i, url in enumerate(config.alerts.channels)]
    places += [(("alerts", "rules", r, "channels", i), url)
               for r, rule in enumerate(config.alerts.rules)
               for i, url in enumerate(rule.channels)]
    return places


def _check_channels(config: Config, data: Any, origin: str, check: ChannelCheck) -> None:
    """A `ConfigError` naming the key and line of the first channel `check` refuses; the
    message is `check`'s, which must not repeat the URL's secrets."""
    for loc, url in _channel_places(config):
        problem = check(url)
        if problem is not None:
            line = _line_of(data, loc)
            where = f" (line {line})" if line else ""
            raise ConfigError(f"{origin}: {_dotted(loc)}{where}: {problem}")


def _check_channel_variables(config: Config, data: Any, origin: str,
                             environ: Mapping[str, str]) -> None:
    """A ConfigError naming the first channel whose `${NAME}` is not set: found now, not
    at the first alert, nights later."""
    for loc, url in _channel_places(config):
        missing = _unset_variables(url, environ)
        if missing:
            line = _line_of(data, loc)
            where = f" (line {line})" if line else ""
            names = ", ".join(f"${{{name}}}" for name in missing)
            raise ConfigError(f"{origin}: {_dotted(loc)}{where}: {names} "
                              f"{'is' if len(missing) == 1 else 'are'} not set in the "
                              "environment")


def parse_config(text: str, *, origin: str = "config", base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None,
                 check_channel: ChannelCheck | None = None) -> Config:
    """Validate YAML text as a `Config`; relative paths resolve against `base_dir`.

    With `environ` (`load_config` passes `os.environ`), every `${NAME}` in a channel URL
    must be set in it. `check_channel(url)` (tasks.alerts.channel_problem: apprise lives
    there) then vets every alert channel: what it returns is a config error at the
    channel's key and line."""
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{origin}{where}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with at least 'sources'")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc: tuple[str | int, ...] = tuple(error["loc"])
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _DuplicateName | _BadReference):
            loc = ctx_error.loc
        # pydantic reports union/url members as extra loc parts; keep the user's keys only
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-",
                                                                                 "url["))))
        line = _line_of(data, loc)
        where = f" (line {line})" if line else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {_dotted(loc)}{where}: {message}{more}") from exc
    if environ is not None:
        _check_channel_variables(config, data, origin, environ)
    if check_channel is not None:
        _check_channels(config, data, origin, check_channel)
    if base_dir is not None and not config.database.is_absolute():
        config = config.model_copy(update={"database": base_dir / config.database})
    if base_dir is not None and config.reports_dir is not None \
            and not config.reports_dir.is_absolute():
        config = config.model_copy(update={"reports_dir": base_dir / config.reports_dir})
    feeds = config.alerts.feeds_dir
    if base_dir is not None and feeds is not None and not feeds.is_absolute():
        config = config.model_copy(update={"alerts": config.alerts.model_copy(
            update={"feeds_dir": base_dir / feeds})})
    return config


def load_config(path: Path | str, check_channel: ChannelCheck | None = None, *,
                check_environment: bool = True) -> Config:
    """Read and validate a config file; paths inside it are relative to the file.

    `check_environment=False` skips the check that channel URLs' `${NAME}`s are set (for
    commands that only read the database)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    return parse_config(text, origin=str(path), base_dir=path.resolve().parent,
                        environ=os.environ if check_environment else None,
                        check_channel=check_channel)
