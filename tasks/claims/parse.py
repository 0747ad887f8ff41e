"""Parse only the sentences that can hold an attribution.

The tagger + parser cost ~50 ms on a 1,000-token article, almost all of it per token.
A claim always hangs on a cue token (a reporting word, "according", a headline colon, a
fronted "In a poll"), so the article is first cut into sentences on its punctuation and
paragraph breaks, and only the runs of sentences holding a possible cue go through
tok2vec, tagger and parser (as separate small docs, batched together). Their annotation
is copied back into the whole article's Doc. The other sentences keep a flat tree and
a guessed tag: a capitalised word inside a sentence, or one met as a proper noun in the
parsed part, is a proper noun — enough for speaker resolution, which looks there only for
names (`tasks.claims.speakers`). Quotations are read on the raw text, so a quote that runs
over unparsed sentences is still whole.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy
from spacy.attrs import DEP, HEAD, TAG
from spacy.language import Language
from spacy.tokens import Doc

from tasks.claims import cuemodel as claims_cuemodel
from tasks.claims import cues as claims_cues
from tasks.claims import lexicon as lex

_ENDS = frozenset({".", "!", "?", "...", "…"})
_CLOSERS = frozenset({'"', "”", "'", "’", ")", "]", "»"})
# words that make a sentence worth parsing besides the cue lemmas
_EXTRA_FORMS = frozenset({"according", ":"})


class CueForms:
    """Whether a word form may be a form of a cue lemma (a superset is fine: it only costs
    parsing time). Forms are undone with the model's own lemmatizer tables."""

    def __init__(self, nlp: Language, lemmas: Iterable[str],
                 skip: frozenset[str] = frozenset()) -> None:
        self.lemmas = frozenset(lemmas)
        self.skip = skip
        lookups = nlp.get_pipe("lemmatizer").lookups  # type: ignore[attr-defined]
        self._rules: list[tuple[str, str]] = []
        self._exc: dict[str, set[str]] = {}
        for pos in ("verb", "noun", "adj"):
            self._rules.extend((old, new) for old, new in lookups.get_table("lemma_rules")
                               .get(pos, []))
            for form, lems in lookups.get_table("lemma_exc").get(pos, {}).items():
                self._exc.setdefault(form, set()).update(lems)
        self._rules = list(dict.fromkeys(self._rules))
        self._cache: dict[str, bool] = {}

    def __contains__(self, lower: str) -> bool:
        hit = self._cache.get(lower)
        if hit is None:
            hit = self._cache[lower] = self._check(lower)
        return hit

    def _check(self, lower: str) -> bool:
        return lower in _EXTRA_FORMS or (lower not in self.skip and bool(self.lemmas_of(lower)))

    def lemmas_of(self, lower: str) -> set[str]:
        """The cue lemmas that `lower` may be a form of."""
        out = {lem for lem in self._exc.get(lower, ()) if lem in self.lemmas}
        if lower in self.lemmas:
            out.add(lower)
        for old, new in self._rules:
            if lower.endswith(old) and lower[:len(lower) - len(old)] + new in self.lemmas:
                out.add(lower[:len(lower) - len(old)] + new)
        return out


def cue_lemmas(min_score: float) -> frozenset[str]:
    """Every lemma the extractor may take as a cue: the lexicon's, the learnt table's and
    the cue classifier's."""
    learnt = {key.split("/", 1)[0] for key, score in claims_cues.load().items()
              if score >= min_score}
    hand = (lex.SPEECH_VERBS | lex.PREP_CUES.keys() | lex.LIGHT_VERBS | lex.XCOMP_VERBS
            | lex.OBJECT_VERBS)
    # the cue classifier's words (tasks.claims.cuemodel), when one ships
    return frozenset(learnt | hand | claims_cuemodel.lemmas())


@lru_cache(maxsize=4)
def _forms(nlp: Language, min_score: float, everything: bool = False) -> CueForms:
    return CueForms(nlp, cue_lemmas(min_score),
                    frozenset() if everything else claims_cues.unparsed())


SentenceStat = tuple[int, frozenset[str], int, int]  # tokens, cue forms, right, wrong


def sentence_stats(nlp: Language, min_score: float, doc: Doc,
                   claims: Sequence[tuple[int, bool]]) -> list[SentenceStat]:
    """Per pre-cut sentence of a fully parsed `doc`: its size, the cue word forms in it,
    and how many right and wrong claims (given as (cue char, right)) came from it."""
    forms = _forms(nlp, min_score, True)
    words = [t.text for t in doc]
    bounds = sentences(words, [bool(t.whitespace_) for t in doc])
    right = [0] * len(bounds)
    wrong = [0] * len(bounds)
    starts = [doc[s].idx for s, _ in bounds]
    for char, ok in claims:
        k = max(bisect_right(starts, char) - 1, 0)
        if ok:
            right[k] += 1
        else:
            wrong[k] += 1
    out: list[SentenceStat] = []
    for k, (start, end) in enumerate(bounds):
        cues = {w.lower() for w in words[start:end] if w.lower() in forms}
        if words[start].lower() == "in":
            cues.add("<in>")  # "In a poll, ...": always parsed
        out.append((end - start, frozenset(cues), right[k], wrong[k]))
    return out


def choose_unparsed(forms: CueForms, stats: Sequence[SentenceStat], n_gold: int,
                    max_loss: float) -> dict[str, list[int]]:
    """Greedily the cue word forms whose sentences are least worth parsing, while the F1
    over `stats` falls by at most `max_loss`: form -> [right claims lost, tokens saved]."""
    keep = set().union(*(s[1] for s in stats)) - {"<in>", "according", ":"}
    # the inflected forms of the lexicon's reporting verbs are always parsed, however
    # rare in one corpus ("stated" is rare in PolNeAR; "state", "states" are nouns there)
    protected = {f for f in keep if any(
        lem in lex.SPEECH_VERBS and f not in (lem, lem + "s") for lem in forms.lemmas_of(f))}
    unparsed: dict[str, list[int]] = {}

    def f1(kept: set[str]) -> float:
        live = [s for s in stats if s[1] & kept or "<in>" in s[1] or
                {"according", ":"} & s[1]]
        tp = sum(s[2] for s in live)
        n_pred = tp + sum(s[3] for s in live)
        p, r = tp / max(n_pred, 1), tp / max(n_gold, 1)
        return 2 * p * r / (p + r) if p + r else 0.0

    base = f1(keep)
    while True:
        alone: dict[str, list[int]] = {}  # form -> [right, tokens, wrong] it alone keeps
        for n, cues, right, wrong in stats:
            live = cues & keep
            if len(live) == 1 and not cues & {"<in>", "according", ":"} and \
                    not live & protected:
                row = alone.setdefault(next(iter(live)), [0, 0, 0])
                row[0] += right
                row[1] += n
                row[2] += wrong
        if not alone:
            break
        # most tokens saved per right claim lost (a wrong claim lost counts half a gain)
        form, (right, saved, _) = max(alone.items(), key=lambda kv: kv[1][1] / max(
            1 + kv[1][0] - 0.5 * kv[1][2], 1e-3))
        if base - f1(keep - {form}) > max_loss:
            break
        keep.discard(form)
        unparsed[form] = [right, saved]
    return unparsed


def sentences(words: Sequence[str], spaces: Sequence[bool]) -> list[tuple[int, int]]:
    """Token ranges of the sentences, cut after . ! ? (and any closing quote) and at
    paragraph breaks. The tokenizer keeps abbreviations ("Mr.", "U.S.") whole; a blank
    token (spaCy makes one of any whitespace but a single space) joins the sentence before.
    """
    out: list[tuple[int, int]] = []
    start, n, i = 0, len(words), 0
    while i < n:
        text = words[i]
        cut = False
        if text in _ENDS:
            # a quote mark right after the stop closes the sentence; after a blank it
            # opens the next one
            while i + 1 < n and words[i + 1] in _CLOSERS and not spaces[i]:
                i += 1
            cut = True
        if i + 1 < n and words[i + 1].isspace():
            i += 1
            cut = cut or "\n" in words[i]
        elif "\n" in text and text.isspace():
            cut = True
        if cut:
            out.append((start, i + 1))
            start = i + 1
        i += 1
    if start < n:
        out.append((start, n))
    return out


def _runs(words: list[str], spaces: list[bool], lowers: list[str], forms: CueForms
          ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(sentences to parse, sentences left unparsed), as token ranges."""
    parse: list[tuple[int, int]] = []
    skip: list[tuple[int, int]] = []
    for start, end in sentences(words, spaces):
        low = lowers[start:end]
        wanted = any(w in forms for w in low) or (
            low[0] == "in" and any(w in lex.SOURCE_NOUNS or w[:-1] in lex.SOURCE_NOUNS
                                   for w in low))
        (parse if wanted else skip).append((start, end))
    return parse, skip


def _pipe(proc: object, docs: list[Doc], batch_size: int) -> list[Doc]:
    return list(proc.pipe(docs, batch_size=batch_size))  # type: ignore[attr-defined]


def parse_many(nlp: Language, texts: Sequence[str], *, min_score: float,
               batch_size: int = 16) -> list[Doc]:
    """Docs for `texts` annotated as `nlp` would, but parsed only where a cue may be.

    The sentences to parse of one article are embedded and tagged as one Doc; then each
    is parsed as a Doc of its own (sharing those vectors: the parser reads `doc.tensor`),
    so that the parser steps through all sentences of a batch side by side, which keeps
    its matrix products wide.
    """
    forms = _forms(nlp, min_score)
    attrs = nlp.get_pipe("policywatch_fast_attributes")
    tok2vec, tagger, parser = (nlp.get_pipe(name) for name in ("tok2vec", "tagger", "parser"))
    out: list[Doc] = []
    for k in range(0, len(texts), batch_size):
        docs = [nlp.make_doc(text) for text in texts[k: k + batch_size]]
        plans = []
        joined: list[Doc] = []
        for doc in docs:
            words = [t.text for t in doc]
            spaces = [bool(t.whitespace_) for t in doc]
            parse, skip = _runs(words, spaces, [w.lower() for w in words], forms)
            index = [i for s, e in parse for i in range(s, e)]
            plans.append((parse, skip, words, spaces, index))
            joined.append(Doc(doc.vocab, words=[words[i] for i in index],
                              spaces=[spaces[i] for i in index]))
        joined = _pipe(tagger, _pipe(tok2vec, joined, batch_size), batch_size)
        pieces: list[Doc] = []
        for big, (parse, _, words, spaces, _) in zip(joined, plans, strict=True):
            at = 0
            for s, e in parse:
                piece = Doc(big.vocab, words=words[s:e], spaces=spaces[s:e])
                piece.tensor = big.tensor[at: at + e - s]
                pieces.append(piece)
                at += e - s
        pieces = _pipe(parser, pieces, 256)
        at = 0
        for doc, big, (parse, skip, words, _, index) in zip(docs, joined, plans, strict=True):
            _write_back(doc, big, index, parse, pieces[at: at + len(parse)], skip, words)
            at += len(parse)
            out.append(attrs(doc))
    return out


def _write_back(doc: Doc, big: Doc, index: list[int], parse: list[tuple[int, int]],
                pieces: list[Doc], skip: list[tuple[int, int]], words: list[str]) -> None:
    """Tags, heads and labels into `doc`: parsed sentences from their pieces, the others
    as flat trees with guessed proper nouns."""
    strings = doc.vocab.strings
    arr = numpy.zeros((len(doc), 3), dtype="uint64")
    nnp, unknown = strings.add("NNP"), strings.add("XX")
    proper: set[str] = set()
    if index:
        tags = big.to_array([TAG])
        arr[numpy.asarray(index), 0] = tags
        proper.update(words[index[j]] for j in numpy.flatnonzero(tags == nnp).tolist())
    for (start, end), piece in zip(parse, pieces, strict=True):
        # heads are stored as offsets, so a sentence's rows carry over unchanged
        arr[start:end, 1:] = piece.to_array([HEAD, DEP])
    root, dep = strings.add("ROOT"), strings.add("dep")
    for start, end in skip:
        heads = numpy.arange(start, end, dtype="int64")
        arr[start:end, 0] = unknown
        arr[start:end, 1] = (start - heads).view("uint64")
        arr[start:end, 2] = dep
        arr[start, 2] = root
        for i in range(start, end):
            text = words[i]
            if text[:1].isupper() and text[1:2].islower() and (
                    (i > start and not doc[i].is_stop) or text in proper or
                    (i + 1 < end and words[i + 1][:1].isupper())):
                arr[i, 0] = nnp
    doc.from_array([TAG, HEAD, DEP], arr)  # type: ignore[arg-type]


def all_forms(nlp: Language, min_score: float) -> CueForms:
    """The cue forms with none left out (to learn which to leave out)."""
    return _forms(nlp, min_score, True)
