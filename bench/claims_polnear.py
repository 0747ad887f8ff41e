"""Score `tasks.claims.extractor.extract_claims` against PolNeAR's gold attributions.

    python bench/claims_polnear.py [--split dev] [--limit N] [--verbose]
    python bench/claims_polnear.py --learn    # rebuild tasks/claims/models/claims_cues.json
    python bench/train_claims_cues.py         # then the cue classifier (see its docstring)
    python bench/train_claims_filter.py       # then the claim filter (see its docstring)


Reads ../shared/corpus/polnear/polnear_<split>.jsonl (relative to the repo root) and skips
cleanly when it is absent. Scoring (docs/claims.md; the code is bench/lib/polnear.py):
- a predicted claim matches a gold attribution when the Jaccard overlap of their content
  characters is >= 0.5; characters are positions of letters and digits only, so quote
  marks, commas and a leading "that" weigh little; a gold content in several pieces is the
  union of its pieces; matching is greedy one-to-one, best overlap first;
- the speaker of a match is right when (a) both are unattributed, or (b) the predicted
  speaker shares a content word with the gold source text, or (c) the gold source is a
  pronoun or a bare description ("he", "the official") and a content word of the predicted
  speaker occurs in the 1,500 characters before it (an approximation of "names the person
  the pronoun refers to"; PolNeAR has no coreference links);
- a content in several pieces (an interrupted quotation) is the union of its pieces;
- claims of quote_kind "event" ("unveiled a chip") are scored with the others (PolNeAR
  annotates many such verbs as cues) and, on a second line, left out, as alert rules see
  the claims by default;
- content cleanliness: the share of claims whose content overlaps its own cue or speaker
  phrase (`tasks.claims.content_is_clean`; goal 0);
- articles/s is CPU time of this process for parsing + extraction, one process, after a
  warm-up on 20 articles of the split (model load is not counted); best of three passes
  over the split, the first pass (per-word caches still filling) printed alongside, with
  the load average: other work on the machine slows the CPU down too.
`--learn` parses the TRAIN split, counts for every word + construction how often it carried
a gold claim (`tasks.claims.cues.learn`), then runs the extractor over train with that table
and lists in `drop` the keys whose outputs were right less than 30 % of the time (seen at
least 5 times). Only counts are written, no text.
Also scores the bundled sample article against tests/data/seed_claims.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.claims_training import UNPARSED_MAX_LOSS  # noqa: E402
from bench.lib.polnear import (  # noqa: E402
    gold_claims,
    match,
    prf,
    read_split,
    skipped,
    speaker_right,
    split_path,
)
from schemas.config import Entity  # noqa: E402
from schemas.models import ClaimDraft  # noqa: E402
from tasks.claims import (  # noqa: E402
    claims_with_keys,
    content_is_clean,
    extract_claims,
    extract_claims_many,
    load_nlp,
)
from tasks.claims import cuemodel as claims_cuemodel  # noqa: E402
from tasks.claims import cues as claims_cues  # noqa: E402
from tasks.claims import filter as claims_filter  # noqa: E402
from tasks.claims import parse as claims_parse  # noqa: E402
from tasks.claims.extractor import _LEARNED_MIN as LEARNED_MIN  # noqa: E402
from tasks.claims.extractor import _bare_phrase as bare_phrase  # noqa: E402

SEED_TEXT = ROOT.parent / "shared" / "seeds" / "000_5bf2e83c85908633.txt"
SEED_GOLD = ROOT / "tests" / "data" / "seed_claims.json"


def bench_polnear(split: str, limit: int | None, verbose: bool, use_tagger: bool = True
                  ) -> None:
    if not split_path(split).exists():
        print(skipped(split))
        return
    rows = read_split(split)
    rows = rows[:limit] if limit else rows
    load_nlp()
    extract_claims_many([row["text"] for row in rows[:20]], [],
                        use_tagger=use_tagger)  # warm-up
    texts = [row["text"] for row in rows]
    speeds = []
    predicted: list[list[ClaimDraft]] = []
    for _ in range(3):
        started = time.process_time()
        predicted = extract_claims_many(texts, [], use_tagger=use_tagger)
        speeds.append(len(rows) / (time.process_time() - started))
    tp = n_pred = n_gold = right = 0
    matched: list[list[tuple[int, int]]] = []  # per article, for the bare-phrase view
    for row, preds in zip(rows, predicted, strict=True):
        golds = gold_claims(row)
        pairs = match(preds, golds, row["text"])
        matched.append(pairs)
        tp += len(pairs)
        n_pred += len(preds)
        n_gold += len(golds)
        for p, g in pairs:
            ok = speaker_right(preds[p].speaker, golds[g], row["text"])
            right += ok
            if verbose and not ok:
                print(f"SPEAKER {preds[p].speaker!r} vs "
                      f"{[s['text'] for s in golds[g]['source']]}: {preds[p].sentence[:100]}")
    prec, rec, f1 = prf(tp, n_pred, n_gold)
    # events ("unveiled a chip", quote_kind "event") are stored but not alerted by default;
    # scored without them, as the alert rules see the claims
    etp = en_pred = 0
    for row, preds in zip(rows, predicted, strict=True):
        kept = [c for c in preds if c.quote_kind != "event"]
        etp += len(match(kept, gold_claims(row), row["text"]))
        en_pred += len(kept)
    eprec, erec, ef1 = prf(etp, en_pred, n_gold)
    # gold contents of at most three words and no verb ("Trump" <- "endorsed", "the crude
    # insults" <- "sprays") are claims the issue forbids as alerts (a bare noun phrase):
    # scores against the rest of the gold, as a second view, not the goal's; a prediction
    # that matches a bare gold phrase still counts among the predictions, so as wrong
    nlp = load_nlp()
    btp = n_bare = 0
    for row, pairs in zip(rows, matched, strict=True):
        bare = {g for g, gold in enumerate(gold_claims(row)) if bare_phrase(nlp(" ".join(
            s["text"] for s in gold["content"]))[:])}
        n_bare += len(bare)
        btp += sum(g not in bare for _, g in pairs)
    bprec, brec, bf1 = prf(btp, n_pred, n_gold - n_bare)
    unclean = sum(not content_is_clean(c) for preds in predicted for c in preds)
    label = split if use_tagger else f"{split}, rules alone"
    print(f"PolNeAR {label}: {len(rows)} articles, {n_gold} gold, {n_pred} predicted, "
          f"{tp} matched")
    print(f"  precision {prec:.3f}  recall {rec:.3f}  F1 {f1:.3f}")
    print(f"  without events ({n_pred - en_pred} stored with quote_kind 'event'): precision "
          f"{eprec:.3f}  recall {erec:.3f}  F1 {ef1:.3f}")
    print(f"  against the {n_gold - n_bare} gold contents that are not bare phrases ({n_bare} "
          f"are, which claims may not be): precision {bprec:.3f}  recall {brec:.3f}  "
          f"F1 {bf1:.3f}")
    print(f"  speaker right on {right}/{tp} matches = {right / max(tp, 1):.3f}")
    print(f"  content holding its own cue or speaker: {unclean}/{n_pred} = "
          f"{unclean / max(n_pred, 1):.3f} (goal 0)")
    if verbose:
        for preds in predicted:
            for c in preds:
                if not content_is_clean(c):
                    print(f"UNCLEAN {c.speaker!r} {c.cue!r}: {c.content[:120]!r}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  speed {max(speeds):.1f} articles/s best of 3 (first pass {speeds[0]:.1f}, word "
          f"caches cold) (CPU, one process; load average {load} on {os.cpu_count()} cores)")


SAMPLE_ENTITIES = [
    Entity(name="Huawei", aliases=("Huawei Technologies", "Huawei Technologies Co."),
           kind="org", tracked=True),
    Entity(name="David Sacks", aliases=("Sacks",), kind="person", tracked=True),
    Entity(name="DeepSeek", kind="org", tracked=True),
    Entity(name="Nvidia", kind="org"),
    Entity(name="China", kind="country"),
    Entity(name="United States", aliases=("US", "U.S."), kind="country"),
    Entity(name="AI diffusion rule", kind="policy", tracked=True),
]


def bench_sample() -> None:
    if not SEED_TEXT.exists() or not SEED_GOLD.exists():
        print("sample article: skipped (seed text or annotation missing)")
        return
    text = SEED_TEXT.read_text(encoding="utf-8").split("5 Comments")[0]
    gold = json.loads(SEED_GOLD.read_text(encoding="utf-8"))
    preds = extract_claims(text, SAMPLE_ENTITIES)
    used: set[int] = set()
    found = right = kinds = 0
    for item in gold:
        hit = next((k for k, c in enumerate(preds) if k not in used
                    and item["content"] in text[c.content_start: c.content_end]), None)
        if hit is None:
            print(f"  missed: {item['speaker']!r}: {item['content']!r}")
            continue
        used.add(hit)
        found += 1
        right += preds[hit].speaker == item["speaker"]
        kinds += preds[hit].quote_kind == item["quote_kind"]
    extra = [c for k, c in enumerate(preds) if k not in used]
    print(f"sample article: {len(gold)} annotated, {len(preds)} predicted, {found} found")
    print(f"  precision {found / max(len(preds), 1):.3f}  recall {found / len(gold):.3f}  "
          f"speaker right {right}/{found}  quote kind right {kinds}/{found}")
    for claim in extra:
        print(f"  extra: {claim.speaker!r} {claim.cue!r}: {claim.content[:70]!r}")


DROP_BELOW = 0.3  # an output kind right less often than this lowers F1 (F1 ~0.6)
DROP_MIN_SEEN = 5


def learn() -> None:
    if not split_path("train").exists():
        print(skipped("train"))
        return
    rows = read_split("train")
    docs = list(load_nlp().pipe([row["text"] for row in rows], batch_size=32))
    # the table, its drop list and unparsed forms are learnt without the cue classifier;
    # bench/train_claims_cues.py then fits the classifier and re-chooses the unparsed forms
    claims_cuemodel.use({}, 0.0, 1.0, frozenset(), frozenset())
    claims_filter.use(None)  # trained last, on the finished extractor's output
    table = claims_cues.learn(docs, [row["attributions"] for row in rows])
    claims_cues.save(table, {})
    claims_cues.clear_cache()
    stats: dict[str, list[int]] = {}
    for row, doc in zip(rows, docs, strict=True):
        keyed = claims_with_keys(doc, [])
        golds = gold_claims(row)
        right = {p for p, _ in match([c for c, _ in keyed], golds, row["text"])}
        for k, (_, key) in enumerate(keyed):
            counts = stats.setdefault(key, [0, 0])
            counts[0] += k in right
            counts[1] += 1
    drop = {k: v for k, v in stats.items()
            if v[1] >= DROP_MIN_SEEN and v[0] / v[1] < DROP_BELOW}
    claims_cues.save(table, drop)
    claims_cues.clear_cache()
    # which cue words alone do not make a sentence worth parsing (tasks.claims.parse)
    sentence_stats: list[claims_parse.SentenceStat] = []
    n_gold = 0
    for row, doc in zip(rows, docs, strict=True):
        preds = [c for c, _ in claims_with_keys(doc, [])]
        golds = gold_claims(row)
        n_gold += len(golds)
        right = {p for p, _ in match(preds, golds, row["text"])}
        cues = [(max(row["text"].find(c.sentence), 0), k in right) for k, c in enumerate(preds)]
        sentence_stats.extend(claims_parse.sentence_stats(load_nlp(), LEARNED_MIN, doc, cues))
    unparsed = claims_parse.choose_unparsed(claims_parse.all_forms(load_nlp(), LEARNED_MIN),
                                            sentence_stats, n_gold, UNPARSED_MAX_LOSS)
    claims_cues.save(table, drop, unparsed)
    claims_cues.clear_cache()
    claims_cuemodel.reset()
    print(f"learnt {len(table)} constructions, {len(drop)} dropped keys, "
          f"{len(unparsed)} cue word forms left unparsed -> {claims_cues.TABLE_PATH}")
    print("now run bench/train_claims_cues.py (cue classifier, unparsed forms for it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=["dev", "train", "held-out"])
    parser.add_argument("--rules-only", action="store_true",
                        help="leave the span tagger out (the rules alone)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--learn", action="store_true",
                        help="rebuild the learnt cue table from the train split")
    args = parser.parse_args()
    if args.learn:
        learn()
        return
    bench_sample()
    bench_polnear(args.split, args.limit, args.verbose, use_tagger=not args.rules_only)


if __name__ == "__main__":
    main()
