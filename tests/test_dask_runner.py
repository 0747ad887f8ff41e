"""`runner: {kind: dask}`: the real nightly flow with claims and stances on a Dask cluster.

The cluster is a LocalCluster whose one worker is a thread of this process (no processes
to start), so the test checks the plumbing (chunks submitted through prefect-dask, results
back in the flow process, one writer) in seconds; docs/performance.md has the figures.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

pytest.importorskip("prefect_dask", reason="prefect-dask is not installed")

from flows.nightly import nightly
from policywatch.demo import serve_demo_site, write_demo_config
from schemas.config import load_config
from tasks.analyse import extract_article_claims
from tasks.store import query

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _task_runs(flow_run_id: UUID | None) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id] if flow_run_id else [])))
    return [r.name for r in runs]


def test_claims_and_stances_run_on_dask_and_load_in_the_flow(tmp_path: Path,
                                                              db_path: Path) -> None:
    with serve_demo_site(port=None) as (base, _receiver):
        config_path = write_demo_config(base, tmp_path)
        with config_path.open("a", encoding="utf-8") as f:
            # two articles per task: the night's handful of articles become several tasks
            f.write("runner: {kind: dask, workers: 1, threads: true, chunk: 2}\n")
        state = nightly(str(config_path), str(db_path), return_state=True)
        summary = state.result()
        again = nightly(str(config_path), str(db_path))

    assert summary.status == "completed"
    assert not [f for f in summary.failures if f.stage == "extract"]
    articles = query(db_path, "SELECT count(*) FROM articles")[1][0][0]
    comments = query(db_path, "SELECT count(*) FROM comments")[1][0][0]
    assert articles == summary.articles_new >= 6 and comments >= 20
    # every comment has its stance toward the one topic, computed on the cluster
    assert query(db_path, "SELECT count(*) FROM stances")[1][0][0] == comments

    # the claims stored are exactly those the extractor finds in the stored articles
    config = load_config(config_path)
    stored = {r[0] for r in query(db_path, "SELECT claim_id FROM claims")[1]}
    from schemas.models import Article

    _, rows = query(db_path, "SELECT article_id, source, url, title, body, content_hash, "
                             "fetched_at FROM articles")
    local, _ = extract_article_claims([Article(
        article_id=r[0], source=r[1], url=r[2], title=r[3], body=r[4], content_hash=r[5],
        fetched_at=r[6]) for r in rows], config.entities)
    assert stored == {c.claim_id for c in local} and len(stored) == summary.claims_new > 0

    # chunked: one claims task per two articles (the demo's articles span two batches)
    names = _task_runs(state.state_details.flow_run_id)
    assert sum(n.startswith("extract-claims") for n in names) >= articles // 2
    assert any(n.startswith("classify-stances") for n in names)

    # an unchanged night starts no cluster and adds nothing
    assert (again.status, again.articles_new, again.claims_new) == ("completed", 0, 0)
