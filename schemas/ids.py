"""Stable ids and URL normalisation.

Every id is a hash of what makes the thing itself, so the same article, comment, claim or
alert gets the same id on every run and a re-run can never duplicate a row.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|ref|ref_src|"
    r"cmpid|ocid|smid|sr_share|share|at_medium|at_campaign|taid|ito|guccounter|"
    r"_hsenc|_hsmi|mkt_tok|wt\.mc_id|icid|s_cid|__twitter_impression)$",
    re.IGNORECASE,
)
# session ids some servers put in the path (";jsessionid=..."): never part of the address
_SESSION_PARAM = re.compile(r";(?:jsessionid|phpsessid|sid)=[^/?#]*", re.IGNORECASE)
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def stable_id(*parts: str | None, length: int = 16) -> str:
    """A short hex digest of the parts; None and "" are distinct from each other."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"\x00" if part is None else b"\x01" + part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:length]


def normalize_url(url: str) -> str:
    """The form of a URL used to recognise it again.

    Lower-case scheme and host (without a trailing dot), default port dropped, fragment
    dropped, tracking parameters (utm_*, fbclid, ...) and path session ids removed, remaining
    parameters sorted, percent-escapes of plain characters decoded and the rest upper-cased,
    duplicate slashes collapsed, trailing slash dropped except for the root path. The
    scheme is kept: http and https may serve different things. Never raises.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # an unparseable host or port: the address as written is all we have
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = _ESCAPE.sub(_unescape, _SESSION_PARAM.sub("", parts.path or "/"))
    path = quote(path, safe="/%:@!$&'()*+,;=~")  # raw non-ASCII as its UTF-8 escapes
    path = re.sub(r"/{2,}", "/", path or "/")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
               if not _TRACKING.match(k))
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def join_url(base: str, link: str) -> str | None:
    """`link` made absolute against `base`, or None when the result is not a usable address
    (a malformed IPv6 host, a port out of range): a bad link on a page is skipped, it never
    fails the page."""
    try:
        joined = urljoin(base, link.strip())
        _ = urlsplit(joined).port  # raises for a port that is not a number in range
    except ValueError:
        return None
    return joined


def _unescape(match: re.Match[str]) -> str:
    """%7E -> ~ for unreserved characters (RFC 3986 6.2.2.2); other escapes upper-cased."""
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


def text_key(text: str) -> str:
    """Text folded for comparison: NFKC, lower case, single spaces, no punctuation."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"\w+", folded))


def article_id_for(url: str, canonical_url: str | None) -> str:
    return stable_id("article", normalize_url(canonical_url or url))


def comment_id_for(article_id: str, local_id: str) -> str:
    return stable_id("comment", article_id, local_id)


def claim_id_for(article_id: str, speaker: str | None, content: str) -> str:
    return stable_id("claim", article_id, text_key(speaker or ""), text_key(content))


def claim_key_for(content: str) -> str:
    """The same claimed words in any article: syndicated copies share it."""
    return stable_id("claim-key", text_key(content))


def alert_id_for(claim_key: str, entity: str, channel: str, rule: str = "tracked") -> str:
    return stable_id("alert", claim_key, entity, channel, rule)


def content_hash(text: str) -> str:
    return stable_id("content", text_key(text), length=32)
