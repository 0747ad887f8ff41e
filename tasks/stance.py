"""Stance of reader comments toward user-written topics: favor, against or neutral.

Each comment and each topic's position sentence is embedded with all-MiniLM-L6-v2
(`tasks.stance_encoder`, run by onnxruntime). A pair (topic t, comment c) becomes the features
[t*c, |t-c|, cos(t, c)] plus a few cue counts of the comment (negation, contrast,
approval, disapproval words), and a multinomial logistic regression trained on ARC debate
comments with held-out claims (`bench/train_stance.py`) scores the three labels. The head's
weights ship in `tasks/models/stance_head.npz`; the softmax is temperature-calibrated, and
the score is the probability of the chosen label.

Features never name a topic, so topics the model never saw work the same way; a comment
that does not address the topic has a low cosine and comes out neutral.
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

from schemas.config import Topic
from tasks.stance_encoder import load_minilm

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
    """Standardise, linear layer, temperature softmax: the shipped classifier."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self.mean = data["mean"].astype(np.float32)
            self.scale = data["scale"].astype(np.float32)
            self.coef = data["coef"].astype(np.float32)  # (3, n_features), rows = LABELS
            self.intercept = data["intercept"].astype(np.float32)
            self.temperature = float(data["temperature"])

    def probabilities(self, features: F32) -> F32:
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits /= self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return cast(F32, (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32))


def head_path() -> Path:
    return Path(str(resources.files("tasks"))) / "models" / "stance_head.npz"


@lru_cache(maxsize=1)
def load_head() -> StanceHead:
    return StanceHead(head_path())


def topic_text(topic: Topic) -> str:
    """The position sentence is what a comment agrees or disagrees with."""
    return topic.description.strip() or topic.name


def classify_stances(
    comments: Sequence[str], topics: Sequence[Topic]
) -> list[list[tuple[Label, float]]]:
    """result[i][j] = (label, confidence in [0, 1]) of comment i toward topic j."""
    if not comments or not topics:
        return [[] for _ in comments]
    encoder, head = load_minilm(), load_head()
    texts = [c.strip() for c in comments]
    unique = sorted({t for t in texts if t})
    rows = {t: i for i, t in enumerate(unique)}
    embedded = encoder.encode(unique)
    cues = np.stack([cue_features(t) for t in unique]) if unique else np.zeros((0, 4))
    topic_vecs = encoder.encode([topic_text(t) for t in topics])
    # probs[j]: (len(unique), 3) for topic j
    probs = [head.probabilities(pair_features(vec, embedded, cues.astype(np.float32)))
             for vec in topic_vecs]
    result: list[list[tuple[Label, float]]] = []
    for text in texts:
        if not text:  # an empty comment addresses nothing
            result.append([("neutral", 1.0)] * len(topics))
            continue
        row = rows[text]
        pairs: list[tuple[Label, float]] = []
        for j in range(len(topics)):
            k = int(np.argmax(probs[j][row]))
            pairs.append((LABELS[k], round(float(probs[j][row, k]), 4)))
        result.append(pairs)
    return result
