"""Stance corpora readers and the fixed splits of issue 18 (stdlib only, so the torch
training venv can import it).

- VAST (`vast_train.jsonl`, the training half only; VAST's test half is never read):
  `vast_split()` holds out whole articles and their topics. Articles are ranked by
  sha1(f"{SEED}:{article}") and the first DEV_SHARE of them are the dev articles. Training
  rows are the rows of the other articles; the zero-shot dev rows are the dev articles'
  rows whose topic (lower-cased, spaces collapsed) is no training row's topic. So no dev
  article and no dev topic is ever trained on; the dev articles' rows with a topic also
  seen in training (common ones such as "gun control") are used by neither.
- ARC: the fixed 20% held-out claims by sha1 of the claim text, as
  bench/train_stance.py's `held_out_claims` (28 of 140 claims); the other 112 may train.
- SemEval-2016 test tweets with each target written as a position sentence, as
  SEMEVAL_TOPICS (bench/lib/stance_training.py uses these too).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "stance"
SEED = 18
DEV_SHARE = 0.2
ARC_HELD_OUT_SHARE = 0.2
ARC_LABELS = {"agree": "favor", "disagree": "against", "discuss": "neutral",
              "unrelated": "neutral"}
SEMEVAL_LABELS = {0: "neutral", 1: "against", 2: "favor"}
SEMEVAL_TOPICS = {
    "abortion": "Abortion should be legal.",
    "atheism": "Atheism is right: there is no God.",
    "climate": "Climate change is a real concern.",
    "feminist": "The feminist movement is good for society.",
    "hillary": "Hillary Clinton should be president.",
}


@dataclass(frozen=True)
class Example:
    topic: str
    text: str
    label: str  # favor / against / neutral
    group: str  # article (VAST), claim (ARC), target (SemEval)
    kind: str = ""  # VAST type, ARC stance


def available() -> bool:
    return (CORPUS / "vast_train.jsonl").exists() and (CORPUS / "arc_pairs.csv").exists()


def _norm(topic: str) -> str:
    return " ".join(topic.lower().split())


def vast_rows() -> list[Example]:
    out = []
    with (CORPUS / "vast_train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append(Example(r["topic"], r["post"], r["label"], str(r["article"]),
                               str(r["type"])))
    return out


def vast_split(rows: Sequence[Example] | None = None, share: float = DEV_SHARE,
               seed: int = SEED) -> tuple[list[Example], list[Example]]:
    """(train, zero-shot dev) of VAST's training file; see the module docstring."""
    rows = list(rows if rows is not None else vast_rows())
    articles = sorted({r.group for r in rows},
                      key=lambda a: hashlib.sha1(f"{seed}:{a}".encode()).hexdigest())
    dev_articles = set(articles[: round(len(articles) * share)])
    train = [r for r in rows if r.group not in dev_articles]
    train_topics = {_norm(r.topic) for r in train}
    dev = [r for r in rows
           if r.group in dev_articles and _norm(r.topic) not in train_topics]
    return train, dev


def arc_rows() -> list[Example]:
    with (CORPUS / "arc_bodies.csv").open(encoding="utf-8") as f:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(f)}
    with (CORPUS / "arc_pairs.csv").open(encoding="utf-8") as f:
        return [Example(row["Headline"], bodies[row["Body ID"]], ARC_LABELS[row["Stance"]],
                        row["Headline"], row["Stance"]) for row in csv.DictReader(f)]


def arc_held_out_claims(claims: Sequence[str]) -> set[str]:
    ranked = sorted(set(claims), key=lambda c: hashlib.sha1(c.encode()).hexdigest())
    return set(ranked[: round(len(ranked) * ARC_HELD_OUT_SHARE)])


def arc_split(rows: Sequence[Example] | None = None
              ) -> tuple[list[Example], list[Example]]:
    """(train: 112 claims, held out: 28 claims) of ARC."""
    rows = list(rows if rows is not None else arc_rows())
    held = arc_held_out_claims([r.group for r in rows])
    return [r for r in rows if r.group not in held], [r for r in rows if r.group in held]


def semeval_rows(split: str = "test") -> list[Example]:
    out: list[Example] = []
    for target, topic in SEMEVAL_TOPICS.items():
        folder = CORPUS / "semeval2016" / target
        texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
        labels = (folder / f"{split}_labels.txt").read_text(encoding="utf-8").splitlines()
        out += [Example(topic, text.replace("#SemST", "").strip(),
                        SEMEVAL_LABELS[int(y)], target)
                for text, y in zip(texts, labels, strict=True)]
    return out


def macro_f1(gold: Sequence[str], pred: Sequence[str],
             labels: Sequence[str] = ("favor", "against", "neutral")) -> dict[str, float]:
    """Per-label F1, `macro` (mean over labels) and `F_avg` (mean of favor and against)."""
    out: dict[str, float] = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        out[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    out["macro"] = sum(out[label] for label in labels) / len(labels)
    out["F_avg"] = (out["favor"] + out["against"]) / 2
    return out
