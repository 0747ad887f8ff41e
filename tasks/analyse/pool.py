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

A night's claims and stances go through one pool (`analyse_batch`): a worker that runs out
of articles takes comments, so neither stage waits for the other's slowest chunk, and the
models live in the workers, not in the flow process.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from prefect import task

from schemas.config import Entity, StanceEncoder, Topic
from schemas.ids import claim_id_for, claim_key_for
from schemas.models import Article, Claim, ClaimDraft, Comment, Reject, Stance, StanceLabel
from tasks.claims import extract_claims_many
from tasks.extract import process_context
from tasks.stance import THREADS_ENV, classify_stances

T = TypeVar("T")
# articles per worker job. spaCy's transient memory grows with its batch (+115 MB at 4
# articles, +310 MB at 16, measured) while its CPU time per article does not change
CHUNK = 4
STANCE_CHUNK = 100  # comments per worker job: a few encoder batches, a small pickle
MIN_PARALLEL = 32  # below this, starting workers (~1 s: fork + model load) does not pay
log = logging.getLogger(__name__)


def cut_for_analysis(articles: Sequence[Article], max_chars: int
                     ) -> tuple[list[Article], list[Reject]]:
    """The articles with each body cut to `max_chars` for claim extraction, and a reject
    naming each cut (performance.max_text_chars).

    Claim extraction costs time and memory with the length of a text (a 9 MB paragraph:
    ~36 s and ~3 GB per million characters), so what it reads per article is bounded; the
    stored body is not cut.
    """
    out: list[Article] = []
    rejects: list[Reject] = []
    for article in articles:
        if len(article.body) <= max_chars:
            out.append(article)
            continue
        out.append(article.model_copy(update={"body": article.body[:max_chars]}))
        rejects.append(Reject(
            url=article.url, source=article.source, stage="extract",
            reason=f"claims: text cut at {max_chars} of {len(article.body)} characters "
                   "(performance.max_text_chars)"))
    return out, rejects


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


def extract_article_claims(articles: Sequence[Article], entities: Sequence[Entity],
                           *, n_process: int = 1, min_parallel: int = MIN_PARALLEL
                           ) -> tuple[list[Claim], list[Reject]]:
    """Claims of every article, and a reject for any article the extractor failed on.

    With `n_process` > 1 and at least `min_parallel` articles, the work is spread over
    that many worker processes.
    """
    if not articles:
        return [], []
    if n_process > 1 and len(articles) >= min_parallel:
        claims, _, rejects = analyse_batch(articles, [], entities, [], n_process=n_process,
                                           min_parallel=min_parallel)
        return claims, rejects
    started = time.perf_counter()
    drafts, rejects = _drafts(articles, entities)
    claims = _claims_of(articles, drafts)
    timings = {"claims_s": round(time.perf_counter() - started, 4)}
    log.info("claims: %d articles, %d claims, %s", len(articles), len(claims), timings,
             extra={"timings": timings})
    return claims, rejects


def _claims_of(articles: Sequence[Article], drafts: Sequence[list[ClaimDraft] | None]
               ) -> list[Claim]:
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
    return list(claims.values())


def classify_comment_stances(comments: Sequence[Comment], topics: Sequence[Topic],
                             stance_encoder: StanceEncoder = "minilm"
                             ) -> tuple[list[Stance], list[Reject]]:
    """A stance per comment and topic; if the classifier fails, one reject says why."""
    if not comments or not topics:
        return [], []
    started = time.perf_counter()
    try:
        results = classify_stances([c.body for c in comments], topics, stance_encoder)
    except Exception as exc:  # the run goes on without stances
        return [], [Reject(url="(comments)", source="*", stage="extract",
                           reason=f"stance: {type(exc).__name__}: {exc}"[:300])]
    timings = {"stance_s": round(time.perf_counter() - started, 4)}
    log.info("stances: %d comments x %d topics, %s", len(comments), len(topics), timings,
             extra={"timings": timings})
    return _stances_of(comments, topics, results), []


def _stances_of(comments: Sequence[Comment], topics: Sequence[Topic],
                rows: Sequence[Sequence[tuple[StanceLabel, float]]]) -> list[Stance]:
    return [Stance(comment_id=comment.comment_id, topic=topic.name, label=label,
                   score=min(1.0, max(0.0, float(score))))
            for comment, row in zip(comments, rows, strict=True)
            for topic, (label, score) in zip(topics, row, strict=True)]


# -- one pool for the night's claims and stances ----------------------------------------------


def _one_thread_per_worker() -> None:
    # a worker is one of `n_process` on as many cores: its encoder must not start a thread
    # per core of its own (read when the encoder loads)
    os.environ[THREADS_ENV] = "1"


def _claims_job(articles: list[Article], entities: Sequence[Entity]
                ) -> tuple[list[list[ClaimDraft] | None], list[Reject], float]:
    started = time.process_time()
    found, rejects = _drafts(articles, entities)
    return found, rejects, time.process_time() - started


def _stance_job(bodies: list[str], topics: Sequence[Topic], stance_encoder: StanceEncoder
                ) -> tuple[list[list[tuple[StanceLabel, float]]], float]:
    started = time.process_time()
    rows = classify_stances(bodies, topics, stance_encoder)
    return rows, time.process_time() - started


def analyse_batch(articles: Sequence[Article], comments: Sequence[Comment],
                  entities: Sequence[Entity], topics: Sequence[Topic], *, n_process: int = 1,
                  min_parallel: int = MIN_PARALLEL, stance_encoder: StanceEncoder = "minilm"
                  ) -> tuple[list[Claim], list[Stance], list[Reject]]:
    """Claims of the articles and stances of the comments, with rejects for what failed.

    With `n_process` > 1 and a batch worth a pool, chunks of both go to one pool of
    `n_process` workers, each running its models single-threaded; otherwise this is
    `extract_article_claims` then `classify_comment_stances` in this process.
    """
    topics = list(topics)
    work = len(articles) + (len(comments) // 5 if topics else 0)  # ~5 comments an article
    if n_process <= 1 or work < min_parallel:
        claims, claim_rejects = extract_article_claims(articles, entities)
        stances, stance_rejects = classify_comment_stances(comments, topics, stance_encoder)
        return claims, stances, [*claim_rejects, *stance_rejects]
    started = time.perf_counter()
    claim_parts = chunked(articles, CHUNK)
    stance_parts = chunked(comments, STANCE_CHUNK) if topics else []
    drafts: list[list[ClaimDraft] | None] = []
    rows: list[list[tuple[StanceLabel, float]]] = []
    labelled: list[Comment] = []
    rejects: list[Reject] = []
    cpu = {"claims_cpu_s": 0.0, "stance_cpu_s": 0.0}
    # forked workers share the flow process's pages until they write to them; a frozen
    # object is skipped by the workers' garbage collector, so its page is never copied
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=n_process, mp_context=process_context(),
                                 initializer=_one_thread_per_worker) as pool:
            claim_jobs = [pool.submit(_claims_job, part, entities) for part in claim_parts]
            stance_jobs = [pool.submit(_stance_job, [c.body for c in part], topics,
                                       stance_encoder) for part in stance_parts]
            for claim_job in claim_jobs:
                found, failed, seconds = claim_job.result()
                drafts.extend(found)
                rejects.extend(failed)
                cpu["claims_cpu_s"] += seconds
            for part, stance_job in zip(stance_parts, stance_jobs, strict=True):
                try:
                    got, seconds = stance_job.result()
                except BrokenProcessPool:
                    raise
                except Exception as exc:  # this chunk goes without stances, not the night
                    rejects.append(Reject(url=f"({len(part)} comments)", source="*",
                                          stage="extract",
                                          reason=f"stance: {type(exc).__name__}: {exc}"[:300]))
                    continue
                rows.extend(got)
                labelled.extend(part)
                cpu["stance_cpu_s"] += seconds
    except BrokenProcessPool as exc:  # a worker died (killed, out of memory): go on in here
        log.warning("analysis workers failed (%s); analysing in the flow process", exc)
        return analyse_batch(articles, comments, entities, topics, n_process=1,
                             stance_encoder=stance_encoder)
    finally:
        gc.unfreeze()
    claims = _claims_of(articles, drafts)
    stances = _stances_of(labelled, topics, rows)
    timings = {**{k: round(v, 3) for k, v in cpu.items()},
               "analyse_s": round(time.perf_counter() - started, 3)}
    log.info("analysis: %d articles, %d claims, %d comments x %d topics, %d processes, %s",
             len(articles), len(claims), len(comments), len(topics), n_process, timings,
             extra={"timings": timings})
    return claims, stances, rejects


extract_claims_task = task(name="extract-claims")(extract_article_claims)
classify_stances_task = task(name="classify-stances")(classify_comment_stances)
analyse_task = task(name="analyse")(analyse_batch)
