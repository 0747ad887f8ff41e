"""Claims from the span tagger (`tasks.claims.tagger`) that the rules did not find.

The rules propose claims from the parse and are kept where they fire (docs/claims.md says
which part decides what). The tagger reads every sentence, so it also finds what no
hand-written construction covers: transcripts (`WALLACE: ...`), dashes, rare cue words
and nouns. Each content span it marks that no rule claim already covers becomes a
candidate when a cue span lies close to it. Its speaker is the source span nearest that
cue or, failing one, the cue's subject in the parse, resolved by the rules' own
`Resolver` (pronouns, surnames, "the company"). A logistic filter over features of the
candidate (the tagger's confidences, the cue's words, where cue and speaker stand, the
speaker's kind) decides which are kept; its weights are `models/claims_tagged_filter.json`,
fitted by `bench/train_claims_tagger.py --stage filter` on articles the tagger was not
trained on. The tagger reads only the sentences where the rules found nothing: where they
fire, they decide, and the tagger's work is about halved.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, Token

from schemas.models import ClaimDraft
from tasks.claims import cues as claims_cues
from tasks.claims import lexicon as lex
from tasks.claims.cuemodel import read_model_file
from tasks.claims.quotes import QuoteIndex
from tasks.claims.speakers import EntityIndex, Resolver, Speaker
from tasks.claims.tagger import SENTENCE_END, ClaimTagger, Span, Tagged

FILTER_PATH = Path(__file__).resolve().parent / "models" / "claims_tagged_filter.json"
CUE_GAP = 60  # characters at most between a content span and its cue
SOURCE_GAP = 150  # ... and between that cue and its source, in the same sentence
OVERLAP = 0.3  # share of a tagged content's letters that a rule claim may already hold
MIN_LETTERS = 12

_PERSONAL = frozenset({"he", "she", "they", "i", "we", "you", "it"})
_UNPARSED_TAGS = frozenset({"XX", "NNP", "_SP", ""})  # what parse gives what it skips
_DASHES = frozenset({"—", "―", "--"})
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "gov", "sen", "rep", "gen", "col",
                            "lt", "sgt", "st", "jr", "sr", "prof", "rev", "no", "vs", "inc",
                            "corp", "co", "ltd", "jan", "feb", "aug", "sept", "oct", "nov",
                            "dec"})
_RELATIVES = frozenset({"who", "which", "that", "whose", "whom"})
_POSSESSIVES = frozenset({"his", "her", "its", "their", "our", "my", "your"})
_NEGATION = re.compile(r"\b(not|never|no longer)\b|n['’]t\b")


def _stems(words: frozenset[str]) -> str:
    """An alternation of the lexicon's words cut before a final e ("declin", "comment")."""
    return "(" + "|".join(sorted(w.removesuffix("e") for w in words)) + r")\w*"


_NO_COMMENT = _stems(lex.NO_COMMENT)
_REFUSAL = re.compile(r"\b" + _stems(lex.REFUSALS) + r"\b.{0,40}\b" + _NO_COMMENT)
_NOT_COMMENTING = re.compile(r"(\bnot|n['’]t)\s+(\w+\s+)?" + _NO_COMMENT)


@dataclass(frozen=True)
class Candidate:
    """A claim the tagger proposes, with what the filter reads."""

    claim: ClaimDraft
    features: list[str]


def _gap(a: Span, b: Span) -> int:
    return max(a[0] - b[1], b[0] - a[1], 0)


def _letters(text: str, span: Span) -> set[int]:
    return {i for i in range(span[0], span[1]) if text[i].isalnum()}


def _bucket(n: float) -> int:
    return min(int(n).bit_length(), 8)


def _nearest(target: Span, spans: Sequence[Span], limit: int, text: str,
             sentence: bool = False) -> int | None:
    """Index of the span closest to `target` within `limit` characters, in the same
    paragraph (and the same sentence, when asked)."""
    best: tuple[int, int] | None = None
    for k, span in enumerate(spans):
        gap = _gap(target, span)
        if gap > limit:
            continue
        lo, hi = min(target[1], span[1]), max(target[0], span[0])
        between = text[lo:hi]
        if "\n" in between or (sentence and _ends_sentence(text, lo, hi)):
            continue
        if best is None or gap < best[0]:
            best = (gap, k)
    return best[1] if best else None


def _minus(span: Span, cuts: Sequence[Span], text: str) -> list[Span]:
    """A span with the cue and source spans cut out, each remaining piece trimmed."""
    pieces = [span]
    for cut in cuts:
        nxt: list[Span] = []
        for s, e in pieces:
            if cut[1] <= s or e <= cut[0]:
                nxt.append((s, e))
                continue
            nxt += [(s, cut[0]), (cut[1], e)]
        pieces = nxt
    out = []
    for s, e in pieces:
        while s < e and (text[s].isspace() or text[s] in ",;:—―-"):
            s += 1
        while e > s and (text[e - 1].isspace() or text[e - 1] in ",;:—―-"):
            e -= 1
        if any(ch.isalnum() for ch in text[s:e]):
            out.append((s, e))
    return out


def _stops(text: str, start: int, end: int) -> list[int]:
    """Where sentences end between start and end: after . ! ? (and a closing quote) and
    a blank, but not after a title or an initial ("Mr. Sanders", "U.S. officials")."""
    out = []
    for m in SENTENCE_END.finditer(text, start, end):
        word = text[max(text.rfind(" ", 0, m.start()) + 1, 0):m.start()].lower()
        if m.group().startswith(".") and (word in _ABBREVIATIONS or len(word) == 1
                                          or "." in word):
            continue
        out.append(m.end())
    return out


def _ends_sentence(text: str, start: int, end: int) -> bool:
    return bool(_stops(text, start, end))


def _sentence_of(text: str, span: Span) -> str:
    """The sentence (or line) around a span, or the sentences it runs over."""
    start = max(text.rfind("\n", 0, span[0]) + 1, 0)
    before = _stops(text, start, span[0])
    start = before[-1] if before else start
    line_end = text.find("\n", span[1])
    after = _stops(text, span[1], len(text) if line_end < 0 else line_end + 1)
    end = after[0] if after else (len(text) if line_end < 0 else line_end)
    return text[start:end].strip()


def _parsed_subject(doc: Doc, cue: Span) -> list[Token]:
    """The noun phrase of the subject of the cue's verb, where the parser read it."""
    from tasks.claims.extractor import _np_tokens, _speaker_of

    chars = doc.char_span(cue[0], cue[1], alignment_mode="expand")
    if chars is None:
        return []
    verb = next((t for t in chars if t.pos_ in ("VERB", "AUX", "NOUN", "ADJ")
                 and t.dep_ != "dep"), None)
    if verb is None:
        return []
    head, _ = _speaker_of(verb)
    return _np_tokens(head) if head is not None else []


def _opens_line(text: str, at: int) -> bool:
    """Whether only blanks stand between the line's start and `at` ("WALLACE: ...")."""
    return not text[text.rfind("\n", 0, at) + 1:at].strip()


def cue_words_of(text: str, cue: Span) -> str:
    return " ".join(text[cue[0]:cue[1]].lower().split())


def _base_forms(word: str) -> set[str]:
    """The forms a word may be inflected from ("shipped" -> ship, "released" -> release)."""
    out = {word}
    if word.endswith("ing"):
        out |= {word[:-3], word[:-4], word[:-3] + "e"}
    elif word.endswith("ed"):
        out |= {word[:-2], word[:-1], word[:-3]}
    elif word.endswith("es"):
        out |= {word[:-2], word[:-1]}
    elif word.endswith("s"):
        out.add(word[:-1])
    return out


def _is_event_cue(cue_words: str, content: str) -> bool:
    """An event verb as the cue ("unveiled its rule", "signed the order"), as the rules'
    `quote_kind = 'event'`; "announced that ..." and 'released: "..."' still report words."""
    forms = _base_forms(cue_words.split()[0])
    if forms & lex.EVENT_ALWAYS:
        return True
    opens_clause = content[:1] in "\"“'‘" or content.lower().startswith("that ")
    return bool(forms & lex.EVENT_VERBS) and not opens_clause


def _is_refusal(text: str, cue: Span, content: Span) -> bool:
    """"declined to comment (on X)", "did not respond": nothing was claimed (as the rules
    hold, item 4 of docs/claims.md). Read on the words, as the sentence may be unparsed."""
    words = text[min(cue[0], content[0]):max(cue[1], content[1])].lower()
    return bool(_REFUSAL.search(words) or _NOT_COMMENTING.search(words))


_CONJUNCTIONS = frozenset({"and", "or", "but", "nor"})
_BE = frozenset({"is", "are", "was", "were", "be", "been", "being", "'s", "’s"})
_AUXILIARIES = _BE | {"would", "will", "can", "could", "should", "may", "might", "must",
                      "shall", "has", "have", "had", "do", "does", "did", "'d", "’d", "not"}


def _is_agentless_passive(text: str, cue: Span, cue_words: str) -> bool:
    """"are accused of", "was charged with": a form of "be" and a participle, with no "by"
    naming who did it in the words after the cue."""
    words = cue_words.split()
    if len(words) < 2 or words[0] not in _BE or not words[1].endswith(("ed", "en", "wn")):
        return False
    return re.match(r"[^.;:\n]{0,80}?\bby\b", text[cue[1]:]) is None


def _speaker_tokens(tokens: list[Token], quotes: QuoteIndex) -> list[Token]:
    """A speaker phrase fit to name someone: none when its head is a relative, possessive
    or wh- word ("which reported", "his"), or when it lies inside a quotation; a trailing
    possessive ("Stumpf's") is cut off."""
    while tokens and tokens[-1].lower_ in ("'s", "’s", "'", "’"):
        tokens = tokens[:-1]
    while tokens and (tokens[0].lower_ in _CONJUNCTIONS or tokens[0].is_punct):
        tokens = tokens[1:]  # "... in China and Southeast Asia": a span cut after a comma
    if not tokens:
        return []
    head = tokens[-1]
    if head.tag_ in ("WDT", "WP", "WP$", "PRP$") or head.lower_ in _RELATIVES | _POSSESSIVES:
        return []
    if quotes.containing(tokens[0].idx) is not None:
        return []
    return tokens


def _speaker_kind(tokens: Sequence[Token], speaker: Speaker | None) -> str:
    if not tokens:
        return "none"
    low = tokens[-1].lower_
    if len(tokens) == 1 and low in _PERSONAL:
        return "pron_resolved" if speaker is not None and speaker.text.lower() != low \
            else "pron"
    if tokens[-1].lemma_.lower() in lex.ROLE_NOUNS:
        return "role"
    if sum(t.text[:1].isupper() for t in tokens) >= 1:
        return "name"
    return "other"


def candidates(doc: Doc, text: str, tagged: Tagged, rules: Sequence[ClaimDraft],
               resolver: Resolver, index: EntityIndex, quotes: QuoteIndex
               ) -> list[Candidate]:
    """Every claim the tagger proposes that no rule claim covers, with its features."""
    from tasks.claims.extractor import _about, _bare_phrase, _join, _quote_kind

    covered: set[int] = set()
    for claim in rules:
        for piece in claim.content_pieces or [(claim.content_start, claim.content_end)]:
            covered |= _letters(text, piece)
    out: list[Candidate] = []
    for span, confidence in zip(tagged.content, tagged.content_confidence, strict=True):
        letters = _letters(text, span)
        if len(letters) < MIN_LETTERS or len(letters & covered) > OVERLAP * len(letters):
            continue
        k = _nearest(span, tagged.cue, CUE_GAP, text)
        if k is None:
            continue
        cue = tagged.cue[k]
        if _is_refusal(text, cue, span) or quotes.containing(cue[0]) is not None:
            continue  # a refusal, or a cue inside a quotation (the speaker's own wording)
        cue_words = cue_words_of(text, cue)
        if _NEGATION.search(cue_words):
            continue  # "did not say", "never claimed": not claims, as for the rules
        if not set(cue_words.split()) - _AUXILIARIES:
            continue  # "a bill ... would require X": a modal or "be" alone reports nothing
        if _is_agentless_passive(text, cue, cue_words):
            continue  # "X are accused of Y": X is who it is about, the speaker is unnamed
        if _base_forms(cue_words.split()[0]) & lex.RAISING_VERBS:
            continue  # "X seemed certain": the writer's impression; the rules keep it
        # with X inside the content, unattributed (item 2 of docs/claims.md)
        outside = [s for s in tagged.source if not (span[0] <= s[0] and s[1] <= span[1])
                   and text[s[0]:s[1]].split()[0].lower() not in _RELATIVES]
        j = _nearest(cue, outside, SOURCE_GAP, text, sentence=True)
        source = outside[j] if j is not None else None
        # the parser's subject of the cue, where it agrees with a span the tagger marks as
        # a source (or the tagger marks none near), names the speaker better than the
        # nearest tagged span, which may be an apposition or a place ("N.H.")
        parsed = [t for t in _parsed_subject(doc, cue) if not span[0] <= t.idx < span[1]]
        agreed = bool(parsed) and (source is None or any(
            parsed[0].idx < e and s < parsed[-1].idx + len(parsed[-1]) for s, e in outside))
        tokens: list[Token] = parsed if agreed else []
        origin = "parsed" if agreed else "none"
        if not tokens and source is not None:
            chars = doc.char_span(source[0], source[1], alignment_mode="expand")
            tokens = list(chars) if chars is not None else []
            origin = "tagged" if tokens else "none"
        tokens = _speaker_tokens(tokens, quotes)
        if not tokens:
            origin = "none"
        speaker: Speaker | None = None
        if tokens:
            head = next((t for t in reversed(tokens) if not t.is_punct), tokens[-1])
            speaker = resolver.resolve(head, tokens)
            source = (tokens[0].idx, tokens[-1].idx + len(tokens[-1]))
        pieces = _minus(span, [cue, *([source] if source else [])], text)
        if not pieces:
            continue
        covered |= letters
        start, end = pieces[0][0], pieces[-1][1]
        content_span = doc.char_span(start, end, alignment_mode="expand")
        about = _about(content_span, pieces, speaker, index)
        kind = _quote_kind(text, start, end, quotes)
        if kind != "direct" and _bare_phrase(content_span):
            continue  # "pointed to its CloudMatrix systems": a thing named, nothing claimed
        if speaker is not None and re.split(r"['’\s]", speaker.text.lower())[0] in _PERSONAL \
                and len(speaker.text.split()) == 1:
            continue  # "It vowed ...": a speaker nobody could name is no use in an alert
        if _is_event_cue(cue_words, text[pieces[0][0]:pieces[0][1]]):
            kind = "event"
        sk = _speaker_kind(tokens, speaker)
        between = text[min(cue[1], span[1]):max(cue[0], span[0])]
        feats = [
            f"conf={min(int(confidence * 10), 9)}",
            f"cueconf={min(int(tagged.cue_confidence[k] * 10), 9)}",
            f"cue={cue_words}", f"cuelast={cue_words.rsplit(' ', 1)[-1]}",
            f"cuen={min(len(cue_words.split()), 4)}",
            f"cuepos={'before' if cue[0] < span[0] else 'after'}",
            f"cuegap={_bucket(_gap(cue, span))}",
            f"colon={int(':' in between or cue_words.endswith(':'))}",
            f"origin={origin}", f"sk={sk}", f"sk={sk}/origin={origin}",
            f"kind={kind}", f"len={_bucket(len(letters))}",
            f"first={text[pieces[0][0]:pieces[0][1]].split()[0].lower()[:12]}",
            f"pieces={min(len(pieces), 3)}",
            f"linestart={int(source is not None and _opens_line(text, source[0]))}",
        ]
        out.append(Candidate(ClaimDraft(
            speaker=speaker.text if speaker is not None else None,
            speaker_entity=speaker.entity if speaker is not None else None,
            cue=" ".join(text[cue[0]:cue[1]].split()),
            content=_join(text, pieces),
            sentence=_sentence_of(text, (min(cue[0], start), max(cue[1], end))),
            quote_kind=kind,
            entities=tuple(dict.fromkeys(about)),
            content_start=start,
            content_end=end,
            content_pieces=tuple(pieces),
            cue_spans=(cue,),
            speaker_span=source,
        ), feats))
    return out


@lru_cache(maxsize=1)
def _model() -> tuple[dict[str, float], float, float] | None:
    raw: dict[str, Any] = read_model_file(FILTER_PATH)
    if not raw:
        return None
    return dict(raw["weights"]), float(raw["bias"]), float(raw["threshold"])


def score(features: Sequence[str]) -> float:
    """P(a candidate is a real attribution with the right speaker), by the shipped
    filter; 1.0 when none ships."""
    model = _model()
    if model is None:
        return 1.0
    weights, bias, _ = model
    z = bias + sum(weights.get(f, 0.0) for f in features)
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def threshold() -> float:
    model = _model()
    return model[2] if model is not None else 0.0


def tagged_claims(doc: Doc, text: str, tagger: ClaimTagger, rules: Sequence[ClaimDraft],
                  resolver: Resolver, index: EntityIndex, quotes: QuoteIndex
                  ) -> list[ClaimDraft]:
    """The tagger's claims in the sentences where the rules found none, kept when the
    filter scores them at or above its threshold."""
    tagged = tagger.tag(text, skip=rule_spans(rules), worth=parsed_sentences(doc))
    return [c.claim for c in candidates(doc, text, tagged, rules, resolver, index, quotes)
            if score(c.features) >= threshold()]


def parsed_sentences(doc: Doc) -> Callable[[int, int], bool]:
    """Whether a stretch of the text may hold an attribution: a word the selective parser
    parsed, one of the cue forms it leaves unparsed because the rules do poorly on them
    (`tasks.claims.cues.unparsed`), or a dash. The other sentences hold no cue word,
    colon or `according` (`tasks.claims.parse`) and are not worth the tagger's time."""
    unparsed = claims_cues.unparsed()
    parsed = sorted(t.idx for t in doc if t.tag_ not in _UNPARSED_TAGS
                    or t.lower_ in unparsed or t.text in _DASHES)

    def worth(start: int, end: int) -> bool:
        k = bisect.bisect_left(parsed, start)
        return k < len(parsed) and parsed[k] < end

    return worth


def rule_spans(rules: Sequence[ClaimDraft]) -> list[Span]:
    """The contents and cues of the rules' claims: their sentences are not tagged (the
    rules decide there; it halves the tagger's work)."""
    return [span for c in rules for span in [*c.content_pieces, *c.cue_spans]]
