"""Stable ids and URL normalisation.

Every id is a hash of what makes the thing itself, so the same article, comment, claim or
alert gets the same id on every run and a re-run can never duplicate a row.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|ref|ref_src|"
    r"cmpid|ocid|smid|sr_share|share|at_medium|at_campaign|taid|ito|guccounter)$",
    re.IGNORECASE,
)
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

    Lower-case scheme and host, default port dropped, fragment dropped, tracking parameters
    (utm_*, fbclid, ...) removed, remaining parameters sorted, trailing slash dropped
    except for the root path.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
               if not _TRACKING.match(k))
    )
    return urlunsplit((scheme, netloc, path, query, ""))


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


def alert_id_for(claim_id: str, entity: str, channel: str) -> str:
    return stable_id("alert", claim_id, entity, channel)


def content_hash(text: str) -> str:
    return stable_id("content", text_key(text), length=32)
