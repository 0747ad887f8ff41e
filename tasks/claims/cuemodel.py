"""A learnt cue classifier: does this word + construction carry an attributed claim?

The cue table (`tasks.claims.cues`) only knows a `lemma/POS/construction` it saw often
enough in training. This logistic model scores the same candidates (a word and the child
whose subtree would be the claim, `tasks.claims.cues.constructions`) from features that
carry over to rare words: the word's POS, tag and dependency label, its head's lemma, a
copula above an adjective/noun (`is confident that`), the content head's tag and marker
(`that`, `if`), whether the content is finite, who the subject is (pronoun, name, role
noun, other noun), negation, passive voice, quote marks around the content, as well as
the key itself. Trained on the PolNeAR train split by `bench/train_claims_cues.py`
(scikit-learn there); here the weights are a plain dict, applied with a sum and a sigmoid.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from spacy.tokens import Token

from tasks.claims import lexicon as lex

MODEL_PATH = Path(__file__).resolve().parent / "models" / "claims_cue_model.json"
_FINITE = frozenset({"VBD", "VBZ", "VBP", "MD"})
_PERSONAL = frozenset({"he", "she", "they", "i", "we", "you", "who"})
_QUOTES = frozenset({'"', "“", "”", "''", "``"})


def _subject(tok: Token) -> Token | None:
    for child in tok.children:
        if child.dep_ in ("nsubj", "nsubjpass", "csubj"):
            return child
    return None


def _subject_kind(subj: Token | None) -> str:
    if subj is None:
        return "none"
    low = subj.lower_
    if low in _PERSONAL:
        return "person_pron"
    if subj.pos_ == "PRON":
        return "pron"
    if subj.pos_ == "PROPN":
        return "propn"
    if subj.lemma_.lower() in lex.ROLE_NOUNS:
        return "role"
    if subj.lemma_.lower() in lex.INANIMATE:
        return "inanimate"
    return subj.pos_.lower()


_TokenPart = tuple[str, list[str], list[str]]  # key prefix, plain features, templates


def token_part(tok: Token) -> _TokenPart:
    """The features of `tok` that do not depend on the construction (computed once per
    word); templates get the construction name appended."""
    lemma = tok.lemma_.lower()
    pos = tok.pos_
    dep = tok.dep_
    gov = tok.head
    plain = [f"l={lemma}"]
    templates = [f"pc={pos}/", f"tc={tok.tag_}/", f"dc={dep}/"]
    if gov.i != tok.i:
        glem = gov.lemma_.lower()
        plain.append(f"h={glem}/{dep}")
        if glem == "be" and pos in ("ADJ", "NOUN") and dep in ("acomp", "attr"):
            templates.append(f"cop/{pos}/")
    neg = poss = passive = False
    for child in tok.children:
        if child.dep_ == "neg":
            neg = True
        elif child.dep_ == "poss":
            poss = True
        elif child.dep_ in ("nsubjpass", "auxpass"):
            passive = True
    subj = _subject(tok)
    if subj is None and pos in ("ADJ", "NOUN") and gov.i != tok.i:
        subj = _subject(gov)  # "X is confident that", "X voiced support for"
    kind = _subject_kind(subj)
    templates.append(f"s={kind}/")
    plain.append(f"sl={lemma}/{kind}")
    if neg:
        plain.append("neg")
    if poss:
        templates.append("poss/")
    if passive:
        templates.append("pass/")
    return f"k={lemma}/{pos}/", plain, templates


def features(tok: Token, name: str, head: Token, part: _TokenPart | None = None
             ) -> list[str]:
    """Feature names of the candidate `tok` with content head `head` (construction `name`)."""
    prefix, plain, templates = part or token_part(tok)
    feats = [prefix + name, f"c={name}", f"ht={head.tag_}/{name}", *plain,
             *(t + name for t in templates)]
    kids = list(head.children)
    marks = [c.lower_ for c in kids if c.dep_ == "mark"]
    feats.append(f"m={marks[0] if marks else '-'}/{name}")
    if head.tag_ in _FINITE or any(c.dep_ in ("aux", "auxpass") and c.tag_ in _FINITE
                                   for c in kids):
        feats.append(f"fin/{name}")
    if any(c.dep_ in ("nsubj", "nsubjpass") for c in kids):
        feats.append(f"csubj/{name}")
    doc = tok.doc
    left, right = head.left_edge.i, head.right_edge.i
    if (left > 0 and doc[left - 1].text in _QUOTES) or doc[left].text in _QUOTES or \
            doc[right].text in _QUOTES or (right + 1 < len(doc) and doc[right + 1].text
                                           in _QUOTES):
        feats.append(f"q/{name}")
    feats.append(f"n={min((right - left + 1).bit_length(), 6)}/{name}")
    feats.append("after" if head.i > tok.i else "before")
    return feats


_Model = tuple[dict[str, float], float, float]


@lru_cache(maxsize=1)
def _saved() -> dict[str, Any]:
    """The shipped model file, parsed once (465 kB of JSON)."""
    return read_model_file(MODEL_PATH)


def read_model_file(path: Path) -> dict[str, Any]:
    """A learnt model shipped as JSON (weights, bias, threshold, ...); {} when missing."""
    if not path.exists():
        return {}
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _model() -> _Model:
    raw = _saved()
    if not raw:
        return {}, -100.0, 1.0
    return dict(raw["weights"]), float(raw["bias"]), float(raw["threshold"])


_override: list[tuple[_Model, frozenset[str], frozenset[str]]] = []


def use(weights: dict[str, float], bias: float, threshold: float,
        words: frozenset[str], keys: frozenset[str]) -> None:
    """Score with these weights, cue words and keys instead of the shipped ones (for the
    cross-validation in bench/train_claims_cues.py)."""
    _override[:] = [((weights, bias, threshold), words, keys)]


def reset() -> None:
    _override.clear()
    _saved.cache_clear()
    _model.cache_clear()
    _lemmas.cache_clear()
    _keys.cache_clear()


def model() -> _Model:
    return _override[0][0] if _override else _model()


def score(tok: Token, name: str, head: Token, part: _TokenPart | None = None) -> float:
    """Probability that the candidate carries a claim (`part`: `token_part(tok)`, when
    the caller scores several constructions of one word)."""
    weights, bias, _ = model()
    get = weights.get
    z = bias + sum(get(f, 0.0) for f in features(tok, name, head, part))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


def threshold() -> float:
    return model()[2]


@lru_cache(maxsize=1)
def _lemmas() -> frozenset[str]:
    return frozenset(_saved().get("lemmas", []))


@lru_cache(maxsize=1)
def _keys() -> frozenset[str]:
    return frozenset(_saved().get("keys", []))


def live(key: str) -> bool:
    """Whether this `lemma/POS/construction` is scored: when the model ships a list of
    live keys (those it fired on in training), only those are."""
    keys = _override[0][2] if _override else _keys()
    return not keys or key in keys  # no list: every key is scored


def lemmas() -> frozenset[str]:
    """The words the model may call cues (those that were cues in training): only they
    get a sentence parsed and a look from the extractor."""
    return _override[0][1] if _override else _lemmas()
