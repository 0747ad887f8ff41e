"""Claims and stances of a night's new articles and comments, where the config says.

- `runner.kind: local` (the default): one `analyse` task in the flow process; a large batch
  of articles and comments is spread over `performance.processes` worker processes inside
  it, claims and stances through the same pool.
- `runner.kind: dask`: the batches are cut into chunks and each chunk is a task submitted
  through prefect-dask's `DaskTaskRunner`, to a LocalCluster started for the night or to the
  scheduler at `runner.address`. Only the CPU-bound tasks go there: the crawl and the load
  stay in the flow process, which stays DuckDB's only writer. No cluster is started on a
  night with nothing to analyse.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from prefect.utilities.annotations import quote

from schemas.config import Config
from schemas.models import Article, Claim, Comment, Reject, Stance

# tasks.analyse is imported where a night has something to analyse: it loads spaCy and
# the stance encoder's runtime (seconds), which a quiet night never needs

COMMENTS_PER_ARTICLE = 5  # a stance chunk holds this many times `runner.chunk` comments
T = TypeVar("T")


def unwalked(value: T) -> T:
    """`value` marked for Prefect not to walk it for futures when it is a task's argument.

    Prefect visits every object inside every argument twice per task call: ~3.5 s for a
    list of 18,000 claims (measured), none of which holds a future. The task gets `value`.
    """
    return cast(T, quote(value))


def cores(config: Config) -> int:
    """Worker processes for the CPU-bound stages: the config's, else one per core."""
    return config.performance.processes or os.cpu_count() or 1


def analyse_night(articles: Sequence[Article], comments: Sequence[Comment], config: Config
                  ) -> tuple[list[Claim], list[Stance], list[Reject]]:
    """Claims of the articles, stances of the comments, and rejects for what failed."""
    if not articles and not comments:  # a quiet night: not even a task run to pay for
        return [], [], []
    from tasks.analyse import analyse_task, cut_for_analysis

    articles, cuts = cut_for_analysis(articles, config.performance.max_text_chars)
    if config.runner.kind == "dask":
        claims, stances, rejects = _on_dask(articles, comments, config)
    else:
        claims, stances, rejects = analyse_task(
            unwalked(articles), unwalked(comments), config.entities, config.topics,
            n_process=cores(config), min_parallel=config.performance.min_batch,
            stance_encoder=config.performance.stance_encoder)
    return claims, stances, [*cuts, *rejects]


def dask_runner(config: Config) -> Any:
    """A `DaskTaskRunner` for the config: its scheduler, or a loopback LocalCluster."""
    from prefect_dask.task_runners import DaskTaskRunner  # only needed for `kind: dask`

    runner = config.runner
    if runner.address:
        return DaskTaskRunner(address=runner.address)
    local: dict[str, Any] = {"n_workers": runner.workers, "threads_per_worker": 1,
                             "processes": not runner.threads, "dashboard_address": None}
    if not runner.threads:  # worker processes talk TCP: on loopback only (threads: inproc)
        local["host"] = "127.0.0.1"
    return DaskTaskRunner(cluster_kwargs=local)


def _on_dask(articles: Sequence[Article], comments: Sequence[Comment], config: Config
             ) -> tuple[list[Claim], list[Stance], list[Reject]]:
    claims: list[Claim] = []
    stances: list[Stance] = []
    rejects: list[Reject] = []
    chunk = config.runner.chunk
    from tasks.analyse import chunked, classify_stances_task, extract_claims_task

    with dask_runner(config) as dask:
        claim_jobs = [(part, dask.submit(extract_claims_task,
                                         {"articles": part, "entities": config.entities}))
                      for part in chunked(articles, chunk)]
        stance_jobs = ([(part, dask.submit(classify_stances_task,
                                           {"comments": part, "topics": config.topics,
                                            "stance_encoder":
                                                config.performance.stance_encoder}))
                        for part in chunked(comments, chunk * COMMENTS_PER_ARTICLE)]
                       if config.topics else [])
        for articles_part, future in claim_jobs:
            try:
                found, failed = future.result()
            except Exception as exc:  # a lost worker costs its chunk, never the night
                rejects.extend(_lost(a.url, a.source, "claims", exc) for a in articles_part)
                continue
            claims.extend(found)
            rejects.extend(failed)
        for comments_part, future in stance_jobs:
            try:
                labelled, failed = future.result()
            except Exception as exc:
                rejects.append(_lost(f"({len(comments_part)} comments)", "*", "stance", exc))
                continue
            stances.extend(labelled)
            rejects.extend(failed)
    return claims, stances, rejects


def _lost(url: str, source: str, what: str, exc: Exception) -> Reject:
    return Reject(url=url, source=source, stage="extract",
                  reason=f"{what} on dask: {type(exc).__name__}: {exc}"[:300])
