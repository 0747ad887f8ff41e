"""Fitting the cue classifier (`tasks.claims.cuemodel`) on PolNeAR train: its candidates,
its logistic regression, and the reset of the extractor's caches between fits.

Shared by bench/train_claims_cues.py (which trains and writes the shipped classifier) and
bench/train_claims_filter.py (which fits one per fold to collect out-of-fold claims), and
the loss bound for the unparsed cue word forms, shared with bench/claims_polnear.py --learn.

A candidate is a word and one of its children whose subtree could be a claim
(`tasks.claims.cues.constructions`); it is positive when that subtree is a gold content
(letter/digit Jaccard >= 0.5) of a gold attribution whose cue covers the word.
"""

from __future__ import annotations

from typing import Any

from spacy.tokens import Doc

from bench.lib.polnear import alnum_positions
from tasks.claims import cuemodel as claims_cuemodel
from tasks.claims import cues as claims_cues
from tasks.claims import extractor as claims
from tasks.claims import parse as claims_parse

MIN_COUNT = 3  # a feature seen fewer times gets no weight (smaller model, less noise)
MIN_WEIGHT = 0.05  # smaller weights are dropped from the shipped model (train F1 unchanged)
CUE_C = 0.5  # the shipped cue classifier's C (bench/train_claims_cues.py --C)
# cue words are left unparsed (greedily, least useful first) while the train F1 of the
# sentences they alone make worth parsing falls by at most this much
UNPARSED_MAX_LOSS = 0.003

Candidate = tuple[int, str, list[str], int]  # article, lemma, features, label


def cue_candidates(k: int, doc: Doc, attributions: list[dict[str, Any]]) -> list[Candidate]:
    """The cue classifier's candidates of article number `k`, labelled from its gold."""
    text = doc.text
    items = []
    for att in attributions:
        content: set[int] = set()
        for s in att["content"]:
            content |= alnum_positions(text, int(s["start"]), int(s["end"]))
        if content:
            items.append(([(int(s["start"]), int(s["end"])) for s in att["cue"]], content))
    out: list[Candidate] = []
    for tok in doc:
        for name, head in claims_cues.constructions(tok):
            cand = alnum_positions(text, head.left_edge.idx,
                                   head.right_edge.idx + len(head.right_edge))
            label = 0
            for cues, content in items:
                if cand and any(s <= tok.idx < e for s, e in cues):
                    inter = len(cand & content)
                    if inter and inter / len(cand | content) >= 0.5:
                        label = 1
                        break
            out.append((k, tok.lemma_.lower(), claims_cuemodel.features(tok, name, head),
                        label))
    return out


def fit_cues(cands: list[Candidate], c_value: float) -> tuple[dict[str, float], float]:
    """(weights, bias) of a logistic regression over the candidates' binary features."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    counts: dict[str, int] = {}
    for _, _, feats, _ in cands:
        for f in feats:
            counts[f] = counts.get(f, 0) + 1
    vec = DictVectorizer()
    x = vec.fit_transform([{f: 1 for f in feats if counts[f] >= MIN_COUNT}
                           for _, _, feats, _ in cands]).tocsr()
    x.indices = x.indices.astype("int32")  # liblinear takes 32-bit indices only
    x.indptr = x.indptr.astype("int32")
    y = [label for *_, label in cands]
    clf = LogisticRegression(C=c_value, max_iter=2000, solver="liblinear")
    clf.fit(x, y)
    weights = {name: round(float(w), 3) for name, w in
               zip(vec.get_feature_names_out(), clf.coef_[0], strict=True) if abs(w) >= MIN_WEIGHT}
    return weights, float(clf.intercept_[0])


def reset_extractor() -> None:
    """Clear the extractor's caches of cue words and forms (after `claims_cuemodel.use`)."""
    claims._cue_lemmas.cache_clear()
    claims._LEMMA_HITS.clear()
    claims_parse._forms.cache_clear()
