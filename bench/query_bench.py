"""How fast the documented queries answer as history grows.

    python bench/query_bench.py [--claims 1000000]

Builds a database with the real schema (schemas/ddl.py) and N generated claims spread over
two years, 20 outlets, 40 entities and 5 topics, then times each documented query (the
README's examples) as `policywatch sql` runs them: a fresh read-only connection per query,
median of 5. Goal (issue 9): under 200 ms each with a million claims.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from tasks.store import open_for_write, query

QUERIES = {
    "entity_latest('entity-7', 50)":
        "SELECT claimed_at, speaker, content, source FROM entity_latest('entity-7', 50)",
    "entity timeline (one entity, last 30 days)":
        "SELECT claimed_at, speaker, content, source FROM entity_timeline "
        "WHERE entity = 'entity-7' AND claimed_at >= TIMESTAMPTZ '2026-10-30' "
        "ORDER BY claimed_at DESC",
    "claims per entity":
        "SELECT entity, count(*) FROM claim_entities GROUP BY ALL ORDER BY 2 DESC",
    "stance share per topic and day (one topic, last 30 days)":
        "SELECT topic, day, sum(comments), avg(favor_share), avg(against_share) "
        "FROM stance_share WHERE topic = 'topic-2' AND day >= DATE '2026-10-30' "
        "GROUP BY ALL ORDER BY day",
    "claims_view (one outlet, 20 newest)":
        "SELECT speaker, cue, content FROM claims_view WHERE source = 'outlet-3' "
        "ORDER BY published_at DESC LIMIT 20",
}


def build(path: Path, claims: int) -> None:
    with open_for_write(path):
        pass  # the real schema
    articles = max(1, claims // 20)
    comments = articles * 5
    con = duckdb.connect(str(path))
    start = "TIMESTAMPTZ '2024-11-29 00:00:00+00'"
    con.execute(f"""
        INSERT INTO articles SELECT 'a' || i, 'outlet-' || (i % 20), 'https://o.example/' || i,
            NULL, 'Title ' || i, 'Author', {start} + to_seconds(i * 63072000 // {articles}),
            'body', 'en', 'h' || i, now(), now(), 'r'
        FROM range({articles}) t(i)""")
    con.execute(f"""
        INSERT INTO claims SELECT 'c' || i, 'a' || (i // 20), 'Speaker ' || (i % 500), NULL,
            'said', 'content ' || i, 'sentence ' || i, 'indirect', 'k' || i,
            {start} + to_seconds(i * 63072000 // {claims}), 'r'
        FROM range({claims}) t(i)""")
    con.execute(f"""
        INSERT INTO claim_entities SELECT 'c' || i, 'entity-' || (i % 40), 'a' || (i // 20),
            {start} + to_seconds((i // 20) * 63072000 // {articles})
        FROM range({claims}) t(i)
        UNION ALL SELECT 'c' || i, 'entity-' || ((i * 7 + 3) % 40), 'a' || (i // 20),
            {start} + to_seconds((i // 20) * 63072000 // {articles})
        FROM range({claims}) t(i) WHERE i % 2 = 0 AND (i * 7 + 3) % 40 <> i % 40""")
    con.execute(f"""
        INSERT INTO comments SELECT 'm' || i, 'a' || (i // 5), 'reader', 'text',
            {start} + to_seconds(i * 63072000 // {comments}), NULL, now(), 'r'
        FROM range({comments}) t(i)""")
    con.execute(f"""
        INSERT INTO stances SELECT 'm' || i, 'topic-' || j,
            ['favor', 'against', 'neutral'][1 + (i * 31 + j) % 3], 0.7, 'r'
        FROM range({comments}) t(i), range(5) u(j)""")
    con.execute("CHECKPOINT")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.duckdb"
        started = time.perf_counter()
        build(path, args.claims)
        counts = {t: query(path, f"SELECT count(*) FROM {t}")[1][0][0]
                  for t in ("articles", "claims", "claim_entities", "comments", "stances")}
        print(f"built in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
        print(f"{'query':60} {'median ms':>10} {'max ms':>8} {'rows':>6}")
        for name, sql in QUERIES.items():
            times, rows = [], 0
            for _ in range(5):
                t0 = time.perf_counter()
                rows = len(query(path, sql)[1])
                times.append((time.perf_counter() - t0) * 1000)
            ok = "ok" if statistics.median(times) < 200 else "SLOW"
            print(f"{name:60} {statistics.median(times):10.1f} {max(times):8.1f} "
                  f"{rows:6} {ok}")


if __name__ == "__main__":
    main()
