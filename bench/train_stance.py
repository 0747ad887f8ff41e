"""Train the stance head shipped in tasks/models/stance_head.npz.

Data: ARC (../shared/corpus/stance/arc_pairs.csv + arc_bodies.csv, every claim), labels
agree→favor, disagree→against, discuss/unrelated→neutral. SemEval-2016 is not used for
training: it stays an out-of-domain check in bench/stance_bench.py.

    python bench/train_stance.py          # writes tasks/models/stance_head.npz

Deterministic: the embeddings are deterministic, the solver is lbfgs, and the temperature
is fitted on out-of-fold predictions of a fixed GroupKFold by claim.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.stance import LABELS, cue_features, pair_features  # noqa: E402
from tasks.stance_encoder import load_minilm  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "stance"
OUT = ROOT / "tasks" / "models" / "stance_head.npz"
CACHE = Path("/tmp/policywatch-stance-cache")  # embeddings only; never committed
ARC_LABELS = {"agree": "favor", "disagree": "against", "discuss": "neutral",
              "unrelated": "neutral"}
SEMEVAL_LABELS = {0: "neutral", 1: "against", 2: "favor"}
# SemEval's targets are bare words; the position sentence a user would write for each
SEMEVAL_TOPICS = {
    "abortion": "Abortion should be legal.",
    "atheism": "Atheism is right: there is no God.",
    "climate": "Climate change is a real concern.",
    "feminist": "The feminist movement is good for society.",
    "hillary": "Hillary Clinton should be president.",
}
C_REG = 0.01
FOLDS = 5


@dataclass(frozen=True)
class Pair:
    topic: str
    text: str
    label: str  # favor / against / neutral
    group: str  # the claim or target: a split never puts one on both sides


def corpus_available() -> bool:
    return (CORPUS / "arc_pairs.csv").exists()


def arc_pairs() -> list[Pair]:
    with (CORPUS / "arc_bodies.csv").open(encoding="utf-8") as f:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(f)}
    with (CORPUS / "arc_pairs.csv").open(encoding="utf-8") as f:
        return [Pair(row["Headline"], bodies[row["Body ID"]], ARC_LABELS[row["Stance"]],
                     row["Headline"]) for row in csv.DictReader(f)]


def semeval_pairs(split: str = "test") -> list[Pair]:
    out: list[Pair] = []
    for target, topic in SEMEVAL_TOPICS.items():
        folder = CORPUS / "semeval2016" / target
        texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
        labels = (folder / f"{split}_labels.txt").read_text(encoding="utf-8").splitlines()
        out += [Pair(topic, text.replace("#SemST", "").strip(), SEMEVAL_LABELS[int(y)], target)
                for text, y in zip(texts, labels, strict=True)]
    return out


def embed(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings of unique texts, cached on disk by content hash (slow on 2 cores)."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    vectors = load_minilm().encode(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def featurize(pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and label indices (into LABELS) for pairs."""
    topics = sorted({p.topic for p in pairs})
    texts = sorted({p.text for p in pairs})
    t_vec = dict(zip(topics, embed(topics), strict=True))
    c_row = {t: i for i, t in enumerate(texts)}
    c_vec = embed(texts)
    cues = np.stack([cue_features(t) for t in texts])
    blocks: dict[str, np.ndarray] = {}
    for topic in topics:
        idx = [i for i, p in enumerate(pairs) if p.topic == topic]
        rows = [c_row[pairs[i].text] for i in idx]
        blocks[topic] = pair_features(t_vec[topic], c_vec[rows], cues[rows])
    x = np.zeros((len(pairs), next(iter(blocks.values())).shape[1]), dtype=np.float32)
    for topic in topics:
        idx = [i for i, p in enumerate(pairs) if p.topic == topic]
        x[idx] = blocks[topic]
    y = np.array([[*LABELS].index(p.label) for p in pairs])  # type: ignore[arg-type]
    return x, y


def fit(x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=C_REG, max_iter=3000, class_weight="balanced"))
    return model.fit(x, y)


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Probabilities of each pair from a model that never saw its claim."""
    from sklearn.model_selection import GroupKFold

    probs = np.zeros((len(y), len(LABELS)))
    for train, test in GroupKFold(FOLDS).split(x, y, groups):
        probs[test] = fit(x[train], y[train]).predict_proba(x[test])
    return probs


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that minimises held-out log-loss (a 1-D grid search)."""
    logits = np.log(np.clip(probs, 1e-9, 1.0))
    best, best_t = np.inf, 1.0
    for t in np.arange(0.5, 3.01, 0.05):
        z = logits / t
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -logp[np.arange(len(y)), y].mean()
        if loss < best:
            best, best_t = loss, float(t)
    return round(best_t, 2)


def main() -> int:
    if not corpus_available():
        print(f"stance corpus not found at {CORPUS}; nothing to train")
        return 0
    pairs = arc_pairs()
    x, y = featurize(pairs)
    temperature = fit_temperature(out_of_fold(x, y, [p.group for p in pairs]), y)
    model = fit(x, y)
    scaler, clf = model[0], model[-1]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT, mean=scaler.mean_.astype(np.float32), scale=scaler.scale_.astype(np.float32),
        coef=clf.coef_.astype(np.float32), intercept=clf.intercept_.astype(np.float32),
        temperature=np.float32(temperature),
    )
    print(f"trained on {len(pairs)} ARC pairs ({len({p.group for p in pairs})} claims); "
          f"temperature {temperature}; wrote {OUT.relative_to(ROOT)} "
          f"({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
