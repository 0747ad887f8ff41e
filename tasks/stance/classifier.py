"""Stance of reader comments toward user-written topics: favor, against or neutral.

Each comment and each topic's position sentence is embedded with all-MiniLM-L6-v2
(`tasks.stance.encoder`, run by onnxruntime). A pair (topic t, comment c) becomes the features
[t*c, |t-c|, cos(t, c)] plus a few cue counts of the comment (negation, contrast,
approval, disapproval words), and a multinomial logistic regression trained on ARC debate
comments with held-out claims (`bench/train_stance.py`) scores the three labels. The head's
weights ship in `tasks/stance/models/stance_head.npz`; the label is the most probable one and its
score the probability that it is right, calibrated per label (`StanceHead`).

Features never name a topic, so topics the model never saw work the same way; a comment
that does not address the topic has a low cosine and comes out neutral.

A cascade saves encoder time on comments that address no topic: after MiniLM's first
layer, a small logistic gate (`tasks/stance/models/stance_gate.npz`, `bench/train_stance_gate.py`)
scores each (topic, comment) pair; a pair below its threshold (set for 98% recall of
related ARC pairs on unseen claims) is neutral with a fixed calibrated score, and a comment
runs the remaining five layers only if some topic's pair passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from schemas.config import StanceEncoder, Topic
from tasks.stance.encoder import OnnxMiniLM, load_distilled, load_minilm

Label = Literal["favor", "against", "neutral"]
LABELS: tuple[Label, ...] = ("favor", "against", "neutral")
F32 = npt.NDArray[np.float32]

# word cues that embeddings blur; counted per comment and scaled by sqrt(word count)
CUES: dict[str, tuple[str, ...]] = {
    "negation": ("not", "no", "never", "n't", "nothing", "none", "nor", "neither", "without"),
    "contrast": ("but", "however", "although", "though", "yet", "instead", "rather"),
    "approve": ("agree", "right", "should", "must", "need", "important", "good", "smart",
                "support", "best", "yes", "correct", "essential", "necessary", "paramount"),
    "disapprove": ("disagree", "wrong", "mistake", "bad", "against", "oppose", "hurt",
                   "harm", "ridiculous", "nonsense", "absurd", "terrible", "stupid",
                   "foolish", "fail", "unfair"),
}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|n't")


def cue_features(text: str) -> F32:
    """Counts of each cue family, normalised by the square root of the comment's length."""
    words = _WORD.findall(text.lower().replace("n't", " n't"))
    scale = np.sqrt(max(len(words), 1))
    return np.array([sum(w in cues for w in words) / scale for cues in CUES.values()],
                    dtype=np.float32)


def pair_features(topic: F32, comments: F32, cues: F32) -> F32:
    """Features of one topic embedding against many comment embeddings (rows)."""
    cos = comments @ topic
    # the comment's own embedding is left out: alone it teaches claim-specific shortcuts
    # that do not carry over to unseen topics (held-out macro-F1 0.562 with it, 0.579 without)
    return np.hstack([comments * topic, np.abs(comments - topic), cos[:, None],
                      cues, cues * cos[:, None]]).astype(np.float32)


class StanceHead:
    """Standardise, linear layer, temperature softmax: the shipped classifier.

    The label is the most probable one. Its score is the probability that the label is
    right, calibrated per label: one temperature left the side labels overconfident on
    unseen claims (a `favor` scored 0.60 on average was right 35% of the time) and
    `neutral` underconfident, so a logistic map of the softmax's top probability, one per
    label (`score_a`, `score_b`; bench/train_stance.py), turns it into the score. The maps
    are increasing, so within a label a higher probability still means a higher score."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.mean = data["mean"].astype(np.float32)
            self.scale = data["scale"].astype(np.float32)
            self.coef = data["coef"].astype(np.float32)  # (3, n_features), rows = LABELS
            self.intercept = data["intercept"].astype(np.float32)
            self.temperature = float(data["temperature"])
            # identity maps (score = top probability) for a head saved without them
            self.score_a = (data["score_a"].astype(np.float32) if "score_a" in data.files
                            else np.ones(len(LABELS), dtype=np.float32))
            self.score_b = (data["score_b"].astype(np.float32) if "score_b" in data.files
                            else np.zeros(len(LABELS), dtype=np.float32))

    def probabilities(self, features: F32) -> F32:
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        return tempered_softmax(logits, self.temperature)

    def label_scores(self, probs: F32) -> tuple[npt.NDArray[np.int64], F32]:
        """(label index, calibrated score) of each row of `probabilities`."""
        labels = probs.argmax(axis=1)
        return labels, label_scores(probs, labels, self.score_a, self.score_b)


def tempered_softmax(logits: npt.NDArray[np.floating], temperature: float) -> F32:
    """Row-wise softmax of logits / temperature."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return cast(F32, (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32))


def label_scores(probs: npt.NDArray[np.floating], labels: npt.NDArray[np.int64],
                 a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> F32:
    """sigmoid(a[label] * logit(top probability) + b[label]) for each row."""
    top = np.clip(probs[np.arange(len(labels)), labels], 1e-6, 1 - 1e-6)
    z = a[labels] * np.log(top / (1 - top)) + b[labels]
    return cast(F32, (1.0 / (1.0 + np.exp(-z))).astype(np.float32))


def gate_features(topic: F32, comments: F32, center: F32) -> F32:
    """Relevance-gate features of one topic's lower-layer embedding against many
    comments' (rows): [t*c, cos(t, c)] after subtracting `center` (the mean comment
    embedding) and renormalising. Early layers' mean-pooled states all point the same
    way (raw cosine separated related from unrelated ARC pairs with AUC 0.69-0.75;
    centred product + LR 0.87)."""
    t = topic - center
    t /= max(float(np.linalg.norm(t)), 1e-12)
    c = comments - center
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    prod = c * t
    return np.hstack([prod, prod.sum(axis=1, keepdims=True)]).astype(np.float32)


class RelevanceGate:
    """Logistic model: may comment c address topic t, judged from both texts' mean-pooled
    states after the encoder's first `layers` layers? Pairs scored below `threshold`
    (set for 98% recall of related pairs on claims the gate never saw) are neutral with
    score `exit_score` (the share of neutral among such pairs, measured the same way)."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.layers = int(data["layers"])
            self.center = data["center"].astype(np.float32)
            self.mean = data["mean"].astype(np.float32)
            self.scale = data["scale"].astype(np.float32)
            self.coef = data["coef"].astype(np.float32)  # (n_features,)
            self.intercept = float(data["intercept"])
            self.threshold = float(data["threshold"])
            self.exit_score = float(data["exit_score"])

    def probability(self, topic: F32, comments: F32) -> F32:
        """P(related) of each comment row to the topic (both lower-layer embeddings)."""
        z = ((gate_features(topic, comments, self.center) - self.mean) / self.scale
             ) @ self.coef
        return cast(F32, (1.0 / (1.0 + np.exp(-(z + self.intercept)))).astype(np.float32))

    def relevant(self, topics: F32, comments: F32) -> npt.NDArray[np.bool_]:
        """(n_comments, n_topics): which pairs need the full encoder and head."""
        if not len(topics):
            return np.zeros((len(comments), 0), dtype=bool)
        return np.stack([self.probability(t, comments) >= self.threshold for t in topics],
                        axis=1)


def model_path(name: str) -> Path:
    return Path(str(resources.files("tasks.stance"))) / "models" / name


def _fitted_to(stem: str, encoder: StanceEncoder) -> Path:
    """A model file fitted to one encoder: `<stem>.npz` for MiniLM, else
    `<stem>_<encoder>.npz`."""
    return model_path(f"{stem}.npz" if encoder == "minilm" else f"{stem}_{encoder}.npz")


def head_path(encoder: StanceEncoder = "minilm") -> Path:
    """The head trained on that encoder's embeddings (bench/train_stance.py)."""
    return _fitted_to("stance_head", encoder)


def gate_path(encoder: StanceEncoder = "minilm") -> Path:
    """The relevance gate fitted on that encoder's lower layers (bench/train_stance_gate.py)."""
    return _fitted_to("stance_gate", encoder)


def load_encoder(encoder: StanceEncoder = "minilm") -> OnnxMiniLM:
    return load_minilm() if encoder == "minilm" else load_distilled()


def load_head(encoder: StanceEncoder = "minilm") -> StanceHead:
    return _head(encoder)  # one cache key per encoder, however the argument is passed


def load_gate(encoder: StanceEncoder = "minilm") -> RelevanceGate:
    return _gate(encoder)


@lru_cache(maxsize=2)
def _head(encoder: StanceEncoder) -> StanceHead:
    return StanceHead(head_path(encoder))


@lru_cache(maxsize=2)
def _gate(encoder: StanceEncoder) -> RelevanceGate:
    return RelevanceGate(gate_path(encoder))


def topic_text(topic: Topic) -> str:
    """The position sentence is what a comment agrees or disagrees with."""
    return topic.description.strip() or topic.name


def classify_stances(
    comments: Sequence[str], topics: Sequence[Topic], model: StanceEncoder = "minilm"
) -> list[list[tuple[Label, float]]]:
    """result[i][j] = (label, confidence in [0, 1]) of comment i toward topic j; `model`
    picks the encoder (with its own head and gate)."""
    if not comments or not topics:
        return [[] for _ in comments]
    encoder, head, gate = load_encoder(model), load_head(model), load_gate(model)
    if gate.layers != encoder.split:
        raise RuntimeError(f"stance gate expects {gate.layers} lower layers, the encoder "
                           f"splits after {encoder.split}")
    texts = [c.strip() for c in comments]
    unique = sorted({t for t in texts if t})
    rows = {t: i for i, t in enumerate(unique)}
    topic_vecs, topic_lower, _ = encoder.encode_gated([topic_text(t) for t in topics])
    # the cascade: the upper layers run only for comments some topic may be addressed by
    def needs_full(pooled: F32) -> npt.NDArray[np.bool_]:
        return np.asarray(gate.relevant(topic_lower, pooled).any(axis=1), dtype=bool)

    embedded, lower, _ = encoder.encode_gated(unique, needs_full)
    relevant = gate.relevant(topic_lower, lower)
    cues = np.stack([cue_features(t) for t in unique]) if unique else np.zeros((0, 4))
    # per topic j: label index and score of each distinct comment; pairs the gate stops
    # are neutral with the gate's measured exit score
    labels, scores = [], []
    for j, vec in enumerate(topic_vecs):
        label = np.full(len(unique), LABELS.index("neutral"), dtype=np.int64)
        score = np.full(len(unique), gate.exit_score, dtype=np.float32)
        on = relevant[:, j]
        if on.any():
            label[on], score[on] = head.label_scores(head.probabilities(
                pair_features(vec, embedded[on], cues[on].astype(np.float32))))
        labels.append(label)
        scores.append(score)
    result: list[list[tuple[Label, float]]] = []
    for text in texts:
        if not text:  # an empty comment addresses nothing
            result.append([("neutral", 1.0)] * len(topics))
            continue
        row = rows[text]
        result.append([(LABELS[int(labels[j][row])], round(float(scores[j][row]), 4))
                       for j in range(len(topics))])
    return result
