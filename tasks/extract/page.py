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

import re
from datetime import UTC, datetime

from lxml.html import HtmlElement

from schemas.config import CommentSelectors
from schemas.errors import ParseError
from schemas.models import ParsedComment, ParsedPage
from tasks.extract.body import extract_body_info
from tasks.extract.chain import Evidence, SecondOpinion, choose
from tasks.extract.comments import comments_by_selectors, extract_comments
from tasks.extract.meta import extract_metadata, json_ld_objects
from tasks.extract.text import decode_html, looks_binary, parse_tree

__all__ = ["parse_page"]


def parse_page(html: bytes | str, url: str, *, fetched_at: datetime, encoding: str | None = None,
               comment_selectors: CommentSelectors | None = None,
               second_opinion: SecondOpinion | None = None) -> ParsedPage:
    """Parse one page; raises ParseError when it has no body text at all.

    `encoding` is the charset from the HTTP header, if any; it beats the page's own <meta>.
    `fetched_at` anchors relative comment times ("3 hours ago") and bounds plausible dates.
    `comment_selectors`, when given, replace comment detection for this page.
    `second_opinion` replaces trafilatura as the chain's second opinion (tests).
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
    evidence = Evidence(title=meta.title, description=meta.description,
                        article_body=meta.article_body)
    ours = extract_body_info(root)
    fresh: list[HtmlElement | None] = []

    def fresh_tree() -> HtmlElement | None:
        """The page again, uncleaned, its comments detached (parsed once, when needed)."""
        if not fresh:
            tree = parse_tree(text)
            if tree is not None and selected is None:
                extract_comments(tree, objects, now)
            fresh.append(tree)
        return fresh[0]

    choice = choose(ours, evidence, text, fresh_tree, url, second_opinion)
    body = _without_comments(choice.body, comments) if choice.extracted_by != "dom" \
        else choice.body
    if not body:
        raise ParseError(f"{url}: no article text ({no_article_reason(fresh_tree())})")
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
        extracted_by=choice.extracted_by,
    )


def _without_comments(body: str, comments: list[ParsedComment]) -> str:
    """A body from another opinion than ours may hold comment text: drop those paragraphs."""
    if not comments:
        return body
    said = "\n".join(c.body for c in comments)
    return "\n\n".join(p for p in body.split("\n\n") if not (len(p) >= 20 and p in said))


_PAYWALL = re.compile(r"\b(?:subscribe|subscription|subscribers?|sign in|log in|paywall"
                      r"|premium|members? only|already a member)\b", re.IGNORECASE)


def no_article_reason(tree: HtmlElement | None) -> str:
    """Why a page has no article text, in words a person reading the rejects understands."""
    if tree is None:
        return "empty page"
    body = tree.find("body")
    scope = body if body is not None else tree
    links = sum(1 for _ in scope.iter("a"))
    text = scope.text_content()
    words = len(text.split()) + sum(1 for ch in text if "\u3040" <= ch <= "\u9fff")
    if words < 20:
        return "empty page: no text"
    if _PAYWALL.search(text) and words < 400:
        return f"paywall or sign-in stub: {words} words asking to subscribe or sign in"
    if links >= 10:
        return f"index or listing page: {links} links and no article prose"
    return f"no article prose: {words} words, none in paragraphs"
