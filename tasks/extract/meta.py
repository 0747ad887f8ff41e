"""Page metadata: title, author, dates, language and canonical URL, with where each came from.

Sources, strongest first: JSON-LD (schema.org Article types, @graph included), OpenGraph,
other <meta> tags (article:*, author, date, Dublin Core, parsely, sailthru), <time datetime>,
bylines in the page, and finally a date in the URL path (/2026/11/28/).
"""

from __future__ import annotations

import html as htmllib
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from dateutil import parser as dateparser
from lxml import html

from schemas.ids import join_url
from tasks.extract.text import clean

ARTICLE_TYPES = frozenset({
    "article", "newsarticle", "blogposting", "reportagenewsarticle", "analysisnewsarticle",
    "opinionnewsarticle", "backgroundnewsarticle", "reviewnewsarticle", "liveblogposting",
    "techarticle", "scholarlyarticle", "report", "socialmediaposting", "posting",
    "discussionforumposting", "advertisercontentarticle", "satiricalarticle", "medicalwebpage",
})


@dataclass
class Metadata:
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    modified_at: datetime | None = None
    language: str | None = None
    canonical_url: str | None = None
    article_body: str | None = None  # JSON-LD articleBody, a hint for the body extractor
    description: str | None = None  # og:description / meta description: what the page is about
    fallback_author: str | None = None  # an organisation named as author in JSON-LD
    titles: list[tuple[str, str]] = field(default_factory=list)  # (title, source) offered
    provenance: dict[str, str] = field(default_factory=dict)

    def offer(self, name: str, value: Any, source: str) -> None:
        """Keep the first plausible value of a field, and note where it came from."""
        if name == "title" and isinstance(value, str) and value:
            # titles are weighed against the page's headline at the end: keep every one
            self.titles.append((htmllib.unescape(value), source))
            return
        if value is None or value == "" or getattr(self, name) is not None:
            return
        setattr(self, name, value)
        self.provenance[name] = source


# -- JSON-LD ---------------------------------------------------------------------------------


def json_ld_objects(root: html.HtmlElement) -> list[dict[str, Any]]:
    """Every JSON object in the page's ld+json scripts, @graph and lists flattened."""
    out: list[dict[str, Any]] = []
    for script in root.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        text = (script.text or "").strip()
        if text.startswith("<!--"):
            text = text.removeprefix("<!--").removesuffix("-->")
        text = text.strip().removeprefix("//<![CDATA[").removesuffix("//]]>").strip()
        try:
            data = json.loads(text, strict=False)
        except ValueError:
            # a trailing comma or a stray semicolon: common, and cheap to forgive
            try:
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", text.rstrip(";")), strict=False)
            except ValueError:
                continue
        out.extend(_flatten(data))
    return out


def _flatten(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict):
        yield data
        if isinstance(data.get("@graph"), list):
            yield from _flatten(data["@graph"])


def types_of(obj: dict[str, Any]) -> set[str]:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.rsplit("/", 1)[-1].lower() for k in kinds if isinstance(k, str)}


def _by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["@id"]: o for o in objects if isinstance(o.get("@id"), str)}


def _names(value: Any, index: dict[str, dict[str, Any]]) -> list[str]:
    """Names of a schema.org author value: a string, a Person, an @id reference, a list."""
    if isinstance(value, list):
        return [name for item in value for name in _names(item, index)]
    if isinstance(value, str):
        return [] if value.startswith(("http://", "https://", "/")) else [clean(value)]
    if isinstance(value, dict):
        if "name" not in value and isinstance(value.get("@id"), str):
            value = index.get(value["@id"], value)
        name = value.get("name")
        if isinstance(name, list):
            name = name[0] if name else None
        if isinstance(name, str) and clean(name):
            return [clean(name)]
        given, family = value.get("givenName"), value.get("familyName")
        if isinstance(given, str) and isinstance(family, str):
            return [clean(f"{given} {family}")]
    return []


def _only_organisations(value: Any, index: dict[str, dict[str, Any]]) -> bool:
    items = value if isinstance(value, list) else [value]
    found = False
    for item in items:
        if isinstance(item, dict) and "name" not in item and isinstance(item.get("@id"), str):
            item = index.get(item["@id"], item)
        if not isinstance(item, dict):
            return False
        if not types_of(item) & {"organization", "newsmediaorganization", "corporation"}:
            return False
        found = True
    return found


def _first_str(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("@value") or value.get("@id") or value.get("url")
    return value if isinstance(value, str) else None


def article_object(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The page's main article object: an Article type, else a WebPage with a headline."""
    articles = [o for o in objects if types_of(o) & ARTICLE_TYPES]
    if not articles:
        articles = [o for o in objects if "webpage" in types_of(o)
                    and (o.get("headline") or o.get("datePublished"))]
    if not articles:
        return None
    # several: the one that says most about itself is the page's own, not a teaser
    return max(articles, key=lambda o: (bool(o.get("articleBody")), bool(o.get("headline")),
                                        bool(o.get("datePublished")), len(o)))


def _from_json_ld(meta: Metadata, objects: list[dict[str, Any]], now: datetime) -> None:
    article = article_object(objects)
    if article is None:
        return
    index = _by_id(objects)
    meta.offer("title", clean(_first_str(article.get("headline"))
                              or _first_str(article.get("name"))) or None, "json-ld")
    raw = article.get("author") or article.get("creator")
    names = [n for n in (_author_text(name) for name in _names(raw, index)) if n]
    if names and not _only_organisations(raw, index):
        meta.offer("author", join_names(names), "json-ld")
    else:
        # an organisation as author: a person's byline on the page is better, if there is one
        meta.fallback_author = join_names(names)
    meta.offer("published_at", parse_date(_first_str(article.get("datePublished"))
                                          or _first_str(article.get("dateCreated")), now),
               "json-ld")
    meta.offer("modified_at", parse_date(_first_str(article.get("dateModified")), now),
               "json-ld")
    lang = article.get("inLanguage")
    if isinstance(lang, dict):
        lang = lang.get("name") or lang.get("alternateName")
    meta.offer("language", normalise_language(_first_str(lang)), "json-ld")
    body = article.get("articleBody")
    if isinstance(body, str) and body.strip():
        meta.article_body = body


# -- <meta> tags -----------------------------------------------------------------------------

_META_KEYS: dict[str, tuple[str, str]] = {
    # key (property, name or itemprop; lower-case) -> (field, provenance)
    "og:title": ("title", "og"),
    "twitter:title": ("title", "meta"),
    "dc.title": ("title", "meta"),
    "dcterms.title": ("title", "meta"),
    "citation_title": ("title", "meta"),
    "headline": ("title", "meta"),
    "article:published_time": ("published_at", "og"),
    "og:published_time": ("published_at", "og"),
    "article:published": ("published_at", "og"),
    "datepublished": ("published_at", "meta"),
    "article.published": ("published_at", "meta"),
    "article_date_original": ("published_at", "meta"),
    "publish-date": ("published_at", "meta"),
    "publish_date": ("published_at", "meta"),
    "publishdate": ("published_at", "meta"),
    "pubdate": ("published_at", "meta"),
    "date": ("published_at", "meta"),
    "dc.date": ("published_at", "meta"),
    "dc.date.issued": ("published_at", "meta"),
    "dc.date.created": ("published_at", "meta"),
    "dcterms.created": ("published_at", "meta"),
    "dcterms.issued": ("published_at", "meta"),
    "dcterms.date": ("published_at", "meta"),
    "citation_publication_date": ("published_at", "meta"),
    "citation_date": ("published_at", "meta"),
    "sailthru.date": ("published_at", "meta"),
    "parsely-pub-date": ("published_at", "meta"),
    "originalpublicationdate": ("published_at", "meta"),
    "displaydate": ("published_at", "meta"),
    "og:updated_time": ("modified_at", "og"),
    "article:modified_time": ("modified_at", "og"),
    "datemodified": ("modified_at", "meta"),
    "last-modified": ("modified_at", "meta"),
    "dcterms.modified": ("modified_at", "meta"),
    "author": ("author", "meta"),
    "article:author": ("author", "og"),
    "dc.creator": ("author", "meta"),
    "dcterms.creator": ("author", "meta"),
    "citation_author": ("author", "meta"),
    "parsely-author": ("author", "meta"),
    "sailthru.author": ("author", "meta"),
    "byl": ("author", "meta"),
    "og:url": ("canonical_url", "og"),
    "og:locale": ("language", "og"),
    "content-language": ("language", "meta"),
    "dc.language": ("language", "meta"),
    "language": ("language", "meta"),
}


def _meta_values(root: html.HtmlElement) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for tag in root.iter("meta"):
        content = tag.get("content")
        if content is None or not content.strip():
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            key = (tag.get(attr) or "").strip().lower()
            if key:
                values.setdefault(key, []).append(content.strip())
    return values


def _from_meta(meta: Metadata, values: dict[str, list[str]], url: str, now: datetime) -> None:
    # two passes so that OpenGraph beats the looser <meta name=...> keys for the same field
    for wanted in ("og", "meta"):
        for key, (name, source) in _META_KEYS.items():
            if source != wanted or key not in values:
                continue
            for raw in values[key]:
                value: Any = raw
                if name in ("published_at", "modified_at"):
                    value = parse_date(raw, now)
                elif name == "author":
                    value = _author_text(raw)
                elif name == "language":
                    value = normalise_language(raw)
                elif name == "canonical_url":
                    value = join_url(url, raw) if raw.startswith(("http", "/")) else None
                else:
                    value = clean(raw) or None
                if value is not None:
                    meta.offer(name, value, source)
                    break


def _author_text(raw: str) -> str | None:
    """An author from a meta tag or byline: no URLs, no "By ", no trailing dates."""
    text = clean(raw)
    if not text or text.startswith(("http://", "https://", "www.", "/")) or "@" in text:
        return None
    text = re.sub(r"^(?:(?:written|posted|reported)\s+)?by[:\s]+", "", text, flags=re.I)
    # a label before the name ("Text: ...", "Autor: ..."), a site after it (", Site.com")
    text = re.sub(r"^[^\W\d_]{2,12}\s?:\s+(?=\S+\s+\S)", "", text)
    text = re.sub(r",\s*\S+\.(?:com|org|net|co\.uk|ca)\b.*$", "", text, flags=re.I)
    text = re.split(r"\s*(?:\||•|·|—|–| - |\bon\b\s+\w+\s+\d|\bpublished\b|\bupdated\b)\s*",
                    text, maxsplit=1, flags=re.I)[0]
    text = text.strip(" ,;:-")
    if not text or len(text) > 100 or not re.search(r"[^\W\d_]", text):
        return None
    if re.search(r"\d{1,2}:\d\d|\b(?:19|20)\d\d\b", text):  # a date or time, not a name
        return None
    return text


def join_names(names: list[str]) -> str | None:
    seen: list[str] = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return ", ".join(seen) or None


# -- the page itself ---------------------------------------------------------------------------

_BYLINE_HINT = re.compile(r"byline|\bauthor|by-?line|article-?by|writer|contributor", re.I)
_DATE_HINT = re.compile(r"publish|posted|dateline|pubdate|\bdate\b|timestamp|entry-date", re.I)


def _from_page(meta: Metadata, root: html.HtmlElement, now: datetime) -> None:
    updated: datetime | None = None
    for node in root.iter("time"):
        stamp = node.get("datetime") or node.get("content")
        if not stamp:
            continue
        itemprop = (node.get("itemprop") or "").lower()
        hints = f"{itemprop} {node.get('class') or ''} {node.get('pubdate') or ''}"
        hints = hints.lower()
        if ("modified" in hints or "updated" in hints) and "publish" not in hints:
            meta.offer("modified_at", parse_date(stamp, now), "time")
            # hAtom themes mark the post date "updated": with no other date, it is the one
            updated = updated or parse_date(stamp, now)
            continue
        meta.offer("published_at", parse_date(stamp, now), "time")
    meta.offer("published_at", updated, "time")
    if meta.author is None:
        meta.offer("author", _byline(root), "byline")
    meta.offer("author", meta.fallback_author, "json-ld")
    if meta.published_at is None:
        for node in root.iter("span", "div", "p"):
            if node.get("class") and _DATE_HINT.search(node.get("class") or "") and len(node) < 4:
                found = parse_date(clean(node.text_content())[:80], now, fuzzy=True)
                if found is not None:
                    meta.offer("published_at", found, "byline")
                    break


_STAFF = re.compile(
    r"^(?:the\s+)?(?:[\w&.'’-]+\s+){0,3}?(?:staff|staff\s+(?:writers?|reporters?)|newsroom"
    r"|news\s*desk|desk|editors?|editorial(?:\s+(?:staff|team))?|web\s*desk"
    r"|team|redacci[oó]n|r[ée]daction|redaktion)$", re.IGNORECASE)
_ROLE_AFTER = re.compile(r"(?:,|\s+-|\s+–)?\s+(?:staff\s+(?:writer|reporter)|senior\s+writer"
                         r"|contributing\s+writer|contributor|correspondent)$", re.IGNORECASE)


def _fold(text: str) -> str:
    return re.sub(r"[^\w]", "", re.sub(r"^the\s+", "", text.strip().lower()))


def _site_names(url: str, site: str | None) -> set[str]:
    """The site's own names: og:site_name and the host's name ("theledger" for
    www.theledger.com), folded."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    names = {_fold(host), _fold(host.split(".")[0])} if host else set()
    if site:
        names.add(_fold(site))
    return names - {""}


def is_person_name(name: str, url: str, site: str | None) -> bool:
    """Not the site's own name, not a domain, not "Staff" or a desk."""
    folded = _fold(name)
    return bool(folded) and not _STAFF.match(name.strip()) and folded not in \
        _site_names(url, site) and not re.search(r"\.(?:com|org|net|co|news)\b", name, re.I)


def _only_people(meta: Metadata, root: html.HtmlElement, url: str, site: str | None) -> None:
    """Names that are the site's own or a desk ("Staff") are not authors: dropped, and the
    page's byline asked instead when nothing is left."""
    if meta.author is None or meta.author == meta.fallback_author:
        return  # none, or an organisation the page declares as the author (JSON-LD)
    names = [_ROLE_AFTER.sub("", n).strip() for n in meta.author.split(", ")]
    kept = [n for n in names if is_person_name(n, url, site)]
    if kept:
        meta.author = join_names(kept)
        return
    meta.author = None
    meta.provenance.pop("author", None)
    byline = _byline(root)
    if byline is not None:
        kept = [_ROLE_AFTER.sub("", n).strip() for n in byline.split(", ")]
        kept = [n for n in kept if is_person_name(n, url, site)]
        meta.offer("author", join_names(kept), "byline")
    meta.offer("author", meta.fallback_author, "json-ld")


def htmldate_opinion(root: html.HtmlElement, now: datetime) -> datetime | None:
    """htmldate's publication date, as a second opinion when the page's own markup gave
    none (fast settings; htmldate prunes a copy of the tree it is given, not the tree)."""
    try:
        from htmldate import find_date
    except ImportError:  # pragma: no cover - a runtime dependency, but never fatal
        return None
    try:
        found = find_date(root, extensive_search=False, original_date=True,
                          outputformat="%Y-%m-%dT%H:%M:%S", max_date=now.strftime("%Y-%m-%d"))
    except Exception:  # a second opinion must never sink the page
        return None
    return parse_date(found, now) if found else None


def _byline(root: html.HtmlElement) -> str | None:
    for node in root.iter("a", "span", "div", "p", "address"):
        if node.get("rel") == "author" or "author" in (node.get("itemprop") or "").lower().split():
            target = node
            for inner in node.iter():
                if (inner.get("itemprop") or "").lower() == "name":
                    target = inner
                    break
            found = _author_text(target.text_content() or target.get("content") or "")
            if found:
                return found
    for node in root.iter("a", "span", "div", "p", "address"):
        hint = f"{node.get('class') or ''} {node.get('id') or ''}"
        if not _BYLINE_HINT.search(hint) or re.search(r"avatar|bio|img|image|photo", hint, re.I):
            continue
        text = clean(node.text_content())
        if 2 < len(text) < 120:
            found = _author_text(text)
            if found and len(found.split()) <= 8:
                return found
    return None


_URL_DATE = re.compile(
    r"/((?:19|20)\d\d)[/_-]?(0[1-9]|1[0-2])[/_-]?(0[1-9]|[12]\d|3[01])(?:[/_.-]|$)")


def date_from_url(url: str) -> datetime | None:
    match = _URL_DATE.search(urlsplit(url).path)
    if not match:
        return None
    try:
        return datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=UTC)
    except ValueError:
        return None


_WORD = re.compile(r"\w+")
_SITE_SEPARATOR = re.compile(r"\s+[|–—·»:-]\s+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _similar(a: str, b: str) -> bool:
    """Same headline in other typography, or one a site-suffixed form of the other."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return False
    if wa == wb or wb[:len(wa)] == wa or wa[:len(wb)] == wb:
        return min(len(wa), len(wb)) >= 0.5 * max(len(wa), len(wb))
    sa, sb = set(wa), set(wb)
    return len(sa & sb) >= 0.8 * len(sa | sb)


def _strip_site(title: str, url: str, site: str | None) -> str:
    """"Headline | Site" -> "Headline" when the last part names the site."""
    parts = _SITE_SEPARATOR.split(title)
    if len(parts) < 2:
        return title
    last = parts[-1]
    host = re.sub(r"[^a-z0-9]", "", urlsplit(url).netloc.lower())
    letters = re.sub(r"[^a-z0-9]", "", last.lower())
    named = (site is not None and _words(last) == _words(site)) or (
        len(letters) >= 3 and letters in host)
    if named and len(last.split()) <= 6:
        head = title[:title.rfind(last)].rstrip(" |–—·»:-")
        return head or title
    return title


def _choose_title(meta: Metadata, root: html.HtmlElement, url: str, site: str | None) -> None:
    """The visible headline: an <h1> (or itemprop=headline) that the metadata agrees with."""
    title_tag = root.find(".//title")
    if title_tag is not None and clean(title_tag.text_content()):
        meta.titles.append((clean(title_tag.text_content()), "html"))
    headlines = [clean(node.text_content()) for node in root.iter("h1", "h2", "div", "span")
                 if "headline" in (node.get("itemprop") or "").lower().split()]
    h1s = [clean(h.text_content()) for h in root.iter("h1")]
    visible = [h for h in [*headlines, *h1s] if 3 < len(h) < 300]
    for headline in visible:
        for candidate, source in meta.titles:
            if _similar(headline, candidate):
                meta.title, meta.provenance["title"] = headline, source
                return
    if headlines:
        meta.title, meta.provenance["title"] = headlines[0], "meta"
        return
    if meta.titles:
        candidate, source = meta.titles[0]
        meta.title, meta.provenance["title"] = _strip_site(candidate, url, site), source
    elif len(visible) == 1:
        meta.title, meta.provenance["title"] = visible[0], "html"


def normalise_language(value: str | None) -> str | None:
    """"en_US" or "en-us" -> "en"; only the primary subtag is kept."""
    if not value:
        return None
    match = re.match(r"^\s*([A-Za-z]{2,3})(?:[-_]|$)", value)
    return match.group(1).lower() if match else None


# -- dates -----------------------------------------------------------------------------------

_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# zone abbreviations that news sites print; dateutil ignores them (and warns) without this
_HOUR = 3600
_ZONES = {"UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "EST": -5 * _HOUR, "EDT": -4 * _HOUR,
          "CST": -6 * _HOUR, "CDT": -5 * _HOUR, "MST": -7 * _HOUR, "MDT": -6 * _HOUR,
          "PST": -8 * _HOUR, "PDT": -7 * _HOUR, "AKST": -9 * _HOUR, "AKDT": -8 * _HOUR,
          "HST": -10 * _HOUR, "BST": _HOUR, "CET": _HOUR, "CEST": 2 * _HOUR,
          "EET": 2 * _HOUR, "EEST": 3 * _HOUR, "MSK": 3 * _HOUR, "JST": 9 * _HOUR,
          "KST": 9 * _HOUR, "AEST": 10 * _HOUR, "AEDT": 11 * _HOUR, "NZST": 12 * _HOUR,
          "NZDT": 13 * _HOUR, "ET": -5 * _HOUR, "PT": -8 * _HOUR, "CT": -6 * _HOUR}
_DEFAULT = datetime(2000, 1, 1)


def parse_date(value: str | None, now: datetime, *, fuzzy: bool = False) -> datetime | None:
    """A date string as an aware UTC datetime; naive times are taken as UTC. None if absurd."""
    if not value:
        return None
    value = value.strip()
    try:
        if re.fullmatch(r"\d{10}(?:\d{3})?", value):  # epoch seconds or milliseconds
            stamp = int(value) / (1000 if len(value) == 13 else 1)
            parsed = datetime.fromtimestamp(stamp, tz=UTC)
        else:
            if not re.search(r"\d", value):
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown zone names: taken as UTC below
                parsed = dateparser.parse(value, fuzzy=fuzzy, tzinfos=_ZONES,
                                          default=_DEFAULT.replace(year=now.year))
    except (ValueError, OverflowError, TypeError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if not _EARLIEST <= parsed <= now + timedelta(days=2):
        return None
    return parsed


# -- all together ----------------------------------------------------------------------------


def extract_metadata(root: html.HtmlElement, url: str, now: datetime,
                     objects: list[dict[str, Any]]) -> Metadata:
    """Every metadata field the page offers, strongest source first."""
    meta = Metadata()
    _from_json_ld(meta, objects, now)
    for link in root.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = join_url(url, link.get("href", ""))
            if canonical is not None:
                meta.offer("canonical_url", canonical, "meta")
            break
    values = _meta_values(root)
    _from_meta(meta, values, url, now)
    meta.description = next((clean(v) for key in ("og:description", "description",
                                                   "twitter:description")
                             for v in values.get(key, []) if clean(v)), None)
    meta.offer("language", normalise_language(root.get("lang") or root.get("xml:lang")), "html")
    site = next(iter(values.get("og:site_name", [])), None)
    _choose_title(meta, root, url, site)
    _from_page(meta, root, now)
    _only_people(meta, root, url, site)
    if meta.published_at is None:
        meta.offer("published_at", htmldate_opinion(root, now), "htmldate")
    meta.offer("published_at", date_from_url(url), "url")
    if meta.modified_at is not None and meta.published_at is not None \
            and meta.modified_at < meta.published_at:
        meta.modified_at = None
        meta.provenance.pop("modified_at", None)
    return meta
