"""The PolNeAR corpus and the scoring of claims against its gold attributions.

Reads ../shared/corpus/polnear/polnear_<split>.jsonl (relative to the repo root). Scoring
(docs/claims.md), shared by bench/claims_polnear.py and the training scripts:
- `match`: a predicted claim matches a gold attribution when the Jaccard overlap of their
  content characters is >= 0.5; characters are positions of letters and digits only, so
  quote marks, commas and a leading "that" weigh little; a gold content in several pieces
  (an interrupted quotation) is the union of its pieces; matching is greedy one-to-one,
  best overlap first;
- `speaker_right`: the speaker of a match is right when (a) both are unattributed, or
  (b) the predicted speaker shares a content word with the gold source text, or (c) the
  gold source is a pronoun or a bare description ("he", "the official") and a content word
  of the predicted speaker occurs in the 1,500 characters before it (PolNeAR has no
  coreference links);
- `prf`: precision, recall and F1 of matched / predicted / gold counts.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.models import ClaimDraft

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "polnear"

_WORD = re.compile(r"\w+")
_STOP = frozenset({"the", "a", "an", "of", "and", "in", "at", "for", "to", "on", "by",
                   "from", "with", "s"})
_PRONOUNS = frozenset({"he", "she", "they", "it", "we", "i", "you", "his", "her", "their",
                       "its", "him", "them", "us", "me", "this", "that", "these", "those",
                       "who"})


# -- the corpus ------------------------------------------------------------------------------


def split_path(split: str) -> Path:
    """The file of a split ("train" or "dev"; "held-out" is part of train)."""
    return CORPUS / f"polnear_{'train' if split == 'held-out' else split}.jsonl"


HELD_OUT_PERCENT = 15


def held_out(article_id: str) -> bool:
    """The train articles kept out of fitting the span tagger (about 15%, fixed by the id's
    sha1): what its layers, epochs and claim assembly were chosen on (split "held-out")."""
    return int(hashlib.sha1(article_id.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def read_split(split: str) -> list[dict[str, Any]]:
    """The articles of a split (text, title, attributions), in file order; "held-out" is
    the held-out part of train."""
    if split == "held-out":
        return [row for row in read_split("train") if held_out(row["id"])]
    text = split_path(split).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def skipped(split: str) -> str:
    """What a bench prints when the split is not on this machine."""
    return f"skipped: {split_path(split)} not found (the PolNeAR corpus is not on this machine)"


def gold_claims(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The gold attributions of an article that have a content (the ones scored)."""
    return [a for a in row["attributions"] if a["content"]]


# -- scoring ---------------------------------------------------------------------------------


def alnum_positions(text: str, start: int, end: int) -> set[int]:
    """Positions of the letters and digits of text[start:end]."""
    return {i for i in range(start, end) if text[i].isalnum()}


def content_words(text: str) -> set[str]:
    """The lower-cased words of a text, without a few function words."""
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def speaker_right(pred: str | None, gold: dict[str, Any], text: str) -> bool:
    """Whether the predicted speaker of a matched claim names the gold source."""
    sources = gold["source"]
    if not sources:
        return pred is None
    if pred is None:
        return False
    gold_text = " ".join(s["text"] for s in sources)
    pred_words = content_words(pred)
    if pred_words & content_words(gold_text):
        return True
    gold_words = content_words(gold_text)
    bare = gold_words <= _PRONOUNS or (len(gold_words) <= 2 and any(
        w in gold_text.lower().split() for w in ("the", "this")))
    if bare:
        start = sources[0]["start"]
        window = content_words(text[max(0, start - 1500): start])
        return bool(pred_words & window)
    return False


def match(preds: list[ClaimDraft], golds: list[dict[str, Any]], text: str
          ) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (pred index, gold index) with content Jaccard >= 0.5."""
    gold_sets = []
    for gold in golds:
        chars: set[int] = set()
        for span in gold["content"]:
            chars |= alnum_positions(text, span["start"], span["end"])
        gold_sets.append(chars)
    pairs = []
    for p, pred in enumerate(preds):
        pchars: set[int] = set().union(*(
            alnum_positions(text, s, e) for s, e in pred.content_pieces
            or [(pred.content_start, pred.content_end)]))
        if not pchars:
            continue
        for g, gchars in enumerate(gold_sets):
            if not gchars:
                continue
            inter = len(pchars & gchars)
            if inter:
                jac = inter / len(pchars | gchars)
                if jac >= 0.5:
                    pairs.append((jac, p, g))
    pairs.sort(reverse=True)
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for _, p, g in pairs:
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
            out.append((p, g))
    return out


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """(precision, recall, F1); 0.0 for what has nothing to divide by."""
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1
