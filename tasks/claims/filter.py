"""A learnt filter over the extractor's claims: is this candidate a real attribution?

The rules of `tasks.claims` (and the cue classifier of `tasks.claims.cuemodel`) propose
claims; this logistic model scores each finished candidate from features of the whole
claim that the cue-level rules cannot see together: where the cue came from (hand rule,
learnt cue, `according to`, headline colon), its key and construction, the kind of
speaker (name, pronoun, role noun, inanimate noun, none) and whether it was resolved to a
name, the quote kind, the content's length, whether it has a verb / a finite verb / its
own subject, its first word, how much of the sentence it covers, negation, the cue's tag,
and where the sentence stands in the article. Candidates scoring below the threshold are
dropped. Trained on the PolNeAR train split by `bench/train_claims_filter.py` on claims the
extractor produced for articles whose cue classifier was fitted on the other folds
(scikit-learn there); here the weights are a plain dict, applied with a sum and a sigmoid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from spacy.tokens import Span, Token

from tasks.claims import lexicon as lex
from tasks.claims.cuemodel import read_model_file

MODEL_PATH = Path(__file__).resolve().parent / "models" / "claims_filter.json"
_FINITE = frozenset({"VBD", "VBZ", "VBP", "MD"})
_PERSONAL = frozenset({"he", "she", "they", "i", "we", "you"})
_LEADS = frozenset({"that", "to", "whether", "if", "how", "what", "why", "the", "a", "an",
                    "it", "he", "she", "they", "we", "i", "there", "this"})


@dataclass(frozen=True)
class Candidate:
    """What the filter looks at: the cue, the speaker, the content, as the extractor has
    them when it assembles a claim."""

    cue: Token
    source: str  # rule | learnt<score decile> | according | colon | in | raising
    key: str  # lemma/POS/construction
    speaker_head: Token | None
    speaker_text: str | None
    content: Span | None
    content_chars: int
    pieces: int
    quote_kind: str
    sentence: Span
    sentence_index: int  # 0: the article's first sentence (a headline, often)


def _speaker_kind(head: Token | None) -> str:
    if head is None:
        return "none"
    low = head.lower_
    if low in _PERSONAL:
        return "person_pron"
    if head.pos_ == "PRON":
        return "pron"
    lemma = head.lemma_.lower()
    if lemma in lex.ROLE_NOUNS or lemma in lex.SPOKES_ROLES:
        return "role"
    if lemma in lex.INANIMATE:
        return "inanimate"
    if head.pos_ == "PROPN":
        return "propn"
    return head.pos_.lower()


def _bucket(n: int) -> int:
    return min(n.bit_length(), 7)


def features(c: Candidate) -> list[str]:
    """Feature names of one candidate claim."""
    lemma, _, rest = c.key.partition("/")
    construction = rest.rpartition("/")[2]
    sk = _speaker_kind(c.speaker_head)
    src = c.source.rstrip("0123456789")
    feats = [f"src={c.source}", f"src={src}", f"k={c.key}", f"l={lemma}", f"c={construction}",
             f"sk={sk}", f"sk={sk}/c={construction}", f"src={src}/sk={sk}",
             f"kind={c.quote_kind}", f"kind={c.quote_kind}/c={construction}",
             f"ct={c.cue.tag_}", f"cd={c.cue.dep_}", f"l={lemma}/sk={sk}"]
    if c.pieces > 1:
        feats.append("pieces")
    named = bool(c.speaker_text) and sum(w[:1].isupper() for w in (c.speaker_text or "").split()
                                         ) >= 2
    if named:
        feats.append("named")
    if c.speaker_head is not None and c.speaker_text and \
            c.speaker_head.text not in c.speaker_text:
        feats.append("resolved")
    if any(ch.dep_ == "neg" for ch in c.cue.children):
        feats.append("neg")
    feats.append(f"si={min(c.sentence_index, 3)}")
    sent_chars = max(c.sentence.end_char - c.sentence.start_char, 1)
    feats.append(f"cover={min(int(4 * c.content_chars / sent_chars), 4)}")
    span = c.content
    if span is None or not len(span):
        feats.append("nospan")
        return feats
    n = sum(1 for t in span if not t.is_punct and not t.is_space)
    feats.append(f"n={_bucket(n)}")
    feats.append(f"n={_bucket(n)}/c={construction}")
    verb = finite = subj = False
    for t in span:
        if t.pos_ in ("VERB", "AUX"):
            verb = True
            if t.tag_ in _FINITE:
                finite = True
        if t.dep_ in ("nsubj", "nsubjpass"):
            subj = True
    feats.append(f"verb={int(verb)}{int(finite)}{int(subj)}")
    feats.append(f"verb={int(verb)}{int(finite)}/c={construction}")
    roots = [t for t in span if t.head.i < span.start or t.head.i >= span.end or t.head.i == t.i]
    if roots:
        feats.append(f"root={roots[0].pos_}")
        feats.append(f"nroots={min(len(roots), 3)}")
    first = next((t for t in span if not t.is_punct and not t.is_space), None)
    if first is not None:
        low = first.lower_
        feats.append(f"first={low if low in _LEADS else first.pos_}")
        if first.text[:1].isupper():
            feats.append("cap")
    if span.end < len(span.doc) and span.end <= c.sentence.end - 1:
        feats.append("midsent")
    last = next((t for t in reversed(span) if not t.is_punct and not t.is_space), None)
    if last is not None:
        feats.append(f"last={last.pos_}")
    if first is not None:
        feats.append(f"l={lemma}/first={first.lower_ if first.lower_ in _LEADS else first.pos_}")
    if any(t.text in ('"', "“", "”", "''", "``") for t in c.sentence):
        feats.append(f"qsent/kind={c.quote_kind}")
    if c.sentence_index == 0 and not c.sentence.text.rstrip().endswith((".", '"', "”")):
        feats.append("headline")
    if c.cue.i > span.start:
        feats.append("cue_after")
    return feats


_Model = tuple[dict[str, float], float, float]


@lru_cache(maxsize=1)
def _saved() -> dict[str, Any]:
    return read_model_file(MODEL_PATH)


@lru_cache(maxsize=1)
def _model() -> _Model | None:
    raw = _saved()
    if not raw:
        return None
    return dict(raw["weights"]), float(raw["bias"]), float(raw["threshold"])


_override: list[_Model | None] = []


def use(model: _Model | None) -> None:
    """Filter with this (weights, bias, threshold) instead of the shipped model; None: no
    filter (for training and cross-validation in bench/train_claims_filter.py)."""
    _override[:] = [model]


def reset() -> None:
    _override.clear()
    _saved.cache_clear()
    _model.cache_clear()


def model() -> _Model | None:
    return _override[0] if _override else _model()


def score(feats: list[str], m: _Model) -> float:
    weights, bias, _ = m
    get = weights.get
    z = bias + sum(get(f, 0.0) for f in feats)
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def keep(c: Candidate) -> bool:
    """Whether the candidate stays a claim (always, when no filter ships)."""
    m = model()
    return m is None or score(features(c), m) >= m[2]
