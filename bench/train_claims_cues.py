"""Train the cue classifier (`tasks.claims.cuemodel`) on the PolNeAR TRAIN split.

    python bench/train_claims_cues.py [--cache FILE.spacy] [--folds 5] [--C 0.5]
                                      [--min-rate 0.05] [--baseline] [--unparsed-only]

Run after `bench/claims_polnear.py --learn` (count table and drop list, which the
extractor still uses); the shipped model is `--C 0.5 --min-rate 0.05` (both chosen by the
cross-validated F1, docs/claims.md).

Data: ../shared/corpus/polnear/polnear_train.jsonl only (dev is never read). Every train
article is parsed in full by `tasks.claims.extractor.load_nlp()` (the parse can be cached
in a DocBin outside the repo with --cache). Candidates are a word and one of its children
whose subtree could be a claim (`tasks.claims.cues.constructions`;
bench/lib/claims_training.py); a candidate is positive when that subtree is a gold content
(letter/digit Jaccard >= 0.5) of a gold attribution whose cue covers the word, as for the
cue table. A logistic regression (scikit-learn, binary features) is fitted; the threshold
is the one that gives the best extractor F1 (the matching of bench/lib/polnear.py) over
k-fold cross-validation on train: each fold's articles are run through the extractor with
a model fitted on the other folds. The cue words (those that get a sentence parsed) are
lemmas with at least MIN_POSITIVE positive candidates in train and at least --min-rate
positives per occurrence. Writes tasks/claims/models/claims_cue_model.json (weights, bias,
threshold, cue words; no text), then re-chooses the cue word forms left unparsed for it
(as bench/claims_polnear.py --learn does) into tasks/claims/models/claims_cues.json. The
claim filter (`tasks.claims.filter`) is off throughout; re-train it afterwards
(bench/train_claims_filter.py). Skips cleanly when the corpus is absent. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spacy.tokens import Doc, DocBin  # noqa: E402

from bench.lib.claims_training import (  # noqa: E402
    CUE_C,
    UNPARSED_MAX_LOSS,
    Candidate,
    cue_candidates,
    fit_cues,
    reset_extractor,
)
from bench.lib.polnear import gold_claims, match, prf, read_split, skipped, split_path  # noqa: E402
from tasks.claims import cuemodel as claims_cuemodel  # noqa: E402
from tasks.claims import cues as claims_cues  # noqa: E402
from tasks.claims import extractor as claims  # noqa: E402
from tasks.claims import filter as claims_filter  # noqa: E402
from tasks.claims import parse as claims_parse  # noqa: E402

MIN_POSITIVE = 2
THRESHOLDS = (0.15, 0.2, 0.25, 0.3)


def evaluate(docs: list[Doc], rows: list[dict[str, Any]]) -> tuple[int, int, int]:
    tp = n_pred = n_gold = 0
    for doc, row in zip(docs, rows, strict=True):
        preds = [c for c, _ in claims.claims_with_keys(doc, [], row["text"])]
        golds = gold_claims(row)
        tp += len(match(preds, golds, row["text"]))
        n_pred += len(preds)
        n_gold += len(golds)
    return tp, n_pred, n_gold


def baseline(docs: list[Doc], rows: list[dict[str, Any]], folds: int) -> None:
    """The count table's cross-validated F1, on the same folds (no classifier)."""
    claims_cuemodel.use({}, -100.0, 1.0, frozenset(), frozenset())
    tp = n_pred = n_gold = 0
    for fold in range(folds):
        train = [k for k in range(len(docs)) if k % folds != fold]
        table = claims_cues.learn([docs[k] for k in train],
                                  [rows[k]["attributions"] for k in train])
        scores = {k: hits / (seen + 1) for k, (hits, seen) in table.items()}
        # the fold's table in place of the shipped one (setattr: mypy would refuse the
        # assignment to a cached function)
        setattr(claims_cues, "load", lambda scores=scores: scores)  # noqa: B010
        reset_extractor()
        held = [k for k in range(len(docs)) if k % folds == fold]
        got = evaluate([docs[k] for k in held], [rows[k] for k in held])
        tp, n_pred, n_gold = tp + got[0], n_pred + got[1], n_gold + got[2]
    p, r, f1 = prf(tp, n_pred, n_gold)
    print(f"count table, cross-validated: P {p:.4f} R {r:.4f} F1 {f1:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--C", dest="c_value", type=float, default=CUE_C)
    parser.add_argument("--baseline", action="store_true",
                        help="cross-validate the count table instead (for comparison)")
    parser.add_argument("--min-rate", type=float, default=0.05,
                        help="a cue word's positives per occurrence in train, at least")
    parser.add_argument("--live-keys", action="store_true",
                        help="score only the keys the model fired on in training")
    parser.add_argument("--out", type=Path, default=claims_cuemodel.MODEL_PATH)
    parser.add_argument("--unparsed-only", action="store_true",
                        help="keep the model, only re-choose the unparsed cue word forms")
    args = parser.parse_args()
    if not split_path("train").exists():
        print(skipped("train"))
        return
    rows = read_split("train")
    # the claim filter is trained after the cue classifier, on its outputs
    # (bench/train_claims_filter.py): the classifier is chosen without it
    claims_filter.use(None)
    nlp = claims.load_nlp()
    if args.cache is not None and args.cache.exists():
        docs = list(DocBin().from_disk(args.cache).get_docs(nlp.vocab))
    else:
        docs = list(nlp.pipe([row["text"] for row in rows], batch_size=32))
        if args.cache is not None:
            DocBin(docs=docs).to_disk(args.cache)
    if args.baseline:
        baseline(docs, rows, args.folds)
        return
    if not args.unparsed_only:
        train(docs, rows, args.folds, args.c_value, args.min_rate, args.out,
              args.live_keys)
    if args.out == claims_cuemodel.MODEL_PATH:
        choose_unparsed(docs, rows)


def choose_unparsed(docs: list[Doc], rows: list[dict[str, Any]]) -> None:
    """Re-choose the cue word forms left unparsed (`tasks.claims.parse`) for the shipped
    classifier, as bench/claims_polnear.py --learn does for the table, and save them."""
    claims_cuemodel.reset()
    reset_extractor()
    stats: list[claims_parse.SentenceStat] = []
    n_gold = 0
    nlp = claims.load_nlp()
    for doc, row in zip(docs, rows, strict=True):
        preds = [c for c, _ in claims.claims_with_keys(doc, [], row["text"])]
        golds = gold_claims(row)
        n_gold += len(golds)
        right = {p for p, _ in match(preds, golds, row["text"])}
        cues = [(max(row["text"].find(c.sentence), 0), k in right) for k, c in enumerate(preds)]
        stats.extend(claims_parse.sentence_stats(nlp, claims._LEARNED_MIN, doc, cues))
    unparsed = claims_parse.choose_unparsed(
        claims_parse.all_forms(nlp, claims._LEARNED_MIN), stats, n_gold, UNPARSED_MAX_LOSS)
    raw = claims_cues._raw()
    claims_cues.save(raw["constructions"], raw["drop"], unparsed)
    claims_cues.clear_cache()
    print(f"{len(unparsed)} cue word forms left unparsed -> {claims_cues.TABLE_PATH}")


def live_keys(cands: list[Candidate], weights: dict[str, float], bias: float,
              threshold: float) -> frozenset[str]:
    """The `lemma/POS/construction` keys the model fired on at least once in training:
    only those are scored at run time (fewer words to look at, fewer sentences to parse)."""
    out = set()
    for _, _, feats, _ in cands:
        z = bias + sum(weights.get(f, 0.0) for f in feats)
        if 1.0 / (1.0 + math.exp(-z)) >= threshold:
            out.add(feats[0][2:])  # the first feature is "k=<key>"
    return frozenset(out)


def _live_words(words: frozenset[str], keys: frozenset[str]) -> frozenset[str]:
    return words & {key.split("/", 1)[0] for key in keys} if keys else words


def train(docs: list[Doc], rows: list[dict[str, Any]], folds: int, c_value: float,
          min_rate: float, out_path: Path, live: bool) -> None:
    cands: list[Candidate] = []
    for k, (doc, row) in enumerate(zip(docs, rows, strict=True)):
        cands.extend(cue_candidates(k, doc, row["attributions"]))
    positives: dict[str, int] = {}
    for _, lemma, _, label in cands:
        positives[lemma] = positives.get(lemma, 0) + label
    occurrences: dict[str, int] = {}
    for doc in docs:
        for tok in doc:
            occurrences[tok.lemma_.lower()] = occurrences.get(tok.lemma_.lower(), 0) + 1
    # common words that are rarely cues ("be", "have", "do") are not worth a look
    words = frozenset(w for w, n in positives.items()
                      if n >= MIN_POSITIVE and n / occurrences[w] >= min_rate)
    print(f"{len(cands)} candidates, {sum(c[3] for c in cands)} positive, "
          f"{len(words)} cue words")
    totals = {t: [0, 0, 0] for t in THRESHOLDS}
    for fold in range(folds):
        fold_cands = [c for c in cands if c[0] % folds != fold]
        weights, bias = fit_cues(fold_cands, c_value)
        held = [k for k in range(len(docs)) if k % folds == fold]
        for t in THRESHOLDS:
            keys = live_keys(fold_cands, weights, bias, t) if live else frozenset()
            claims_cuemodel.use(weights, bias, t, _live_words(words, keys), keys)
            reset_extractor()
            got = evaluate([docs[k] for k in held], [rows[k] for k in held])
            for i in range(3):
                totals[t][i] += got[i]
    best_t, best_f1 = THRESHOLDS[0], -1.0
    for t, (tp, n_pred, n_gold) in totals.items():
        p, r, f1 = prf(tp, n_pred, n_gold)
        print(f"  threshold {t:.2f}: cross-validated P {p:.4f} R {r:.4f} F1 {f1:.4f}")
        if f1 > best_f1:
            best_t, best_f1 = t, f1
    weights, bias = fit_cues(cands, c_value)
    keys = live_keys(cands, weights, bias, best_t) if live else frozenset()
    words = _live_words(words, keys) if live else words
    claims_cuemodel.reset()
    out = {"about": "cue classifier, PolNeAR train; bench/train_claims_cues.py",
           "C": c_value, "min_rate": min_rate, "threshold": best_t, "cv_f1": round(best_f1, 4),
           "bias": round(bias, 4), "lemmas": sorted(words),
           "keys": sorted(keys),
           "weights": dict(sorted(weights.items()))}
    out_path.write_text(json.dumps(out, indent=0) + "\n", encoding="utf-8")
    print(f"threshold {best_t} (cross-validated F1 {best_f1:.4f}), {len(weights)} weights "
          f"-> {out_path}")


if __name__ == "__main__":
    main()
