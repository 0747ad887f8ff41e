"""The article body by a chain of evidence, so that no article is lost.

Opinions, cheapest first; each is asked only when the ones before leave doubt:

1. `dom`: our own scorer (`tasks.extract.body`) on the cleaned tree.
2. `json-ld`: the schema.org `articleBody`, when the page declares one.
3. `embedded`: the article kept in the page's scripts: a `<script type="text/template">`
   fragment, or the longest article-like text of an embedded JSON state (`__NEXT_DATA__`,
   `window.__INITIAL_STATE__ = {...}`, `application/json`).
4. `trafilatura`: a well-kept extractor as second opinion, with fast settings.
5. `main`: last, every prose paragraph of the page's `<main>` / `<article>` / `<body>`.

Doubt means: our body is empty or short, holds little of the page's prose, shares few words
with the page's title and description, reads like a consent or privacy notice, or
disagrees with a declared `articleBody`. Then every opinion is gathered and one is picked by
agreement and length: opinions that are not about the page's subject (title and description
words) or read like consent notices are set aside; among the rest ours stands unless another
opinion holds most of ours and is clearly longer (ours was cut short), or ours agrees with
no one while another is about the subject. No rule names a site.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree, html

from tasks.extract.body import BodyResult, extract_body_info
from tasks.extract.text import clean, iter_blocks, parse_tree

TINY_BODY = 200  # characters: a body shorter than this asks for other opinions
SHORT_BODY = 600  # characters: a body shorter than this may have been cut short
LOW_COVERAGE = 0.6  # share of the page's prose paragraphs below which we ask too
LOW_FIT = 0.3  # subject words found in the body below which we ask too
FIT_CHARS = 3000  # how much of a text `fit` reads
WHOLE = 0.9  # share of the page's prose that means our body holds all of it
PLAUSIBLE = 0.2  # an opinion less about the subject than this is set aside
EXTENDS = 0.7  # share of our 3-grams another opinion must hold to count as a longer version
LONGER = 1.25  # how much longer it must be
AGREE = 0.5  # share of 3-grams for two opinions to agree

_WORD = re.compile(r"\w+")
_STOP_WORDS = (
    "the and for with that this from are was were will has have had not but its his her "
    "their they them you your our who what when where which how why all new more after over "
    "into about than been also said says can could would should may might one two out off "
    "per via just now")
_STOP = frozenset(_STOP_WORDS.split())
_CONSENT = re.compile(
    r"\b(?:personal (?:information|data)|opt[- ]out|do not sell|cookies?|consent|privacy"
    r" (?:policy|notice|rights|choices|settings)|ccpa|gdpr|third[- ]part(?:y|ies)|targeted"
    r" advertising|data (?:processing|controller)|your (?:choices|rights))\b", re.IGNORECASE)
_TEMPLATE_TYPES = frozenset({"text/template", "text/x-template", "text/html",
                             "text/x-handlebars-template", "text/x-handlebars",
                             "text/ng-template", "text/x-jsrender"})
_JSON_TYPES = frozenset({"application/json", "text/json"})
_STATE = re.compile(r"^\s*(?:(?:window|self|globalThis)\s*\.\s*)?[\w$.\[\]'\"]+\s*=\s*(?=[{\[])")
_TEXT_KEYS = frozenset({"articlebody", "body", "bodyhtml", "body_html", "content",
                        "contenthtml", "content_html", "html", "text", "fulltext", "full_text",
                        "markdown", "story", "storybody", "post_body", "postbody", "rendered"})
_HTML_HINT = re.compile(r"<(?:p|div|br|h[1-6]|ul|ol|li|blockquote)\b", re.IGNORECASE)
_MAIN_DROP = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside",
              "form", "button", "select", "svg", "iframe")
_LINKS = re.compile(r"\s+")

# a second opinion, (page HTML, URL) -> text; None: trafilatura
SecondOpinion = Callable[[str, str], str]


@dataclass
class Evidence:
    """What the chain may consult besides our own body, gathered before the tree is cleaned."""

    title: str | None = None
    description: str | None = None
    article_body: str | None = None  # JSON-LD
    templates: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    body: str
    extracted_by: str  # dom | json-ld | embedded | trafilatura | main
    asked: tuple[str, ...] = ()  # the opinions that were gathered


def gather_scripts(root: html.HtmlElement, evidence: Evidence) -> None:
    """Keep the texts of scripts that may hold the article (templates, JSON states).

    Cheap: only references to strings; they are parsed if the chain needs them.
    """
    for script in root.iter("script"):
        kind = (script.get("type") or "").strip().lower()
        text = script.text or ""
        if len(text) < 200 or kind == "application/ld+json":
            continue
        if kind in _TEMPLATE_TYPES:
            evidence.templates.append(text)
        elif kind in _JSON_TYPES or (script.get("id") or "").startswith("__") or (
                kind in ("", "text/javascript", "application/javascript", "module")
                and len(text) > 500 and _STATE.match(text)):
            evidence.states.append(text)
    for node in root.iter("template"):
        fragment = etree.tostring(node, encoding="unicode", method="html")
        if len(fragment) >= 200:
            evidence.templates.append(fragment)


# -- comparing texts -------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(text)]


def _grams(text: str) -> set[tuple[str, ...]]:
    tokens = _tokens(text)
    return {tuple(tokens[i:i + 3]) for i in range(max(0, len(tokens) - 2))}


def held(a: str, b: str) -> float:
    """Share of a's word 3-grams that b holds (1.0 when a is empty)."""
    ga = _grams(a)
    if not ga:
        return 1.0
    return len(ga & _grams(b)) / len(ga)


def _subject_words(evidence: Evidence) -> set[str]:
    words: set[str] = set()
    for text in (evidence.title, evidence.description):
        for token in _tokens(text or ""):
            if len(token) >= 3 and token not in _STOP and not token.isdigit():
                words.add(token[:5])  # a crude stem: "regulators" ~ "regulation"
            elif len(token) >= 2 and _cjk(token):
                words.update(token[i:i + 2] for i in range(len(token) - 1))
    return words


_CJK = re.compile("[\u3040-\u9fff\uac00-\ud7af]")


def _cjk(token: str) -> bool:
    return _CJK.search(token) is not None


def fit(text: str, subject: set[str]) -> float:
    """How much a text is about the page's subject, less how much it reads as a consent
    notice: 0 (off the subject) .. 1; 0.5 when the page states no subject."""
    if not text:
        return 0.0
    head = text[:FIT_CHARS]  # the subject shows early; bounded cost on long pages
    if len(subject) < 3:
        about = 0.5
    else:
        tokens = _tokens(head)
        stems = {t[:5] for t in tokens}
        if _CJK.search(head):
            stems |= {t[i:i + 2] for t in tokens if _cjk(t) for i in range(len(t) - 1)}
        about = len(subject & stems) / len(subject)
    sentences = max(1, len(re.findall(r"[.!?。](?:\s|$)", head)))
    consent = min(1.0, 2 * len(_CONSENT.findall(head)) / sentences)
    return max(0.0, about - 0.6 * consent)


# -- the opinions ----------------------------------------------------------------------------


def _paragraphs_of_text(text: str) -> str:
    """A JSON-LD or JSON body: HTML is read as HTML, plain text keeps its line breaks."""
    if _HTML_HINT.search(text):
        fragment = parse_tree(f"<html><body><div>{text}</div></body></html>")
        if fragment is None:
            return ""
        return "\n\n".join(t for t, _o, _l in iter_blocks(fragment) if t)
    return "\n\n".join(p for p in (clean(line) for line in text.splitlines()) if p)


def from_json_ld(evidence: Evidence) -> str:
    return _paragraphs_of_text(evidence.article_body) if evidence.article_body else ""


def _walk_json(data: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, string) for every string of a JSON document; lists of paragraph objects are
    also offered joined ("blocks": [{"type": "paragraph", "text": ...}, ...])."""
    stack: list[tuple[str, Any]] = [(key, data)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, dict):
            stack.extend((str(k).lower(), v) for k, v in value.items())
        elif isinstance(value, list):
            texts = [_item_text(item) for item in value]
            joined = [t for t in texts if t]
            if len(joined) >= 3 and sum(len(t) for t in joined) >= 400:
                yield name or "list", "\n".join(joined)
            stack.extend((name, v) for v in value)


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item if " " in item else ""
    if isinstance(item, dict):
        for key in ("text", "content", "html", "value", "body"):
            value = item.get(key)
            if isinstance(value, str) and " " in value:
                return value
    return ""


def _load_state(text: str) -> Any:
    match = _STATE.match(text)
    start = match.end() if match else 0
    body = text[start:].strip().rstrip(";").strip()
    try:
        return json.JSONDecoder().raw_decode(body)[0]
    except ValueError:
        return None


def from_embedded(evidence: Evidence, subject: set[str]) -> str:
    """The best article-like text kept in templates or JSON states, or ""."""
    found: list[str] = []
    for template in evidence.templates:
        tree = parse_tree(f"<html><body>{template}</body></html>")
        if tree is not None:
            found.append(extract_body_info(tree).text)
    for state in evidence.states:
        data = _load_state(state)
        if data is None:
            continue
        for key, value in _walk_json(data):
            if len(value) >= 300 and (key in _TEXT_KEYS or key.endswith(("body", "html", "text"))
                                      or key == "list" or _HTML_HINT.search(value)):
                text = _paragraphs_of_text(value)
                if len(text) >= 200 and text.count(" ") > len(text) / 15:
                    found.append(text)
    found = [text for text in found if text]
    if not found:
        return ""
    return max(found, key=lambda t: (fit(t, subject) >= LOW_FIT, len(t)))


def main_text(root: html.HtmlElement) -> str:
    """Last resort: every prose paragraph of <main>, else <article>, else <body>."""
    scope = next(iter(root.iter("main")), None)
    for other in (next(iter(root.iter("article")), None), root.find("body"), root):
        if scope is None:
            scope = other
    assert scope is not None
    for node in list(scope.iter(*_MAIN_DROP)):
        if node.getparent() is not None:
            node.drop_tree()
    out = [text for text, _o, links in iter_blocks(scope)
           if len(text) >= 40 and links < 0.3 * len(text)]
    return "\n\n".join(out)


def trafilatura_opinion(page: str, url: str) -> str:
    """trafilatura's body, fast settings (no fallback extractors), no comments, no tables of
    links; "" when it is not installed or finds nothing."""
    try:
        import trafilatura
    except ImportError:  # pragma: no cover - a runtime dependency, but never fatal
        return ""
    try:
        text = trafilatura.extract(page, url=url or None, fast=True, include_comments=False,
                                   include_tables=True, deduplicate=False)
    except Exception:  # a second opinion must never sink the page
        return ""
    return "\n\n".join(p for p in (clean(line) for line in (text or "").splitlines()) if p)


# -- the choice ------------------------------------------------------------------------------


def in_doubt(ours: BodyResult, evidence: Evidence, subject: set[str]) -> bool:
    """Whether our body needs other opinions."""
    text = ours.text
    if len(text) < TINY_BODY or _maybe_cut(ours):
        return True
    if fit(text, subject) < LOW_FIT:
        return True
    return _declared_disagrees(text, evidence)


def _declared_disagrees(text: str, evidence: Evidence) -> bool:
    """Ours is not in the declared articleBody; a declared body that is merely longer is no
    doubt (it often holds captions, product boxes or the paywalled rest)."""
    if evidence.article_body and len(evidence.article_body) >= 200:
        return held(text[:FIT_CHARS], evidence.article_body) < AGREE
    return False


_PROMPT = re.compile(
    r"\b(?:subscribe|subscription|subscriber|sign in|log in|register|create an account"
    r"|keep reading|continue reading|to read more|unlock|premium|members? only)\b", re.IGNORECASE)


def article_text(text: str, evidence: Evidence, subject: set[str]) -> str:
    """An opinion's text as article text: the title line, subscription prompts and consent
    or privacy notices off (a notice is a paragraph full of consent terms that shares no
    words with the page's subject, so an article *about* privacy keeps its paragraphs);
    "" when what is left is not prose (no sentence of 60 characters, under 150 in all)."""
    if not text:
        return ""
    title = clean(evidence.title).lower() if evidence.title else ""
    kept = []
    for para in text.split("\n\n"):
        if title and para.lower() == title:
            continue
        if len(para) < 200 and _PROMPT.search(para):
            continue
        if len(_CONSENT.findall(para)) >= (1 if len(para) < 80 else 2) and len(subject) >= 3 and \
                len(subject & {t[:5] for t in _tokens(para)}) < 2:
            continue
        kept.append(para)
    scale = 3 if _CJK.search(text[:500]) else 1  # CJK says as much in a third of the characters
    if sum(len(p) for p in kept) < 150 / scale or not any(len(p) >= 60 / scale for p in kept):
        return ""
    return "\n\n".join(kept)


def _maybe_cut(ours: BodyResult) -> bool:
    """Much of the page's prose is not in our body (after cleaning, or before it)."""
    return ours.coverage < LOW_COVERAGE or ours.raw_coverage < LOW_COVERAGE


def choose(ours: BodyResult, evidence: Evidence, page: str,
           fresh_tree: Callable[[], html.HtmlElement | None], url: str,
           second: SecondOpinion | None = None) -> Choice:
    """The body to keep, and which opinion gave it.

    `page` is the page's HTML (for the second opinion); `fresh_tree` gives the page's tree
    again, uncleaned and without its comments (only called for the last resort).
    """
    subject = _subject_words(evidence)
    if ours.text and not in_doubt(ours, evidence, subject):
        return Choice(ours.text, "dom")
    if len(ours.text) >= TINY_BODY and ours.coverage >= WHOLE and ours.raw_coverage >= WHOLE \
            and not _declared_disagrees(ours.text, evidence):
        # off the subject, yet our body holds all of the page's prose: no other opinion can
        # find more; what is wrong in it is a notice, which `article_text` takes out
        kept = article_text(ours.text, evidence, subject)
        if kept and fit(kept, subject) >= PLAUSIBLE:
            return Choice(kept, "dom")
    cut = len(ours.text) < SHORT_BODY or _maybe_cut(ours)
    opinions: dict[str, str] = {"dom": ours.text, "json-ld": from_json_ld(evidence)}
    opinions = {name: article_text(text, evidence, subject) for name, text in opinions.items()}
    picked = None
    if opinions["dom"] and opinions["json-ld"] and not cut \
            and held(opinions["dom"][:FIT_CHARS], opinions["json-ld"]) >= AGREE:
        picked = _pick(_present(opinions), subject, cut)  # the declared body settles it
    if picked is None:
        opinions["trafilatura"] = article_text((second or trafilatura_opinion)(page, url),
                                               evidence, subject)
        picked = _pick(_present(opinions), subject, cut)
    if picked is None or len(opinions[picked]) < SHORT_BODY:
        # the article may live in the page's scripts only (a blog platform's template);
        # scripts are read from the uncleaned tree, only now that they may be needed
        tree = fresh_tree()
        if tree is not None and not (evidence.templates or evidence.states):
            gather_scripts(tree, evidence)
        embedded = article_text(from_embedded(evidence, subject), evidence, subject)
        opinions = _in_order({**opinions, "embedded": embedded})
        picked = _pick(_present(opinions), subject, cut)
    asked = tuple(_present(opinions))
    if picked is None:
        tree = fresh_tree()
        text = article_text(main_text(tree), evidence, subject) if tree is not None else ""
        if text:
            return Choice(text, "main", (*asked, "main"))
        return Choice("", "none", (*asked, "main"))
    return Choice(opinions[picked], picked, asked)


ORDER = ("dom", "json-ld", "embedded", "trafilatura")  # trust, when opinions agree


def _in_order(opinions: dict[str, str]) -> dict[str, str]:
    return {name: opinions[name] for name in ORDER if name in opinions}


def _present(opinions: dict[str, str]) -> dict[str, str]:
    return {name: text for name, text in opinions.items() if text}


def _pick(opinions: dict[str, str], subject: set[str], cut: bool) -> str | None:
    """`cut`: our body may be cut short (short, or little of the page's prose)."""
    if not opinions:
        return None
    fits = {name: fit(text, subject) for name, text in opinions.items()}
    plausible = [name for name in opinions if fits[name] >= PLAUSIBLE
                 and len(opinions[name]) >= 80]
    if not plausible:
        # nothing is clearly about the page's subject (a title that does not match its
        # story): every opinion counts, in the order of trust; notices are already out
        plausible = [name for name in opinions if len(opinions[name]) >= 80]
        if not plausible:
            return None
    base = plausible[0]  # dom, json-ld, embedded, trafilatura: in order of trust
    for name in plausible[1:]:
        # a longer version of what we have: ours was cut short (split body, "read more")
        if (cut or base != "dom") and held(opinions[base], opinions[name]) >= EXTENDS and \
                len(opinions[name]) >= LONGER * len(opinions[base]):
            base = name
    if base == "dom" and "dom" in opinions:
        others = [n for n in plausible if n != "dom"]
        agreeing = [n for n in others if held(opinions[n], opinions["dom"]) >= AGREE
                    or held(opinions["dom"], opinions[n]) >= AGREE]
        if others and not agreeing:
            # ours agrees with no one: the opinion most about the subject, then the longest
            best = max(others, key=lambda n: (round(fits[n], 1), len(opinions[n])))
            if fits[best] > fits["dom"] + 0.15:
                base = best
    return base
