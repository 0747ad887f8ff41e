"""A faster stand-in for the model's `attribute_ruler` + `lemmatizer` pair.

The attribute ruler runs a token Matcher over ~180 patterns and the rule lemmatizer works
token by token; together they took about as long as the parser. Nearly all of those
patterns test one token's TAG, LOWER, DEP or IS_SPACE, so they are compiled here into
dictionary look-ups keyed by tag, applied in the ruler's order (later rules win, as in
spaCy), and lemmas are cached per (word, POS, morphology) across documents. The few
two-token lemma patterns ("gon na") are skipped. The output equals the original
components' on ordinary text (checked in tests/tasks/test_claims.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import numpy
from spacy.attrs import DEP, LEMMA, MORPH, ORTH, POS, TAG
from spacy.language import Language
from spacy.tokens import Doc, Token

_Cond = Callable[[Token], bool]
_Rule = tuple[list[_Cond], dict[str, Any]]


def _condition(attr: str, want: Any) -> _Cond:
    """One token test of an attribute-ruler pattern (a value, IN, NOT_IN or REGEX)."""
    get: Callable[[Token], Any] = {
        "LOWER": lambda t: t.lower_, "DEP": lambda t: t.dep_,
        "IS_SPACE": lambda t: t.is_space, "TAG": lambda t: t.tag_}[attr]
    if not isinstance(want, dict):
        return lambda t: bool(get(t) == want)
    if "REGEX" in want:
        regex = re.compile(want["REGEX"])
        return lambda t: regex.search(str(get(t))) is not None
    if "NOT_IN" in want:
        banned = frozenset(want["NOT_IN"])
        return lambda t: get(t) not in banned
    values = frozenset(want["IN"])
    return lambda t: get(t) in values


class FastAttributes:
    """Sets POS, MORPH and LEMMA the way `attribute_ruler` + `lemmatizer` would."""

    def __init__(self, nlp: Language) -> None:
        ruler = nlp.get_pipe("attribute_ruler")
        # the lemmatizer tests `form in index` on lists of ~50,000 words (~200 µs a word):
        # sets give the same answers at once
        index = nlp.get_pipe("lemmatizer").lookups.get_table(  # type: ignore[attr-defined]
            "lemma_index")
        for pos in list(index):
            index[pos] = frozenset(index[pos])
        self._lemmatize: Callable[[Token], list[str]] = \
            nlp.get_pipe("lemmatizer").rule_lemmatize  # type: ignore[attr-defined]
        self._by_tag: dict[str, list[tuple[int, _Rule]]] = {}
        self._any_tag: list[tuple[int, _Rule]] = []
        # rules that test the word itself apply to few words: they are kept apart so that
        # an ordinary word is checked against the handful of rules for its tag only
        self._words: dict[int, frozenset[str]] = {}
        for order, pattern in enumerate(ruler.patterns):  # type: ignore[attr-defined]
            tokens = pattern["patterns"][0]
            if len(tokens) != 1:
                continue
            spec = dict(tokens[0])
            tag = spec.get("TAG")
            if isinstance(tag, str) or (isinstance(tag, dict) and set(tag) == {"IN"}):
                del spec["TAG"]  # indexed by tag instead of tested
            rule: _Rule = ([_condition(k, v) for k, v in spec.items()], pattern["attrs"])
            lower = spec.get("LOWER")
            if isinstance(lower, str) or (isinstance(lower, dict) and set(lower) == {"IN"}):
                self._words[order] = frozenset([lower] if isinstance(lower, str)
                                               else lower["IN"])
            if isinstance(tag, str):
                self._by_tag.setdefault(tag, []).append((order, rule))
            elif isinstance(tag, dict) and set(tag) == {"IN"}:
                for one in tag["IN"]:
                    self._by_tag.setdefault(one, []).append((order, rule))
            else:
                self._any_tag.append((order, rule))
        self._all_words = frozenset(w for words in self._words.values() for w in words)
        self._cache: dict[tuple[str, str], list[tuple[list[_Cond], dict[str, Any]]]] = {}
        self._lemmas: dict[tuple[int, ...], tuple[int, int, int, str | None]] = {}
        self._rule_lemmas: dict[tuple[int, int, int], str] = {}

    def _rules(self, tag: str, lower: str) -> list[tuple[list[_Cond], dict[str, Any]]]:
        if lower not in self._all_words:
            lower = ""
        rules = self._cache.get((tag, lower))
        if rules is None:
            merged = sorted(self._by_tag.get(tag, []) + self._any_tag, key=lambda r: r[0])
            rules = [rule for order, rule in merged
                     if order not in self._words or lower in self._words[order]]
            self._cache[(tag, lower)] = rules
        return rules

    def _slow(self, tok: Token) -> tuple[int, int, int, str | None]:
        """(POS, MORPH, LEMMA) hashes and a DEP override for one token, rule by rule."""
        lemma: str | None = None
        dep: str | None = None
        for conds, attrs in self._rules(tok.tag_, tok.lower_):
            if all(cond(tok) for cond in conds):
                if "POS" in attrs:
                    tok.pos_ = attrs["POS"]
                if "MORPH" in attrs:
                    tok.set_morph(attrs["MORPH"])  # type: ignore[attr-defined]
                if "DEP" in attrs:
                    dep = attrs["DEP"]
                if "LEMMA" in attrs:
                    lemma = attrs["LEMMA"]
        if lemma is None:
            key = (tok.orth, tok.pos, tok.morph.key)  # type: ignore[attr-defined]
            lemma = self._rule_lemmas.get(key)
            if lemma is None:
                lemma = self._rule_lemmas[key] = self._lemmatize(tok)[0]
        return (tok.pos, tok.morph.key,  # type: ignore[attr-defined]
                tok.vocab.strings.add(lemma), dep)

    def __call__(self, doc: Doc) -> Doc:
        # the result depends only on the token's tag, form and dependency label, so it is
        # cached on those and written back as whole arrays
        cache = self._lemmas
        rows: list[tuple[int, int, int]] = []
        for i, key in enumerate(map(tuple, doc.to_array([TAG, ORTH, DEP]).tolist())):
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = self._slow(doc[i])
            if hit[3] is not None:
                doc[i].dep_ = hit[3]
            rows.append(hit[:3])
        out = numpy.array(rows, dtype="uint64").reshape(len(doc), 3)
        doc.from_array([POS, MORPH, LEMMA], cast(Any, out))
        return doc


@Language.factory("policywatch_fast_attributes")
def make_fast_attributes(nlp: Language, name: str) -> Callable[[Doc], Doc]:
    """Replaces `attribute_ruler` + `lemmatizer`; added by `tasks.claims.extractor.load_nlp`."""
    return _Lazy(nlp)


class _Lazy:
    """Compiles the patterns on first use, once the model's own components are loaded."""

    def __init__(self, nlp: Language) -> None:
        self._nlp = nlp
        self._impl: FastAttributes | None = None

    def __call__(self, doc: Doc) -> Doc:
        if self._impl is None:
            self._impl = FastAttributes(self._nlp)
        return self._impl(doc)
