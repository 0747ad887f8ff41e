"""Stance bench: held-out-claim figures on ARC, zero-shot F_avg on SemEval-2016, speed.

    python bench/stance_bench.py

- ARC: 5-fold GroupKFold by claim (Headline): every figure is for claims the model never
  saw; the head is retrained per fold exactly as bench/train_stance.py trains it.
- SemEval-2016 test tweets: the shipped head (trained on ARC only), each bare target
  turned into a position sentence (train_stance.SEMEVAL_TOPICS). F_avg = mean F1 of favor
  and against, the task's metric.
- Speed: `classify_stances` on 320 ARC comments, then on their first sentences, against
  one topic, model already loaded; peak RSS of that process.
Skips (exit 0) when ../shared/corpus is absent.
"""

from __future__ import annotations

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
          f"F_avg {scores['F_avg']:.3f}")


def main() -> int:
    if not ts.corpus_available():
        print(f"stance corpus not found at {ts.CORPUS}; skipping the stance bench")
        return 0
    arc = ts.arc_pairs()
    x, y = ts.featurize(arc)
    probs = ts.out_of_fold(x, y, [p.group for p in arc])
    print(f"ARC: {len(arc)} pairs, {len({p.group for p in arc})} claims, "
          f"{ts.FOLDS}-fold split by claim (held-out claims only)")
    show("ARC held-out claims", f1_table(y, probs.argmax(axis=1)))

    sem = ts.semeval_pairs("test")
    xs, ys = ts.featurize(sem)
    pred = load_head().probabilities(xs.astype(np.float32)).argmax(axis=1)
    show("SemEval-2016 test (trained on ARC only)", f1_table(ys, pred))
    for target in ts.SEMEVAL_TOPICS:
        idx = [i for i, p in enumerate(sem) if p.group == target]
        print(f"  {target:9s} F_avg {f1_table(ys[idx], pred[idx])['F_avg']:.3f}")

    # speed and memory in a fresh process, so sklearn and the bench's arrays don't count
    subprocess.run([sys.executable, __file__, "--speed"], check=True)
    return 0


def speed() -> int:
    texts = sorted({p.text for p in ts.arc_pairs()})[:320]
    short = [re.split(r"(?<=[.!?])\s", t, maxsplit=1)[0] for t in texts]  # first sentences
    topic = Topic(name="t", description="Unpaid internships exploit college students.")
    load_minilm(), load_head()
    for name, batch in (("ARC comments (mean ~105 tokens)", texts),
                        ("their first sentences (mean ~25 tokens)", short)):
        start = time.perf_counter()
        classify_stances(batch, [topic])
        elapsed = time.perf_counter() - start
        print(f"speed: {len(batch) / elapsed:.1f} comments/s on {len(batch)} {name}, 1 topic")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of a process that loads the model and classifies: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(speed() if "--speed" in sys.argv else main())
