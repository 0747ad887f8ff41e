"""Reader comments: found in standard markups, or with a source's own CSS selectors.

Detection, first that finds any: WordPress (`li.comment` in `.comment-list`/`.commentlist`),
schema.org Comment microdata, schema.org Comment in JSON-LD, then generic `.comment`
containers. Configured `CommentSelectors` replace detection altogether (with BeautifulSoup,
whose soupsieve speaks full CSS). Threading comes from nesting or from `parent_attr`.

The HTML detectors are destructive on purpose: each comment is detached from the tree once
read, so a parent's text never includes its replies and the body extractor never sees them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from bs4 import BeautifulSoup, Tag
from lxml import html

from schemas.config import CommentSelectors
from schemas.models import ParsedComment
from tasks.extract.meta import _names, join_names, parse_date, types_of
from tasks.extract.text import clean, join_paragraphs, paragraphs

# -- times -----------------------------------------------------------------------------------

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hr": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "wk": 604800,
          "week": 604800, "mo": 2592000, "month": 2592000, "y": 31536000, "yr": 31536000,
          "year": 31536000}
_RELATIVE = re.compile(
    r"\b(\d+|an?|one)\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|wks?|months?"
    r"|mo|years?|yrs?|[smhdwy])\s+ago\b", re.IGNORECASE)


def comment_time(text: str | None, now: datetime) -> datetime | None:
    """A comment's time from text: "3 hours ago", "yesterday", or an absolute date."""
    text = clean(text)
    if not text:
        return None
    lowered = text.lower()
    if match := _RELATIVE.search(lowered):
        count = 1 if match[1] in ("a", "an", "one") else int(match[1])
        unit = match[2].rstrip("s") if len(match[2]) > 1 else match[2]
        seconds = _UNITS.get(unit) or _UNITS.get(unit[:3]) or _UNITS.get(unit[:1], 0)
        return now - timedelta(seconds=count * seconds)
    if re.search(r"\b(just now|moments? ago|seconds ago)\b", lowered):
        return now
    if "yesterday" in lowered:
        return now - timedelta(days=1)
    return parse_date(text[:80], now, fuzzy=True)


# -- HTML detection (lxml) -------------------------------------------------------------------

def _classes(node: html.HtmlElement) -> set[str]:
    return set((node.get("class") or "").lower().split())


def _item_ancestor(node: html.HtmlElement, items: set[html.HtmlElement]
                   ) -> html.HtmlElement | None:
    parent = node.getparent()
    while parent is not None:
        if parent in items:
            return parent
        parent = parent.getparent()
    return None


def _own(item: html.HtmlElement, items: set[html.HtmlElement]) -> Iterator[html.HtmlElement]:
    """The item's descendants, not looking inside nested comment items."""
    stack = list(reversed(item))
    while stack:
        node = stack.pop()
        if not isinstance(node.tag, str) or node in items:
            continue
        yield node
        stack.extend(reversed(node))


def _first(item: html.HtmlElement, items: set[html.HtmlElement],
           test: Callable[[html.HtmlElement], bool]) -> html.HtmlElement | None:
    return next((node for node in _own(item, items) if test(node)), None)


def _has_class(*names: str) -> Callable[[html.HtmlElement], bool]:
    wanted = set(names)
    return lambda node: bool(_classes(node) & wanted)


def _itemprop(*names: str) -> Callable[[html.HtmlElement], bool]:
    wanted = set(names)
    return lambda node: bool(set((node.get("itemprop") or "").lower().split()) & wanted)


def _author_of(item: html.HtmlElement, items: set[html.HtmlElement]) -> str | None:
    node = _first(item, items, _itemprop("author", "creator"))
    if node is not None:
        name = _first(node, items, _itemprop("name"))
        node = name if name is not None else node
    else:
        author = _first(item, items, _has_class("comment-author", "comment__author",
                                                "comment-author-name", "author", "username",
                                                "user-name", "commenter", "comment-user",
                                                "wpd-comment-author", "user"))
        fn = _first(author if author is not None else item, items,
                    _has_class("fn", "name", "author-name", "nickname"))
        node = fn if fn is not None else author
    if node is None:
        return None
    text = clean(node.get("content") or node.text_content())
    text = re.sub(r"\s*(?:says|said|wrote)\s*[.:…]*\s*$", "", text, flags=re.IGNORECASE)
    return text[:200] or None


def _time_of(item: html.HtmlElement, items: set[html.HtmlElement], now: datetime
             ) -> datetime | None:
    for test in (_itemprop("datecreated", "datepublished", "commenttime", "uploaddate"),
                 lambda node: node.tag == "time"):
        node = _first(item, items, test)
        if node is not None:
            stamp = node.get("datetime") or node.get("content")
            found = parse_date(stamp, now) if stamp else None
            if found is None:
                found = comment_time(node.text_content() or node.get("title"), now)
            if found is not None:
                return found
    node = _first(item, items, _has_class("comment-metadata", "comment-meta", "commentmetadata",
                                          "comment-date", "comment-time", "date", "time",
                                          "timestamp", "posted", "comment__date",
                                          "wpd-comment-date", "datetime", "comment-timestamp"))
    if node is not None:
        return comment_time(node.get("title") or node.text_content(), now)
    return None


_BODY_CLASSES = ("comment-content", "comment-text", "wpd-comment-text", "comment__body",
                 "comment-body-text",
                 "comment__content", "comment-message", "commenttext", "message", "text",
                 "content", "body")
_META_CLASSES = {"comment-author", "comment-meta", "comment-metadata", "commentmetadata",
                 "reply", "comment-reply", "comment-actions", "comment-footer", "says", "vcard",
                 "avatar", "comment-awaiting-moderation", "edit-link", "comment-reply-link"}


def _body_of(item: html.HtmlElement, items: set[html.HtmlElement]) -> str:
    node = _first(item, items, _itemprop("text", "commenttext"))
    if node is None:
        node = _first(item, items, _has_class(*_BODY_CLASSES))
    if node is not None:
        for nested in [n for n in node.iter() if n in items and n is not node]:
            nested.drop_tree()
        return join_paragraphs(paragraphs(node))
    # no body element: the item's own text less its author, date, avatar and reply links;
    # some themes put the text inside the author box: kept aside in case nothing else is left
    author_box = _first(item, items, _has_class("comment-author"))
    spare = copy.deepcopy(author_box) if author_box is not None else None
    for nested in list(_own(item, items)):
        meta = (_classes(nested) & _META_CLASSES
                or nested.tag in ("time", "footer", "header", "form", "button", "img")
                or _itemprop("author", "datecreated", "datepublished")(nested))
        if meta and nested.getparent() is not None:
            nested.drop_tree()
    for nested in [n for n in item.iter() if n in items and n is not item]:
        nested.drop_tree()
    text = join_paragraphs(paragraphs(item))
    if not text and spare is not None:
        text = _text_in_author_box(spare)
    return text


def _text_in_author_box(box: html.HtmlElement) -> str:
    """The comment text a theme put inside `.comment-author`, without the name, "says:",
    the avatar and the date."""
    for node in list(box.iter()):
        if node is box or node.getparent() is None:
            continue
        if (_classes(node) & {"fn", "says", "avatar", "url", "name", "comment-meta",
                              "comment-metadata"}
                or node.tag in ("cite", "img", "time", "b", "strong")):
            node.drop_tree()
    if box.text:
        box.text = re.sub(r"^\s*(?:says|said|wrote)\s*[.:…]*", "", box.text, flags=re.I)
    return join_paragraphs(p for p in paragraphs(box)
                           if not re.fullmatch(r"(?:says|said|wrote)\s*[.:…]*", p, flags=re.I))


def _local_id(attrs: dict[str, str], position: int, skip: str | None = None) -> str:
    """The item's own id: id, itemid, or a data-* attribute that names an id or key."""
    for name in ("id", "data-comment-id", "data-id", "itemid"):
        value = str(attrs.get(name) or "").strip()
        if value:
            return value
    for name, value in attrs.items():
        if name != skip and name.startswith("data-") and name.endswith(("id", "key")) and value:
            return str(value).strip()
    return f"c{position}"


def _read_items(items_in_order: list[html.HtmlElement], now: datetime) -> list[ParsedComment]:
    items = set(items_in_order)
    ids = {item: _local_id(dict(item.attrib), n + 1) for n, item in enumerate(items_in_order)}
    parents: dict[html.HtmlElement, str | None] = {}
    for item in items_in_order:
        ancestor = _item_ancestor(item, items)
        parents[item] = ids[ancestor] if ancestor is not None else None
    authors = {item: _author_of(item, items) for item in items_in_order}
    times = {item: _time_of(item, items, now) for item in items_in_order}
    bodies: dict[html.HtmlElement, str] = {}
    # deepest and last first: replies are read and detached before their parents
    for item in reversed(items_in_order):
        bodies[item] = _body_of(item, items)
        if item.getparent() is not None:
            item.drop_tree()
    return [ParsedComment(local_id=ids[item], author=authors[item], body=bodies[item],
                          posted_at=times[item], parent_local_id=parents[item])
            for item in items_in_order if bodies[item]]


def _resolve_parent(value: str, items: list[tuple[str, dict[str, str]]], attr: str
                    ) -> str | None:
    """A parent reference as the local id of the comment it names.

    The reference may be the parent's id, any other attribute of it (data-key="m1"), or the
    number inside its id ("12" for id="comment-12"). Unknown references are kept as given.
    """
    value = value.strip().lstrip("#")
    if not value or value.lower() in ("0", "null", "none"):
        return None
    for local_id, attrs in items:
        if value == local_id or value in (v.strip() for k, v in attrs.items() if k != attr):
            return local_id
    digits = re.sub(r"\D", "", value)
    for local_id, _attrs in items:
        if digits and re.sub(r"\D", "", local_id) == digits:
            return local_id
    return value


def _wordpress_items(root: html.HtmlElement) -> list[html.HtmlElement]:
    out = []
    for node in root.xpath("//li[contains(@class, 'comment') or contains(@id, 'comment-')]"
                           " | //article[contains(@id, 'comment-')]"):
        classes = _classes(node)
        numbered = re.fullmatch(r"(?:div-)?comment-\d+", node.get("id") or "") is not None
        as_li = node.tag == "li" and ("comment" in classes or numbered)
        as_article = node.tag == "article" and numbered and "comment-body" not in classes
        if (as_li or as_article) and "pingback" not in classes:
            out.append(node)
    if out:
        return out
    # lists marked as comment lists whose items carry no class of their own
    for listing in root.iter("ol", "ul"):
        if _classes(listing) & {"comment-list", "commentlist", "comments-list"}:
            out.extend(child for child in listing if child.tag == "li")
    return out


def _wpdiscuz_items(root: html.HtmlElement) -> list[html.HtmlElement]:
    """wpDiscuz: `div.wpd-comment` items, replies nested inside their parent's item."""
    return [node for node in root.xpath("//div[contains(@class, 'wpd-comment')]")
            if "wpd-comment" in _classes(node)]


def _definition_list_items(root: html.HtmlElement) -> list[html.HtmlElement]:
    """Comments as a definition list (Blogger's classic layout and old themes):
    `<dt class="comment-author">` then `<dd class="comment-body">` and a footer `<dd>` with
    the time. Each dt and its dds are wrapped into one item element."""
    out = []
    for listing in root.iter("dl"):
        hint = f"{listing.get('class', '')} {listing.get('id', '')}".lower()
        terms = [dt for dt in listing if dt.tag == "dt"]
        if not terms or not ("comment" in hint or any("comment" in (dt.get("class") or "")
                                                      for dt in terms)):
            continue
        for dt in terms:
            item = html.Element("div", {"class": "comment"})
            if dt.get("id"):
                item.set("id", dt.get("id", ""))
            members = [dt]
            sibling = dt.getnext()
            while sibling is not None and sibling.tag == "dd":
                members.append(sibling)
                sibling = sibling.getnext()
            dt.addprevious(item)
            for member in members:
                if member.tag == "dd" and "comment-body" in _classes(member):
                    member.set("class", (member.get("class") or "") + " comment-content")
                item.append(member)
            out.append(item)
    return out


def _microdata_items(root: html.HtmlElement) -> list[html.HtmlElement]:
    return [node for node in root.xpath("//*[contains(@itemtype, 'schema.org/')]")
            if re.search(r"schema\.org/(?:Comment|UserComments)\b", node.get("itemtype", ""))]


def _generic_items(root: html.HtmlElement, now: datetime) -> list[html.HtmlElement]:
    found = []
    for node in root.xpath("//*[contains(@class, 'comment')]"):
        classes = _classes(node)
        if classes & {"comment", "comment-item", "c-comment", "comment__item", "user-comment"}:
            inside_body = any((a.get("itemprop") or "").lower() == "articlebody"
                              for a in node.iterancestors())
            if not inside_body:
                found.append(node)
    items = set(found)
    # a careful fallback: at least one of them must look like a comment (author or time)
    if not any(_author_of(item, items) or _time_of(item, items, now)
               for item in found):
        return []
    return found


# -- JSON-LD ---------------------------------------------------------------------------------


def _json_ld_comments(objects: list[dict[str, Any]], now: datetime) -> list[ParsedComment]:
    out: list[ParsedComment] = []
    seen: set[str] = set()
    index = {o["@id"]: o for o in objects if isinstance(o.get("@id"), str)}

    def visit(obj: Any, parent: str | None) -> None:
        if isinstance(obj, list):
            for item in obj:
                visit(item, parent)
            return
        if not isinstance(obj, dict) or not (types_of(obj) & {"comment", "answer"}):
            return
        local_id = next((str(obj[k]) for k in ("@id", "identifier", "url") if obj.get(k)),
                        f"c{len(out) + 1}")
        if local_id in seen:
            return
        seen.add(local_id)
        own_parent = parent
        ref = obj.get("parentItem")
        if own_parent is None and isinstance(ref, dict | str):
            ref_id = ref.get("@id") if isinstance(ref, dict) else ref
            if isinstance(ref_id, str) and ref_id in index and \
                    "comment" in types_of(index[ref_id]):
                own_parent = ref_id
        text = obj.get("text") or obj.get("commentText") or obj.get("description") or ""
        body = join_paragraphs(clean(part) for part in re.split(r"\n\s*\n", str(text)))
        stamp = obj.get("dateCreated") or obj.get("datePublished") or obj.get("commentTime")
        if body:
            out.append(ParsedComment(
                local_id=local_id, author=join_names(_names(obj.get("author"), index)),
                body=body, posted_at=parse_date(stamp, now) if isinstance(stamp, str) else None,
                parent_local_id=own_parent))
        visit(obj.get("comment"), local_id)

    for obj in objects:
        if "comment" in types_of(obj):
            continue
        visit(obj.get("comment"), None)
    for obj in objects:
        visit(obj, None)
    return out


# -- configured selectors (BeautifulSoup + soupsieve) ----------------------------------------


def comments_by_selectors(text: str, selectors: CommentSelectors, now: datetime
                          ) -> tuple[list[ParsedComment], str]:
    """Comments found with a source's selectors, and the page text without them."""
    soup = BeautifulSoup(text, "lxml")
    items: list[Tag] = list(soup.select(selectors.item))
    item_ids = {id(item) for item in items}

    def owner(node: Tag) -> Tag | None:
        for parent in node.parents:
            if id(parent) in item_ids:
                return parent
        return None

    def own(item: Tag, selector: str | None) -> Tag | None:
        if not selector:
            return None
        return next((n for n in item.select(selector) if owner(n) is item), None)

    attrs = {id(item): {k: " ".join(v) if isinstance(v, list) else str(v)
                        for k, v in item.attrs.items()} for item in items}
    ids = {id(item): _local_id(attrs[id(item)], n + 1, selectors.parent_attr)
           for n, item in enumerate(items)}
    known = [(ids[id(item)], attrs[id(item)]) for item in items]
    rows: list[tuple[Tag, str, str | None, str | None, datetime | None]] = []
    for item in items:
        parent_item = owner(item)
        parent = ids[id(parent_item)] if parent_item is not None else None
        if selectors.parent_attr and item.get(selectors.parent_attr):
            parent = _resolve_parent(str(item.get(selectors.parent_attr)), known,
                                     selectors.parent_attr)
        author_node = own(item, selectors.author)
        author = clean(author_node.get_text(" ")) if author_node is not None else None
        time_node = own(item, selectors.time)
        posted = None
        if time_node is not None:
            stamp = time_node.get("datetime") or time_node.get("content")
            posted = parse_date(str(stamp), now) if stamp else None
            posted = posted or comment_time(time_node.get_text(" "), now)
        rows.append((item, ids[id(item)], author or None, parent, posted))
    bodies: dict[int, str] = {}
    for item in reversed(items):
        body_node = own(item, selectors.body)
        target = body_node if body_node is not None else item
        for nested in target.find_all(True):
            if id(nested) in item_ids:
                nested.extract()
        bodies[id(item)] = join_paragraphs(_soup_paragraphs(target))
        item.extract()
    comments = [ParsedComment(local_id=local_id, author=author, body=bodies[id(item)],
                              posted_at=posted, parent_local_id=parent)
                for item, local_id, author, parent, posted in rows if bodies[id(item)]]
    return comments, str(soup)


def _soup_paragraphs(node: Tag) -> list[str]:
    fragment = html.fragment_fromstring(str(node), create_parent="div")
    return paragraphs(fragment)


# -- all together ----------------------------------------------------------------------------


def extract_comments(root: html.HtmlElement, objects: list[dict[str, Any]], now: datetime
                     ) -> list[ParsedComment]:
    """Comments by the first standard markup that has any; detaches them from `root`."""
    for finder in (_wordpress_items, _wpdiscuz_items, _definition_list_items, _microdata_items):
        items = finder(root)
        if items:
            comments = _read_items(items, now)
            if comments:
                return comments
    comments = _json_ld_comments(objects, now)
    if comments:
        return comments
    items = _generic_items(root, now)
    return _read_items(items, now) if items else []
