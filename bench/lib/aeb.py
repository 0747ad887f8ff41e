"""The article-extraction-benchmark (AEB) corpus and its metric.

Reads ../shared/corpus/aeb (ground-truth.json and html/<id>.html.gz, relative to the repo
root). The metric is the benchmark's own (see ../shared/corpus/README.md): 4-gram shingles
of \\w+ tokens, per-page overlaps normalised so every page weighs the same, precision
averaged over the pages given a body, recall over the pages whose truth has one, F1 of the
two averages. Pages whose sha1(id) ends in 0-3 are held out: never look at them while
tuning.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "aeb"
GROUND_TRUTH = CORPUS / "ground-truth.json"
TOKEN = re.compile(r"\w+")


# -- the corpus ------------------------------------------------------------------------------


def is_holdout(page_id: str) -> bool:
    """Whether a page is held out (sha1 of its id ends in 0-3)."""
    return hashlib.sha1(page_id.encode()).hexdigest()[-1] in "0123"


def read_pages(holdout: bool = False, every: bool = False
               ) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """(pages, truth) in id order: page id -> (html, url) and page id -> true body.

    The development pages by default, the held-out ones with `holdout`, all with `every`;
    pages without their HTML file are left out."""
    truth_all: dict[str, dict[str, str]] = json.loads(GROUND_TRUTH.read_text())
    pages: dict[str, tuple[str, str]] = {}
    truth: dict[str, str] = {}
    for page_id, item in sorted(truth_all.items()):
        if not every and is_holdout(page_id) != holdout:
            continue
        path = CORPUS / "html" / f"{page_id}.html.gz"
        if not path.exists():
            continue
        pages[page_id] = (gzip.decompress(path.read_bytes()).decode("utf-8", "replace"),
                          item.get("url", ""))
        truth[page_id] = item.get("articleBody") or ""
    return pages, truth


# -- the benchmark's metric ------------------------------------------------------------------


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """The n-grams of a text's \\w+ tokens, counted (a text of fewer
    than n tokens is one shorter gram)."""
    tokens = TOKEN.findall(text or "")
    return Counter(tuple(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))
                   if tokens[i:i + n])


def tp_fp_fn(true: str, pred: str) -> tuple[float, float, float]:
    """Shingle overlaps of one page, normalised so every page weighs the same."""
    t, p = shingles(true), shingles(pred)
    tp = float(sum((t & p).values()))
    fp = float(sum((p - t).values()))
    fn = float(sum((t - p).values()))
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def precision(tp: float, fp: float, fn: float) -> float:
    """Precision of one page (1.0 when both texts are empty)."""
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fp) if tp + fp else 0.0


def recall(tp: float, fp: float, fn: float) -> float:
    """Recall of one page (1.0 when both texts are empty)."""
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fn) if tp + fn else 0.0


def score(truth: dict[str, str], pred: dict[str, str]) -> tuple[float, float, float]:
    """(F1, precision, recall) as the benchmark computes them."""
    precisions, recalls = [], []
    for page_id, true in truth.items():
        guess = pred.get(page_id, "")
        counts = tp_fp_fn(true, guess)
        if guess:
            precisions.append(precision(*counts))
        if true:
            recalls.append(recall(*counts))
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return (2 * p * r / (p + r) if p + r else 0.0), p, r
