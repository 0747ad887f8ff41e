"""Read one fetched HTML page: metadata, article body and reader comments.

`parse_page` is pure (no I/O). The work is split by concern:
- `tasks.extract.text`: decoding bytes, text normalisation, walking paragraph blocks;
- `tasks.extract.meta`: title, author, dates, language, canonical URL, with provenance;
- `tasks.extract.comments`: comments in standard markups or by configured selectors;
- `tasks.extract.body`: boilerplate removal and the article body.
Order matters: metadata reads the untouched tree, comments are then detached from it, and
only what is left is offered to the body extractor, so the two never mix.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.config import CommentSelectors
from schemas.errors import ParseError
from schemas.models import ParsedComment, ParsedPage
from tasks.extract.body import extract_body
from tasks.extract.comments import comments_by_selectors, extract_comments
from tasks.extract.meta import extract_metadata, json_ld_objects
from tasks.extract.text import decode_html, looks_binary, parse_tree

__all__ = ["parse_page"]


def parse_page(html: bytes | str, url: str, *, fetched_at: datetime, encoding: str | None = None,
               comment_selectors: CommentSelectors | None = None) -> ParsedPage:
    """Parse one page; raises ParseError when it has no body text at all.

    `encoding` is the charset from the HTTP header, if any; it beats the page's own <meta>.
    `fetched_at` anchors relative comment times ("3 hours ago") and bounds plausible dates.
    `comment_selectors`, when given, replace comment detection for this page.
    """
    now = fetched_at if fetched_at.tzinfo else fetched_at.replace(tzinfo=UTC)
    text = decode_html(html, encoding) if isinstance(html, bytes) else html

    selected: list[ParsedComment] | None = None
    if comment_selectors is not None:
        selected, text = comments_by_selectors(text, comment_selectors, now)

    if looks_binary(text):
        raise ParseError(f"{url}: not text (binary or undecodable bytes)")
    root = parse_tree(text)
    if root is None:
        raise ParseError(f"{url}: not an HTML page (nothing to parse)")
    objects = json_ld_objects(root)
    meta = extract_metadata(root, url, now, objects)
    comments = selected if selected is not None else extract_comments(root, objects, now)
    body = extract_body(root)
    if not body:
        raise ParseError(f"{url}: no body text found")
    return ParsedPage(
        title=meta.title,
        author=meta.author,
        published_at=meta.published_at,
        modified_at=meta.modified_at,
        language=meta.language,
        canonical_url=meta.canonical_url,
        body=body,
        comments=tuple(comments),
        provenance=meta.provenance,
    )
