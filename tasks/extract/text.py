"""Text helpers shared by the page parser: decoding bytes, normalising text, walking blocks.

Everything here is pure and works on lxml elements; `tasks.extract.page` ties it together.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Iterator

from lxml import etree, html

# -- decoding --------------------------------------------------------------------------------

# WHATWG's encoding table: browsers decode these labels with the superset on the right, and
# pages rely on it (a "gb2312" page full of GBK-only characters, "iso-8859-1" with curly quotes).
_SUPERSETS = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "tis-620": "cp874",
    "iso-8859-9": "cp1254",
    "utf8": "utf-8",
    "unicode": "utf-8",  # a meta tag cannot really be UTF-16 in a byte-sniffed page
}
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def _codec(label: str | None) -> str | None:
    """Python's codec for an encoding label, or None when the label is unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def declared_encodings(data: bytes, encoding: str | None) -> list[str]:
    """Encodings the page claims, strongest first: BOM, HTTP header, <meta>, <?xml?>."""
    out: list[str] = []
    for bom, name in _BOMS:
        if data.startswith(bom):
            out.append(name)
    head = data[:16384]
    labels = [encoding]
    labels += [m.group(1).decode("ascii", "ignore") for m in _META_CHARSET.finditer(head)]
    if match := _XML_DECL.match(head):
        labels.append(match.group(1).decode("ascii", "ignore"))
    for label in labels:
        codec = _codec(label)
        if codec and codec not in out:
            out.append(codec)
    return out


def decode_html(data: bytes, encoding: str | None = None) -> str:
    """Decode page bytes: what the page declares, then UTF-8, then detection; never raises."""
    declared = declared_encodings(data, encoding)
    for codec in [*declared, "utf-8"]:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    detected = _detect(data)
    if detected:
        return detected
    # a few bad bytes in an otherwise declared page: keep the declaration, replace the bytes
    return data.decode(declared[0] if declared else "utf-8", errors="replace")


def _detect(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: without it we fall back to replacement characters
        return None
    best = from_bytes(data[:200_000]).best()
    if best is None or best.encoding is None:
        return None
    codec = _codec(best.encoding) or best.encoding
    return data.decode(codec, errors="replace")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\ufffd]")


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def looks_binary(text: str) -> bool:
    """Whether decoded "text" is really binary noise: control or replacement characters."""
    sample = text[:20000]
    return bool(sample) and len(_CONTROL.findall(sample)) > 0.05 * len(sample)


# -- parsing ---------------------------------------------------------------------------------

_PARSER = html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                          remove_blank_text=False, default_doctype=False)


def parse_tree(text: str) -> html.HtmlElement | None:
    """The page as an lxml tree, or None when there is nothing to parse."""
    # characters XML cannot hold would make lxml refuse later edits of the tree
    data = _NOT_XML.sub("", text).encode("utf-8", errors="replace")
    if not data.strip():
        return None
    try:
        root = html.fromstring(data, parser=_PARSER)
    except (etree.ParserError, ValueError):
        return None
    if root is None or not isinstance(root.tag, str):
        return None
    tree_root: html.HtmlElement = root.getroottree().getroot()
    return tree_root


# -- text ------------------------------------------------------------------------------------

# invisible characters, and C0 controls that a stray byte can leave in otherwise good text
_INVISIBLE = dict.fromkeys([*map(ord, "\u200b\u2060\ufeff\u00ad"), *range(0, 9), 11, 12,
                            *range(14, 32)], None)


_INVISIBLE_CHARS = re.compile("[\u200b\u2060\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f]")


def clean(text: str | None) -> str:
    """One line of text: NFC, invisible characters dropped, whitespace collapsed.

    Hot (every block of every page): ASCII is NFC already, the translation runs only when
    there is something to drop, and str.split() collapses the same Unicode whitespace as
    `\\s+` does, faster."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if _INVISIBLE_CHARS.search(text):
        text = text.translate(_INVISIBLE)
    return " ".join(text.split())


BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "dir",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hgroup", "hr", "li", "main", "menu", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "body",
    "html", "caption", "noscript", "option", "legend",
})


def paragraphs(element: html.HtmlElement) -> list[str]:
    """The element's text, one string per block (paragraph, list item, heading, <br> run)."""
    return [text for text, _owner, _links in iter_blocks(element)]


def iter_blocks(element: html.HtmlElement) -> Iterator[tuple[str, html.HtmlElement, int]]:
    """(text, innermost block element holding it, characters inside links) for each block.

    Iterative (lxml's iterwalk), so deep pages cannot hit Python's recursion limit.
    """
    owners: list[html.HtmlElement] = [element]
    parts: list[str] = []
    link_chars = 0
    in_link = 0

    def flush() -> tuple[str, html.HtmlElement, int] | None:
        nonlocal link_chars
        text = clean("".join(parts))
        parts.clear()
        links, link_chars = link_chars, 0
        return (text, owners[-1], min(links, len(text))) if text else None

    def add(text: str | None) -> None:
        nonlocal link_chars
        if text:
            parts.append(text)
            if in_link:
                link_chars += len(text.strip())

    for event, node in etree.iterwalk(element, events=("start", "end")):
        tag = node.tag if isinstance(node.tag, str) else ""
        if event == "start":
            if node is element:
                add(node.text)
                continue
            if tag in BLOCK_TAGS or tag == "br":
                if (block := flush()) is not None:
                    yield block
                if tag != "br":
                    owners.append(node)
            if tag == "a":
                in_link += 1
            add(node.text)
        else:
            if node is element:
                break
            if tag == "a":
                in_link -= 1
            if tag in BLOCK_TAGS:
                if (block := flush()) is not None:
                    yield block
                owners.pop()
            add(node.tail)
    if (block := flush()) is not None:
        yield block


def join_paragraphs(texts: Iterable[str]) -> str:
    return "\n\n".join(text for text in texts if text)


def attr_text(element: html.HtmlElement) -> str:
    """An element's class and id, lower-cased, for boilerplate hints."""
    return f"{element.get('class') or ''} {element.get('id') or ''}".lower()
