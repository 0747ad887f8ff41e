"""Comment stance toward user-written topics: favor, against or neutral, with a calibrated
score. Pure: texts in, labels out.

Start at `classify_stances` (`classifier`); the MiniLM encoder runs on onnxruntime
(`encoder`, `graph`); the model files live in `models/`. `crossencoder` is a cross-encoder
tried for issue 18 and not used yet (docs/stance.md). `load_tokenizer` and
`TokenStates` lend MiniLM's tokenizer and per-word-piece states to the claims
span tagger (`tasks.claims.tagger`), fine-tuned from the same weights.
"""

from __future__ import annotations

from tasks.stance.classifier import LABELS, classify_stances
from tasks.stance.crossencoder import load_tokenizer
from tasks.stance.encoder import THREADS_ENV, TokenStates, load_minilm

__all__ = ["LABELS", "THREADS_ENV", "TokenStates", "classify_stances", "load_minilm",
           "load_tokenizer"]
