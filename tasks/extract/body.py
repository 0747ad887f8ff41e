"""The article body: boilerplate removed, paragraphs kept, on plain lxml for speed.

1. Cleaning: drop what is never article text (scripts, forms, nav, asides, hidden elements)
   and elements whose class or id names a boilerplate role (share, related, newsletter, ad,
   comments, ...) unless they hold a large part of the page's text (a wrapper's odd name).
2. Scoring (readability's idea): every paragraph-like block of real prose credits its parent
   fully and its ancestors less; class/id hints and link density adjust the scores; the best
   element is the article's container, joined by siblings that score nearly as well.
3. Filtering: inside the container, link-heavy blocks and short stock lines go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree, html

from tasks.extract.text import attr_text, clean, iter_blocks

_JUNK_TAGS = ("script", "style", "noscript", "template", "svg", "math", "iframe", "object",
              "embed", "canvas", "video", "audio", "select", "button", "textarea", "input",
              "dialog", "head", "map", "link", "meta")
_SEMANTIC_BOILERPLATE = frozenset({"nav", "aside", "footer", "header", "menu", "form"})

_BOILERPLATE = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|menus|breadcrumbs?|footer|sidebar|widgets?"
    r"|share|shares|sharing|social|socials|sharebar|related|recommended|recommendations"
    r"|recirc|more-stories|newsletter|subscribe|subscription|promo|promos|promotion"
    r"|advert|adverts|advertisement|ads?|adslot|adunit|ad-slot|sponsor|sponsored|outbrain"
    r"|taboola|cookie|cookies|consent|gdpr|popup|modal|overlay|paywall|signup|login"
    r"|comments?|disqus|respond|tags|tag-list|taglist|pagination|pager|skip|toolbar|tools"
    r"|author-bio|bio|about-author|byline|dateline|meta|hidden|visually-hidden|sr-only"
    r"|screen-reader-text|print-only|masthead|topbar|top-bar|subnav|trending|most-popular"
    r"|popular|read-more|readmore|further-reading|see-also|also-read|callout|inline-related"
    r"|rail|right-rail|left-rail|newsletter-signup|caption|credit|credits|figcaption"
    r"|timestamp|published|updated|article-meta|post-meta|entry-meta|header|headline"
    r"|jump-link|hide|noprint|sticky|alert|banner)(?:$|[\s_-])")
_ALWAYS = re.compile(
    r"(?:^|\s)(?:comments?|comments-area|comment-list|commentlist|comments-section"
    r"|comment-section|comment-respond|respond|disqus_thread|comment-form|reply-form"
    r"|sr-only|visually-hidden|screen-reader-text)(?:$|\s)")
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search",
                                "dialog"})
_MAYBE_DOOMED = etree.XPath(
    ".//*[@class or @id or @role or @style or @hidden or @aria-hidden]"
    " | .//nav | .//aside | .//footer | .//header | .//menu | .//form | .//figure")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")

_POSITIVE = re.compile(
    r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story|prose|rich-?text")
_NEGATIVE = re.compile(
    r"hidden|banner|combx|comment|com-|contact|foot|footer|footnote|masthead|media|meta"
    r"|outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping"
    r"|tags|tool|widget|nav|menu|teaser|card|list|recirc")

_STOCK_LINE = re.compile(
    r"^(?:advertisement|advertising|sponsored( content)?|read more\b.*|related\b.*|share\b.*"
    r"|follow us\b.*|sign up\b.*|subscribe\b.*|click here\b.*|image:.*|photo:.*|©.*"
    r"|copyright\b.*|all rights reserved.*|loading.*|continue reading.*|story continues.*"
    r"|skip to .*|back to top|getty images|reuters|ap photo.*)$", re.IGNORECASE)

_KIN_LEVELS = 6  # how far up to look for more containers of the article's own kind
# short calls to action that close many articles: newsletter, social, "email the author"
_PROMO = re.compile(
    r"\b(?:follow (?:us|him|her|them|@)|sign up|newsletter|subscribe|click here|join our"
    r"|delivered (?:to|through) your|tell us what you think|share this|let us know|@\w+ on"
    r" (?:twitter|facebook|instagram)|email \w+(?: \w+)? at \S+@)", re.IGNORECASE)
_PROTECT_SHARE = 0.4  # a boilerplate-named element holding more than this much text stays


@dataclass
class _Stats:
    text: int = 0  # characters of block text under the element
    links: int = 0  # of which inside links


def _clean_tree(body: html.HtmlElement) -> int:
    """Drop boilerplate in place; returns the page's prose (<p> characters) before."""
    for node in list(body.iter(*_JUNK_TAGS)):
        if node.getparent() is not None:
            node.drop_tree()
    for node in list(body.iter("img", "picture", "source", "figure")):
        if node.getparent() is not None and node.tag != "figure":
            node.drop_tree()
    total = max(1, len(body.text_content()))
    total_prose = max(1, _prose(body))
    doomed: list[tuple[html.HtmlElement, bool]] = []
    # only elements with a telling attribute or tag can be doomed: selecting them in C
    # (XPath) spares a Python proxy for every other element of the page
    for node in _MAYBE_DOOMED(body):
        if not isinstance(node.tag, str) or node.tag in ("html", "body", "main", "article"):
            continue
        if (node.get("itemprop") or "").lower() == "articlebody":
            continue
        style = node.get("style") or ""
        hint = attr_text(node)
        role = (node.get("role") or "").lower()
        if (node.get("hidden") is not None or node.get("aria-hidden") == "true"
                or (style and _HIDDEN_STYLE.search(style)) or _ALWAYS.search(hint)):
            doomed.append((node, True))
        elif (node.tag in _SEMANTIC_BOILERPLATE or node.tag == "figure"
              or role in _BOILERPLATE_ROLES or _BOILERPLATE.search(hint)):
            doomed.append((node, False))
    for node, always in doomed:
        if node.getparent() is None:
            continue
        # a wrapper with an unlucky name ("l-sidebar-fixed l-article-body") that holds much of
        # the page's prose is the article, not boilerplate: keep it
        if not always:
            size = len(node.text_content())  # an upper bound of its prose: cheap test first
            if size > _PROTECT_SHARE * total or (size > _PROTECT_SHARE * total_prose
                                                 and _prose(node) > _PROTECT_SHARE * total_prose):
                continue
        node.drop_tree()
    return total_prose


def _prose(node: html.HtmlElement) -> int:
    """Characters in the element's paragraphs long enough to be prose."""
    total = 0
    for para in node.iter("p"):
        size = len(para.text_content())
        if size >= 80:
            total += size
    return total


def _class_weight(node: html.HtmlElement) -> float:
    hint = attr_text(node)
    weight = 0.0
    if _POSITIVE.search(hint):
        weight += 25
    if _NEGATIVE.search(hint):
        weight -= 25
    if node.tag in ("article", "main") or (node.get("itemprop") or "").lower() == "articlebody":
        weight += 25
    return weight


def _prose_weight(text: str) -> float:
    """How much a block looks like article prose: commas and length, as readability does."""
    commas = text.count(",") + text.count("，") + text.count("、") + text.count("،")
    return 1 + commas + min(len(text) / 100, 3)


def _is_cjk(text: str) -> bool:
    return sum(1 for ch in text[:200] if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af"
               ) > 20


def extract_body(root: html.HtmlElement) -> str:
    """The article's paragraphs, joined by blank lines; "" when nothing looks like prose."""
    return extract_body_info(root).text


@dataclass(frozen=True)
class BodyResult:
    """The scorer's body, and how much of the page's prose it holds (for the chain)."""

    text: str
    page_prose: int = 0  # characters in prose paragraphs anywhere in the cleaned page
    kept_prose: int = 0  # of which in the body
    raw_prose: int = 0  # characters in long <p> paragraphs before cleaning (any container)

    @property
    def coverage(self) -> float:
        """Share of the page's prose paragraphs that the body holds."""
        return self.kept_prose / self.page_prose if self.page_prose else 1.0

    @property
    def raw_coverage(self) -> float:
        """The body's length against the page's long <p> paragraphs before any cleaning:
        low when article text sat in containers that cleaning dropped."""
        return min(1.0, len(self.text) / self.raw_prose) if self.raw_prose > 1 else 1.0


def _is_prose(text: str, links: int) -> bool:
    return len(text) >= 80 and links < 0.2 * len(text)


def extract_body_info(root: html.HtmlElement) -> BodyResult:
    """`extract_body` with how much of the page's prose paragraphs the body kept."""
    body = root.find("body")
    if body is None:
        body = root
    raw_prose = _clean_tree(body)
    blocks = [(text, owner, links) for text, owner, links in iter_blocks(body)]
    if not blocks:
        return BodyResult("", raw_prose=raw_prose)
    cjk = _is_cjk(" ".join(text for text, _o, _l in blocks[:50]))
    min_len = 10 if cjk else 25

    stats: dict[html.HtmlElement, _Stats] = {}
    for text, owner, links in blocks:
        node: html.HtmlElement | None = owner
        while node is not None:
            entry = stats.setdefault(node, _Stats())
            entry.text += len(text)
            entry.links += links
            node = node.getparent()
    candidates: dict[html.HtmlElement, float] = {}
    for text, owner, links in blocks:
        if len(text) < min_len or links > 0.5 * len(text):
            continue
        weight = _prose_weight(text) * (3 if cjk else 1)
        # a block owned by a container div (text straight in a <div>) is its own paragraph
        node = owner.getparent() if owner is not body else owner
        level = 0
        while node is not None and level < 5:
            if node not in candidates:
                candidates[node] = _class_weight(node)
            candidates[node] += weight if level == 0 else weight / (2 if level == 1 else
                                                                    level * 3)
            node = node.getparent()
            level += 1
    page_prose = sum(len(text) for text, _o, links in blocks if _is_prose(text, links))
    if not candidates:
        return BodyResult("", page_prose, raw_prose=raw_prose)
    scored = {node: score * (1 - stats[node].links / max(1, stats[node].text))
              for node, score in candidates.items() if node in stats}
    top = max(scored, key=lambda n: scored[n])
    chosen = _with_siblings(top, scored, stats)
    chosen |= _same_kind(top, chosen, blocks, min_len)
    declared = _declared_body(top, stats)
    if declared is not None:
        chosen.add(declared)
    chosen |= _article_prose(top, chosen, blocks, stats)

    out: list[str] = []
    kept_prose = 0
    for text, owner, links in blocks:
        if not _inside(owner, chosen):
            continue
        if _is_prose(text, links):
            kept_prose += len(text)
        if owner.tag == "h1":
            continue
        if links > 0.5 * len(text) or (len(text) < 80 and _STOCK_LINE.match(text)):
            continue
        out.append(text)
    while out and len(out[-1]) < 250 and _PROMO.search(out[-1]):
        out.pop()
    return BodyResult("\n\n".join(_dedupe(out)), page_prose, kept_prose, raw_prose)


def _with_siblings(top: html.HtmlElement, scored: dict[html.HtmlElement, float],
                   stats: dict[html.HtmlElement, _Stats]) -> set[html.HtmlElement]:
    chosen = {top}
    parent = top.getparent()
    if parent is None:
        return chosen
    threshold = max(10.0, scored[top] * 0.2)
    top_class = top.get("class")
    for sibling in parent:
        if sibling is top or not isinstance(sibling.tag, str) or sibling not in stats:
            continue
        if _is_feed(sibling):
            continue
        bonus = scored[top] * 0.2 if top_class and sibling.get("class") == top_class else 0
        # a sibling counts by its best container: a wrapper whose child holds the rest of
        # the article (after an ad slot or a "read more" box) scores little itself
        inner = max((scored.get(d, 0.0) for d in sibling.iter() if d in scored), default=0.0)
        if max(scored.get(sibling, 0), inner) + bonus >= threshold:
            chosen.add(sibling)
            continue
        if sibling.tag == "p":
            entry = stats[sibling]
            density = entry.links / max(1, entry.text)
            text = clean(sibling.text_content())
            if (entry.text > 80 and density < 0.25) or (
                    0 < entry.text <= 80 and density == 0 and re.search(r"\.( |$)", text)):
                chosen.add(sibling)
    return chosen


def _declared_body(top: html.HtmlElement, stats: dict[html.HtmlElement, _Stats]
                   ) -> html.HtmlElement | None:
    """The schema.org articleBody element around the chosen container, if it is not huge."""
    node: html.HtmlElement | None = top
    while node is not None:
        if "articlebody" in (node.get("itemprop") or "").lower().split():
            if node in stats and stats[node].text <= 1.5 * stats[top].text:
                return node
            return None
        node = node.getparent()
    return None


def _article_prose(top: html.HtmlElement, chosen: set[html.HtmlElement],
                   blocks: list[tuple[str, html.HtmlElement, int]],
                   stats: dict[html.HtmlElement, _Stats]) -> set[html.HtmlElement]:
    """Prose paragraphs of the <article> around the chosen container that it missed: the
    lead before an ad slot or a "read more" box, when the container is most of the article."""
    node: html.HtmlElement | None = top.getparent()
    while node is not None and node.tag != "article":
        node = node.getparent()
    if node is None or node not in stats or stats[node].text > 1.5 * stats[top].text:
        return set()
    article = {node}
    return {owner for text, owner, links in blocks
            if _is_prose(text, links) and _inside(owner, article) and not _inside(owner, chosen)
            and not any(_is_feed(a) for a in _ancestors(owner, node))}


def _ancestors(node: html.HtmlElement, stop: html.HtmlElement) -> list[html.HtmlElement]:
    out = []
    current: html.HtmlElement | None = node.getparent()
    while current is not None and current is not stop:
        out.append(current)
        current = current.getparent()
    return out


def _signature(node: html.HtmlElement) -> tuple[str, frozenset[str]]:
    return (str(node.tag), frozenset((node.get("class") or "").split()))


def _akin(a: tuple[str, frozenset[str]], b: tuple[str, frozenset[str]]) -> bool:
    """Same tag and mostly the same classes ("block-text" ~ "block-text initial-letter")."""
    if a[0] != b[0] or not a[1] or not b[1]:
        return False
    return len(a[1] & b[1]) >= 0.5 * len(a[1] | b[1])


def _same_kind(top: html.HtmlElement, chosen: set[html.HtmlElement],
               blocks: list[tuple[str, html.HtmlElement, int]], min_len: int
               ) -> set[html.HtmlElement]:
    """Containers like the chosen one nearby: an article split by ad slots or by "chunks".

    The prose paragraphs of the chosen container mostly share one parent kind (tag and
    class); other parents of that kind under the same near ancestor are more of the article.
    """
    weights: dict[tuple[str, frozenset[str]], int] = {}
    for text, owner, links in blocks:
        parent = owner.getparent()
        if parent is None or len(text) < min_len or links > 0.3 * len(text):
            continue
        if _inside(owner, chosen) and parent.get("class"):
            key = _signature(parent)
            weights[key] = weights.get(key, 0) + len(text)
    if not weights:
        return set()
    kind = max(weights, key=lambda k: weights[k])
    scope: html.HtmlElement | None = top
    for _ in range(_KIN_LEVELS):
        if scope is None or scope.tag == "body":
            break
        scope = scope.getparent()
    if scope is None:
        return set()
    return {node for node in scope.iter(kind[0]) if _akin(_signature(node), kind)
            and not _inside(node, chosen) and not _inside(top, {node})}


def _is_feed(node: html.HtmlElement) -> bool:
    """Repeated dated or self-contained items: comments, notes, teasers, not article text."""
    return (sum(1 for _ in node.iter("time")) >= 2
            or sum(1 for _ in node.iter("article")) >= 2)


def _inside(node: html.HtmlElement, chosen: set[html.HtmlElement]) -> bool:
    current: html.HtmlElement | None = node
    while current is not None:
        if current in chosen:
            return True
        current = current.getparent()
    return False


def _dedupe(texts: list[str]) -> list[str]:
    """Drop exact repeats of short lines (a pull quote, a repeated label)."""
    seen: set[str] = set()
    out = []
    for text in texts:
        if len(text) < 200 and text in seen:
            continue
        seen.add(text)
        out.append(text)
    return out
