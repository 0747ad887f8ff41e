"""Stance bench: held-out-claim figures on ARC, zero-shot F_avg on SemEval-2016, speed.

    python bench/stance_bench.py [--lora tasks/models/stance_lora.npz]

- ARC, shipped embedding head: 5-fold GroupKFold by claim (every figure for claims the
  head never saw; retrained per fold as bench/train_stance.py trains it), and trained on
  112 claims / scored on the fixed 28 held-out claims (`train_stance.held_out_claims`).
- ARC, LoRA cross-encoder (only with --lora): the same 28 held-out claims, all their pairs,
  through the numpy path (`tasks.stance_cross`); the adapter was trained on the other 112.
- SemEval-2016 test tweets, trained on ARC only, each bare target turned into a position
  sentence (train_stance.SEMEVAL_TOPICS). F_avg = mean F1 of favor and against.
- Speed: `classify_stances` on 320 random ARC comments, then on their first sentences, with
  one and three topics, model loaded and warmed up, best of 3 runs; the load average;
  peak RSS of that process.
Skips (exit 0) when ../shared/corpus is absent.
"""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_stance as ts

from schemas.config import Topic
from tasks.stance import LABELS, classify_stances, load_head
from tasks.stance_cross import StanceCrossEncoder
from tasks.stance_encoder import load_minilm


def f1_table(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    per = f1_score(y, pred, labels=[0, 1, 2], average=None, zero_division=0)
    out: dict[str, float] = {label: float(f) for label, f in zip(LABELS, per, strict=True)}
    out["macro"] = float(np.mean(per))
    out["F_avg"] = (out["favor"] + out["against"]) / 2
    return out


def show(name: str, scores: dict[str, float]) -> None:
    print(f"{name}: macro-F1 {scores['macro']:.3f} | F1 favor {scores['favor']:.3f} "
          f"against {scores['against']:.3f} neutral {scores['neutral']:.3f} | "
          f"F_avg {scores['F_avg']:.3f}", flush=True)


def cross_predict(model: StanceCrossEncoder, pairs: list[ts.Pair]) -> np.ndarray:
    """The cross-encoder's label index for each pair, grouped by topic (numpy path)."""
    pred = np.zeros(len(pairs), dtype=np.int64)
    for topic in sorted({p.topic for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.topic == topic]
        probs = model.probabilities([topic], [pairs[i].text for i in idx])[0]
        pred[idx] = probs.argmax(axis=1)
    return pred


def main() -> int:
    if not ts.corpus_available():
        print(f"stance corpus not found at {ts.CORPUS}; skipping the stance bench")
        return 0
    arc = ts.arc_pairs()
    held = ts.held_out_claims(sorted({p.group for p in arc}))
    print(f"ARC: {len(arc)} pairs, {len({p.group for p in arc})} claims; fixed held-out "
          f"set: {len(held)} claims, {sum(p.group in held for p in arc)} pairs")
    x, y = ts.featurize(arc)
    probs = ts.out_of_fold(x, y, [p.group for p in arc])
    show(f"ARC {ts.FOLDS}-fold by claim, embedding head (shipped)",
         f1_table(y, probs.argmax(axis=1)))
    train_rows = np.array([p.group not in held for p in arc])
    head = ts.fit(x[train_rows], y[train_rows])
    show("ARC 28 held-out claims, embedding head (shipped)",
         f1_table(y[~train_rows], head.predict(x[~train_rows])))

    sem = ts.semeval_pairs("test")
    ys = np.array([LABELS.index(p.label) for p in sem])
    xs, _ = ts.featurize(sem)
    pred = load_head().probabilities(xs.astype(np.float32)).argmax(axis=1)
    show("SemEval-2016 test, embedding head (trained on ARC only)", f1_table(ys, pred))
    for target in ts.SEMEVAL_TOPICS:
        idx = [i for i, p in enumerate(sem) if p.group == target]
        print(f"  {target:9s} F_avg {f1_table(ys[idx], pred[idx])['F_avg']:.3f}")

    if "--lora" in sys.argv:
        model = StanceCrossEncoder(Path(sys.argv[sys.argv.index("--lora") + 1]))
        test = [p for p in arc if p.group in held]
        y_test = np.array([LABELS.index(p.label) for p in test])
        show("ARC 28 held-out claims, LoRA cross-encoder",
             f1_table(y_test, cross_predict(model, test)))
        show("SemEval-2016 test, LoRA cross-encoder", f1_table(ys, cross_predict(model, sem)))

    # speed and memory in a fresh process, so sklearn and the bench's arrays don't count
    subprocess.run([sys.executable, __file__, "--speed"], check=True)
    return 0


def speed() -> int:
    texts = sorted({p.text for p in ts.arc_pairs()})
    texts = random.Random(0).sample(texts, 320)
    short = [re.split(r"(?<=[.!?])\s", t, maxsplit=1)[0] for t in texts]  # first sentences
    topics = [Topic(name="t", description="Unpaid internships exploit college students."),
              Topic(name="u", description="The US should restrict China's access to chips."),
              Topic(name="v", description="Cities should build more bike lanes.")]
    load_minilm(), load_head()
    classify_stances(texts[:16], topics[:1])  # warm-up: thread pool, caches
    for name, batch in (("ARC comments", texts), ("their first sentences", short)):
        for k in (1, 3):
            rates = []
            for _ in range(3):  # best of 3: other jobs share the machine
                start = time.perf_counter()
                classify_stances(batch, topics[:k])
                rates.append(len(batch) / (time.perf_counter() - start))
            print(f"speed: {max(rates):.1f} comments/s (best of 3; worst {min(rates):.1f}) on "
                  f"{len(batch)} {name}, {k} topic(s); load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of a process that loads the model and classifies: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(speed() if "--speed" in sys.argv else main())
