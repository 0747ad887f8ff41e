"""A cue table learnt from annotated news: which word + construction carries a claim.

PolNeAR annotates a broad notion of attribution (`is eager to`, `support for`, `sees X
as`, `made clear`), far more than a hand lexicon lists. For every word this module names
its constructions: the child of the word whose subtree would be the claim (`ccomp`,
`xcomp`, `dobj`, `prep:for`, ...). The table (`tasks/claims/models/claims_cues.json`) holds, for
each `lemma/POS/construction`, how often that subtree was a gold claim content of a cue on
that word in the train split, and how often the construction occurred at all. It holds
only counts, no article text. `learn` rebuilds it (`bench/claims_polnear.py --learn`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, Token

TABLE_PATH = Path(__file__).resolve().parent / "models" / "claims_cues.json"
# dependency labels whose subtree may be the content of a cue on their head
_CLAUSE_DEPS = frozenset({"ccomp", "xcomp", "dobj", "acl", "advcl", "oprd", "attr", "relcl"})
_CUE_POS = frozenset({"VERB", "NOUN", "ADJ", "AUX", "PROPN"})
MIN_SEEN = 4  # constructions seen fewer times in train are not trusted

Span = tuple[int, int]


def key_of(tok: Token, construction: str) -> str:
    return f"{tok.lemma_.lower()}/{tok.pos_}/{construction}"


def constructions(tok: Token) -> Iterator[tuple[str, Token]]:
    """(construction name, head of the candidate content) for each child of `tok`."""
    if tok.pos_ not in _CUE_POS:
        return
    for child in tok.children:
        dep = child.dep_
        if dep in _CLAUSE_DEPS:
            yield dep, child
        elif dep in ("prep", "prt", "agent"):
            obj = next((c for c in child.children if c.dep_ in ("pobj", "pcomp")), None)
            if obj is not None:
                yield f"prep:{child.lower_}", obj


def _alnum(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if text[i].isalnum()}


def learn(docs: Iterable[Doc], golds: Iterable[Sequence[dict[str, Any]]]
          ) -> dict[str, list[int]]:
    """Counts [gold, seen] per key from parsed docs and their PolNeAR attributions."""
    table: dict[str, list[int]] = {}
    for doc, attributions in zip(docs, golds, strict=True):
        text = doc.text
        items: list[tuple[list[Span], set[int]]] = []
        for att in attributions:
            cues = [(int(s["start"]), int(s["end"])) for s in att["cue"]]
            content: set[int] = set()
            for s in att["content"]:
                content |= _alnum(text, int(s["start"]), int(s["end"]))
            if content:
                items.append((cues, content))
        for tok in doc:
            for name, head in constructions(tok):
                key = key_of(tok, name)
                row = table.setdefault(key, [0, 0])
                row[1] += 1
                cand = _alnum(text, head.left_edge.idx,
                              head.right_edge.idx + len(head.right_edge))
                if not cand:
                    continue
                for cues, content in items:
                    if any(s <= tok.idx < e for s, e in cues):
                        inter = len(cand & content)
                        if inter and inter / len(cand | content) >= 0.5:
                            row[0] += 1
                            break
    return {k: v for k, v in table.items() if v[0] > 0 and v[1] >= MIN_SEEN}


def save(table: dict[str, list[int]], drop: dict[str, list[int]],
         unparsed: dict[str, list[int]] | None = None, path: Path = TABLE_PATH) -> None:
    """Write the table: `constructions` (key -> [gold, seen]), `drop` (key -> [right,
    emitted]: extractor outputs, hand rules included, that were rarely right on train) and
    `unparsed` (word form -> [right claims lost, tokens saved]: cue words that alone do not
    make a sentence worth parsing, `tasks.claims.parse`)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def block(rows: dict[str, list[int]]) -> str:
        return ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(rows.items()))

    path.write_text('{"constructions": {\n' + block(table) + '\n},\n"drop": {\n'
                    + block(drop) + '\n},\n"unparsed": {\n' + block(unparsed or {})
                    + "\n}}\n", encoding="utf-8")


@lru_cache(maxsize=1)
def _raw(path: Path | None = None) -> dict[str, dict[str, list[int]]]:
    path = path or TABLE_PATH
    if not path.exists():
        return {"constructions": {}, "drop": {}}
    raw: dict[str, dict[str, list[int]]] = json.loads(path.read_text(encoding="utf-8"))
    return raw


@lru_cache(maxsize=1)
def load() -> dict[str, float]:
    """key -> share of its occurrences that were gold claims (empty when no table ships)."""
    # add-one smoothing keeps a rare construction from scoring high on a few hits
    return {k: hits / (seen + 1) for k, (hits, seen) in _raw()["constructions"].items()
            if seen >= MIN_SEEN}


@lru_cache(maxsize=1)
def dropped() -> frozenset[str]:
    """Keys whose outputs were mostly wrong on train: the extractor skips them."""
    return frozenset(_raw()["drop"])


@lru_cache(maxsize=1)
def unparsed() -> frozenset[str]:
    """Cue word forms that alone do not get a sentence parsed (they rarely carried a claim)."""
    return frozenset(_raw().get("unparsed", {}))


def clear_cache() -> None:
    for fn in (_raw, load, dropped, unparsed):
        fn.cache_clear()
