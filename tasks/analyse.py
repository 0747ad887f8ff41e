"""Claims from article bodies and stances from comments, with their stable ids.

Pure and batched: one call per run (or per batch of articles) so the NLP pipeline's start-up
cost and spaCy's batching are paid once, not per article. A text the extractor chokes on
becomes a reject (stage "extract") and the rest of the batch goes on.

Claims are CPU-bound Python (spaCy's parse, then the rules over each Doc), so a large batch
is split into chunks that `n_process` worker processes extract whole, parse and rules
alike: spaCy's own `n_process` would parallelise the parse only and ship every Doc back to
run the rules in one process. Workers are forked, so they share the parent's imports and
nothing but articles and drafts is pickled; each loads the model once. Nothing is loaded
when there is nothing to analyse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat
from typing import TypeVar

from prefect import task

from schemas.config import Entity, Topic
from schemas.models import Article, Claim, ClaimDraft, Comment, Reject, Stance
from tasks.claims import extract_claims_many
from tasks.ids import claim_id_for, claim_key_for
from tasks.pages import process_context
from tasks.stance import classify_stances

T = TypeVar("T")
# articles per worker job. spaCy's transient memory grows with its batch (+115 MB at 4
# articles, +310 MB at 16, measured) while its CPU time per article does not change
CHUNK = 4
MIN_PARALLEL = 32  # below this, starting workers (~1 s: fork + model load) does not pay
log = logging.getLogger(__name__)


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """`items` cut into consecutive lists of at most `size`."""
    return [list(items[i : i + size]) for i in range(0, len(items), max(1, size))]


def _drafts(articles: Sequence[Article], entities: Sequence[Entity]
            ) -> tuple[list[list[ClaimDraft] | None], list[Reject]]:
    try:
        return list(extract_claims_many([a.body for a in articles], entities)), []
    except Exception:  # find the article at fault, keep the others
        found: list[list[ClaimDraft] | None] = []
        rejects = []
        for article in articles:
            try:
                found.append(extract_claims_many([article.body], entities)[0])
            except Exception as exc:  # recorded as a reject with its reason
                found.append(None)
                rejects.append(Reject(url=article.url, source=article.source, stage="extract",
                                      reason=f"claims: {type(exc).__name__}: {exc}"[:300]))
        return found, rejects


def _drafts_in_processes(articles: Sequence[Article], entities: Sequence[Entity],
                         n_process: int) -> tuple[list[list[ClaimDraft] | None], list[Reject]]:
    """`_drafts` over chunks in `n_process` worker processes; results in input order."""
    drafts: list[list[ClaimDraft] | None] = []
    rejects: list[Reject] = []
    try:
        with ProcessPoolExecutor(max_workers=n_process, mp_context=process_context()) as pool:
            for found, failed in pool.map(_drafts, chunked(articles, CHUNK),
                                          repeat(entities)):
                drafts.extend(found)
                rejects.extend(failed)
    except BrokenProcessPool as exc:  # a worker died (killed, out of memory): go on in here
        log.warning("claim workers failed (%s); extracting in the flow process", exc)
        return _drafts(articles, entities)
    return drafts, rejects


def extract_article_claims(articles: Sequence[Article], entities: Sequence[Entity],
                           *, n_process: int = 1, min_parallel: int = MIN_PARALLEL
                           ) -> tuple[list[Claim], list[Reject]]:
    """Claims of every article, and a reject for any article the extractor failed on.

    With `n_process` > 1 and at least `min_parallel` articles, the work is spread over
    that many worker processes.
    """
    if not articles:
        return [], []
    started = time.perf_counter()
    parallel = n_process > 1 and len(articles) >= min_parallel
    drafts, rejects = (_drafts_in_processes(articles, entities, n_process) if parallel
                       else _drafts(articles, entities))
    claims: dict[str, Claim] = {}
    for article, found in zip(articles, drafts, strict=True):
        for draft in found or ():
            claim_id = claim_id_for(article.article_id, draft.speaker, draft.content)
            claims.setdefault(claim_id, Claim(
                claim_id=claim_id, article_id=article.article_id, speaker=draft.speaker,
                speaker_entity=draft.speaker_entity, cue=draft.cue, content=draft.content,
                sentence=draft.sentence, quote_kind=draft.quote_kind,
                entities=tuple(dict.fromkeys(draft.entities)),
                claim_key=claim_key_for(draft.content)))
    timings = {"claims_s": round(time.perf_counter() - started, 4)}
    log.info("claims: %d articles, %d claims, %s process(es), %s", len(articles), len(claims),
             n_process if parallel else 1, timings, extra={"timings": timings})
    return list(claims.values()), rejects


def classify_comment_stances(comments: Sequence[Comment], topics: Sequence[Topic]
                             ) -> tuple[list[Stance], list[Reject]]:
    """A stance per comment and topic; if the classifier fails, one reject says why."""
    if not comments or not topics:
        return [], []
    started = time.perf_counter()
    try:
        results = classify_stances([c.body for c in comments], topics)
    except Exception as exc:  # the run goes on without stances
        return [], [Reject(url="(comments)", source="*", stage="extract",
                           reason=f"stance: {type(exc).__name__}: {exc}"[:300])]
    timings = {"stance_s": round(time.perf_counter() - started, 4)}
    log.info("stances: %d comments x %d topics, %s", len(comments), len(topics), timings,
             extra={"timings": timings})
    return [Stance(comment_id=comment.comment_id, topic=topic.name, label=label,
                   score=min(1.0, max(0.0, float(score))))
            for comment, row in zip(comments, results, strict=True)
            for topic, (label, score) in zip(topics, row, strict=True)], []


extract_claims_task = task(name="extract-claims")(extract_article_claims)
classify_stances_task = task(name="classify-stances")(classify_comment_stances)
