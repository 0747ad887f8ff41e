"""Train the stance cascade's relevance gate (`tasks/stance/models/stance_gate.npz`).

    python bench/train_stance_gate.py      # deterministic: lbfgs, fixed GroupKFold

Data: ARC (../shared/corpus/stance/arc_pairs.csv + arc_bodies.csv), as for the head
(bench/train_stance.py). Target: is the pair related (agree, disagree or discuss) or
`unrelated`? Features (`tasks.stance.classifier.gate_features`): the claim's and the comment's
mean-pooled states after MiniLM's first `GATE_LAYERS` layers, centred on the mean
comment embedding (`center`, from the training comments) and renormalised: [t*c, cos].
Standardisation + logistic regression (C = C_GATE). The threshold is the RECALL quantile
of related pairs' out-of-fold probabilities (5-fold GroupKFold by claim, so each is
scored by a gate that never saw its claim); `exit_score`, the score of a stopped pair, is
the share of neutral pairs among the out-of-fold pairs below it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.lib import stance_training as ts
from tasks.stance import LABELS
from tasks.stance.classifier import gate_features, gate_path
from tasks.stance.encoder import MAX_TOKENS

OUT = gate_path(ts.ENCODER)  # `--distilled`: the opt-in encoder's gate
C_GATE = 0.001  # strong: 385 features, and only 112 claims per fold
RECALL = 0.98  # of related pairs, on claims the gate never saw


def embed_lower(texts: Sequence[str]) -> np.ndarray:
    """Unit mean-pooled states after the encoder's lower layers, cached like ts.embed."""
    encoder = ts.load_stance_encoder()
    key = hashlib.sha256("\x00".join([str(MAX_TOKENS), f"lower{encoder.split}",
                                      ts.ENCODER_TAG, *texts]).encode()).hexdigest()[:16]
    path = ts.CACHE / f"{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    vectors = encoder.encode_gated(texts, lambda p: np.zeros(len(p), dtype=bool))[1]
    ts.CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def lower_vectors(pairs: Sequence[ts.Pair]) -> tuple[np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """(lower embedding of each pair's topic, of its comment, related or not)."""
    topics = sorted({p.topic for p in pairs})
    texts = sorted({p.text for p in pairs})
    t_row = {t: i for i, t in enumerate(topics)}
    c_row = {t: i for i, t in enumerate(texts)}
    t_vec, c_vec = embed_lower(topics), embed_lower(texts)
    return (t_vec[[t_row[p.topic] for p in pairs]], c_vec[[c_row[p.text] for p in pairs]],
            np.array([p.kind != "unrelated" for p in pairs]))


def centre(comments: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean lower embedding of the distinct comments among rows (training rows only)."""
    return np.asarray(np.unique(comments[rows], axis=0).mean(axis=0), dtype=np.float32)


def featurize(topics: np.ndarray, comments: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Gate features of pairs (rows of topics/comments), one topic vector at a time."""
    x = np.zeros((len(topics), 385), dtype=np.float32)
    unique, inverse = np.unique(topics, axis=0, return_inverse=True)
    for k, vec in enumerate(unique):
        idx = np.flatnonzero(inverse.ravel() == k)
        x[idx] = gate_features(vec, comments[idx], center)
    return x


def fit(x: np.ndarray, related: np.ndarray):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C_GATE, max_iter=3000)
                         ).fit(x, related)


def out_of_fold(x: np.ndarray, related: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """P(related) of each pair from a gate that never saw its claim."""
    from sklearn.model_selection import GroupKFold

    probs = np.zeros(len(related))
    for train, test in GroupKFold(ts.FOLDS).split(x, related, groups):
        probs[test] = fit(x[train], related[train]).predict_proba(x[test])[:, 1]
    return probs


def threshold(probs: np.ndarray, related: np.ndarray) -> float:
    """The highest threshold that keeps RECALL of the related pairs."""
    ranked = np.sort(probs[related])
    return float(ranked[int(np.floor((1 - RECALL) * len(ranked)))])


def nested_exits(topics: np.ndarray, comments: np.ndarray, related: np.ndarray,
                 groups: Sequence[str]) -> np.ndarray:
    """Which pairs the gate stops, each decided by a gate, centre and threshold chosen
    on other claims only (threshold from inner folds of the outer training claims): the
    bench's held-out figure."""
    from sklearn.model_selection import GroupKFold

    group_arr = np.asarray(groups)
    exits = np.zeros(len(related), dtype=bool)
    for train, test in GroupKFold(ts.FOLDS).split(comments, related, group_arr):
        mask = np.zeros(len(related), dtype=bool)
        mask[train] = True
        x = featurize(topics, comments, centre(comments, mask))
        inner = out_of_fold(x[train], related[train], list(group_arr[train]))
        cut = threshold(inner, related[train])
        exits[test] = fit(x[train], related[train]).predict_proba(x[test])[:, 1] < cut
    return exits


def export(model: Any, center: np.ndarray, cut: float, exit_score: float) -> None:
    scaler, lr = model.named_steps["standardscaler"], model.named_steps["logisticregression"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, layers=np.int64(ts.load_stance_encoder().split), center=center.astype(np.float32),
             mean=scaler.mean_.astype(np.float32), scale=scaler.scale_.astype(np.float32),
             coef=lr.coef_[0].astype(np.float32),
             intercept=np.float32(lr.intercept_[0]), threshold=np.float32(cut),
             exit_score=np.float32(exit_score))


def main() -> int:
    if not ts.corpus_available():
        print(f"stance corpus not found at {ts.CORPUS}; nothing to train")
        return 0
    arc = ts.arc_pairs()
    groups = [p.group for p in arc]
    topics, comments, related = lower_vectors(arc)
    center = centre(comments, np.ones(len(arc), dtype=bool))
    x = featurize(topics, comments, center)
    probs = out_of_fold(x, related, groups)
    cut = threshold(probs, related)
    stopped = probs < cut
    neutral = np.array([p.label == LABELS[2] for p in arc])
    exit_score = round(float(neutral[stopped].mean()), 4)
    print(f"gate after {ts.load_stance_encoder().split} layers: out-of-fold threshold "
          f"{cut:.4f} stops "
          f"{stopped.mean():.3f} of pairs ({stopped[~related].mean():.3f} of unrelated, "
          f"{stopped[related].mean():.4f} of related); neutral share of stopped pairs "
          f"{exit_score}")
    export(fit(x, related), center, cut, exit_score)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
