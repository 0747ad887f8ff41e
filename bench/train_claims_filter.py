"""Train the claim filter (`tasks.claims.filter`) on the PolNeAR TRAIN split.

    python bench/train_claims_filter.py [--cache FILE.spacy] [--folds 5] [--C 0.3]
                                        [--min-precision 0.85] [--threshold T]

Data: ../shared/corpus/polnear/polnear_train.jsonl only (dev is never read). Every train
article is parsed as the extractor parses it (`tasks.claims.parse`; the parse can be
cached in a DocBin outside the repo with --cache). Training candidates are the claims the
extractor gives, without a filter, on each fold's articles with a cue classifier fitted on
the other folds (so that learnt cues look as they will on unseen text); a candidate is
positive when it matches a gold attribution (bench/lib/polnear.py's matching). A
logistic regression (scikit-learn, binary features, features seen < 3 times dropped) is
cross-validated by article on those candidates: for each threshold the whole extractor's
P / R / F1 is computed with the filter fitted on the other folds. The threshold chosen is
the one with the best F1 among those whose cross-validated precision is at least
--min-precision (or --threshold). Writes tasks/claims/models/claims_filter.json (weights, bias,
threshold, no text). Skips cleanly when the corpus is absent. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spacy.tokens import Doc, DocBin  # noqa: E402

from bench.lib.claims_training import (  # noqa: E402
    CUE_C,
    cue_candidates,
    fit_cues,
    reset_extractor,
)
from bench.lib.polnear import gold_claims, match, prf, read_split, skipped, split_path  # noqa: E402
from schemas.models import ClaimDraft  # noqa: E402
from tasks.claims import cuemodel as claims_cuemodel  # noqa: E402
from tasks.claims import cues as claims_cues  # noqa: E402
from tasks.claims import extractor as claims  # noqa: E402
from tasks.claims import filter as claims_filter  # noqa: E402

MIN_COUNT = 3
MIN_WEIGHT = 0.02
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(2, 15))

# per article: its claims, their features, gold attributions
Article = tuple[list[ClaimDraft], list[list[str]], list[dict[str, Any]], str]


def out_of_fold_claims(docs: list[Doc], rows: list[dict[str, Any]], folds: int,
                       cue_threshold: float | None = None) -> list[Article]:
    """The extractor's unfiltered claims of every train article, with a cue classifier
    fitted on the other folds."""
    cands = []
    for k, (doc, row) in enumerate(zip(docs, rows, strict=True)):
        cands.extend(cue_candidates(k, doc, row["attributions"]))
    words = claims_cuemodel.lemmas()
    cue_threshold = claims_cuemodel.threshold() if cue_threshold is None else cue_threshold
    out: list[Article | None] = [None] * len(docs)
    claims_filter.use(None)
    for fold in range(folds):
        weights, bias = fit_cues([c for c in cands if c[0] % folds != fold], CUE_C)
        claims_cuemodel.use(weights, bias, cue_threshold, words, frozenset())
        reset_extractor()
        for k in range(fold, len(docs), folds):
            feats: list[list[str]] = []
            got = [c for c, _ in claims.claims_with_keys(docs[k], [], rows[k]["text"], feats)]
            golds = gold_claims(rows[k])
            out[k] = (got, feats, golds, rows[k]["text"])
        print(f"  fold {fold}: cue classifier fitted, claims collected", flush=True)
    claims_cuemodel.reset()
    reset_extractor()
    return [a for a in out if a is not None]


def fit(arts: list[Article], c_value: float) -> tuple[dict[str, float], float]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    feats = [f for _, fs, _, _ in arts for f in fs]
    labels = []
    for got, _, golds, text in arts:
        right = {p for p, _ in match(got, golds, text)}
        labels.extend(int(k in right) for k in range(len(got)))
    counts: dict[str, int] = {}
    for fs in feats:
        for f in fs:
            counts[f] = counts.get(f, 0) + 1
    vec = DictVectorizer()
    x = vec.fit_transform([{f: 1 for f in fs if counts[f] >= MIN_COUNT}
                           for fs in feats]).tocsr()
    x.indices = x.indices.astype("int32")  # liblinear takes 32-bit indices only
    x.indptr = x.indptr.astype("int32")
    clf = LogisticRegression(C=c_value, max_iter=5000, solver="liblinear")
    clf.fit(x, labels)
    weights = {name: round(float(w), 3) for name, w in
               zip(vec.get_feature_names_out(), clf.coef_[0], strict=True)
               if abs(w) >= MIN_WEIGHT}
    return weights, float(clf.intercept_[0])


def cross_validate(arts: list[Article], folds: int, c_value: float
                   ) -> dict[float, tuple[int, int, int]]:
    """threshold -> (matched, predicted, gold) over the folds, each fold filtered by a
    model fitted on the others."""
    totals = {t: (0, 0, 0) for t in (0.0, *THRESHOLDS)}
    for fold in range(folds):
        train = [a for k, a in enumerate(arts) if k % folds != fold]
        weights, bias = fit(train, c_value)
        for k in range(fold, len(arts), folds):
            got, feats, golds, text = arts[k]
            scores = [claims_filter.score(f, (weights, bias, 0.0)) for f in feats]
            for t in totals:
                kept = [c for c, s in zip(got, scores, strict=True) if s >= t]
                tp = len(match(kept, golds, text))
                m, p, g = totals[t]
                totals[t] = (m + tp, p + len(kept), g + len(golds))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--C", dest="c_values", type=float, nargs="+", default=[0.3])
    parser.add_argument("--min-precision", type=float, default=0.85)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--cue-threshold", type=float, default=None,
                        help="experiment: the cue classifier's threshold while collecting")
    parser.add_argument("--keep-dropped", action="store_true",
                        help="experiment: no drop list while collecting")
    parser.add_argument("--out", type=Path, default=claims_filter.MODEL_PATH)
    parser.add_argument("--claims-cache", type=Path, default=None,
                        help="pickle of the out-of-fold claims (outside the repo)")
    args = parser.parse_args()
    if not split_path("train").exists():
        print(skipped("train"))
        return
    rows = read_split("train")
    if args.claims_cache is not None and args.claims_cache.exists():
        arts = pickle.loads(args.claims_cache.read_bytes())
    else:
        nlp = claims.load_nlp()
        if args.cache is not None and args.cache.exists():
            docs = list(DocBin().from_disk(args.cache).get_docs(nlp.vocab))
        else:
            docs = claims.parse([row["text"] for row in rows])
            if args.cache is not None:
                DocBin(docs=docs).to_disk(args.cache)
        if args.keep_dropped:
            setattr(claims_cues, "dropped", frozenset)  # noqa: B010
        arts = out_of_fold_claims(docs, rows, args.folds, args.cue_threshold)
        if args.claims_cache is not None:
            args.claims_cache.write_bytes(pickle.dumps(arts))
    best: tuple[float, float, float] | None = None  # F1, C, threshold
    for c_value in args.c_values:
        totals = cross_validate(arts, args.folds, c_value)
        for t, (tp, n_pred, n_gold) in sorted(totals.items()):
            p, r, f1 = prf(tp, n_pred, n_gold)
            print(f"C {c_value} threshold {t:.2f}: cross-validated P {p:.4f} R {r:.4f} "
                  f"F1 {f1:.4f} ({n_pred} claims)")
            chosen = t == args.threshold if args.threshold is not None else \
                p >= args.min_precision
            if chosen and t > 0 and (best is None or f1 > best[0]):
                best = (f1, c_value, t)
    if best is None:
        print("no threshold reaches the precision asked for; nothing written")
        return
    f1, c_value, t = best
    weights, bias = fit(arts, c_value)
    out = {"about": "claim filter, PolNeAR train; bench/train_claims_filter.py",
           "C": c_value, "threshold": t, "cv_f1": round(f1, 4), "bias": round(bias, 4),
           "weights": dict(sorted(weights.items()))}
    args.out.write_text(json.dumps(out, indent=0) + "\n", encoding="utf-8")
    claims_filter.reset()
    print(f"C {c_value}, threshold {t} (cross-validated F1 {f1:.4f}), {len(weights)} weights "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
