"""End to end: the real nightly flow over a 1,000-article local site, cold then warm.

    python bench/e2e_bench.py [--pages 1000] [--comments 5] [--concurrency 2]
                              [--runner thread|dask] [--no-floor]
                              [--stance-encoder minilm|distilled] [--settle 5]

Builds a local news site with the benches' page generator (bench/lib/newsite.py; PolNeAR
text from ../shared/corpus; the bench skips when the corpus is absent), each article with exactly
`--comments` reader comments, serves it from a separate process on 127.0.0.1 (ETag,
Last-Modified, gzip, a sitemap), writes a config (tracked entities, one stance topic), and
runs `flows.nightly.nightly` under `prefect_test_harness` twice against a fresh DuckDB.

Prints, for the cold run: articles/s end to end; the share of the flow's wall time spent
in fetch, parse, claims, stance, load, the other tasks and Prefect itself (task durations
come from the Prefect API, the crawl task's fetch/parse split from its timing log;
Prefect overhead = flow wall time - the time inside at least one task run); the floor (the
same pages fetched with httpx at the same concurrency and parsed with lxml, nothing else)
and the ratio to it; peak memory: ru_maxrss of this process and of waited-for children,
and the largest PSS (proportional set size, shared pages split fairly) summed over this
process and the workers it starts, sampled every 50 ms. Then the warm run's time as a
share of the cold one. The warm run starts `--settle` seconds after the cold one ends, as
a next night would: without the pause, the local Prefect server's backlog from the cold run
added 0.6-3 s of overhead to it.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.polnear import CORPUS, split_path  # noqa: E402

BUSY = "(inside tasks)"
ENTITIES = """\
entities:
  - {name: Huawei, aliases: [Huawei Technologies], kind: org, tracked: true}
  - {name: Nvidia, aliases: [NVIDIA, Nvidia Corp.], kind: org, tracked: true}
  - {name: China, aliases: [Beijing, PRC], kind: country, tracked: true}
  - {name: United States, aliases: [U.S., US, America, Washington], kind: country,
     tracked: true}
  - {name: Donald Trump, aliases: [Trump], kind: person, tracked: true}
  - {name: Hillary Clinton, aliases: [Clinton], kind: person}
  - {name: Russia, aliases: [Moscow], kind: country}
  - {name: European Union, aliases: [EU, Brussels], kind: org}
topics:
  - name: us-tech-controls
    description: The US should restrict China's access to advanced chips and AI technology.
"""


# -- the site, served from its own process so it never competes for the flow's GIL ---------


def build_site(pages: int, comments: int, seed: int = 7) -> dict[str, bytes]:
    """fetch_bench's pages (same text, dates and markup), with exactly `comments` each."""
    import random
    from datetime import timedelta as td

    from bench.lib.newsite import NOW, article_page, documents

    rng = random.Random(seed)
    docs = documents()
    site: dict[str, bytes] = {}
    for i in range(pages):
        if i < len(docs):
            title, paras = docs[i]
        else:  # more pages than articles: halves of two different articles, as fetch_bench
            a, b = docs[i % len(docs)], docs[(i * 7 + 3) % len(docs)]
            title, paras = f"{a[0]} ({i})", a[1][: len(a[1]) // 2 + 1] + b[1][len(b[1]) // 2:]
        day = NOW - td(days=i % 5)
        said = [(rng.choice(["Ann Lee", "Bob Ortiz", "Chen Wei", "Dana Fox", "Eli Stone"]),
                 rng.choice(rng.choice(docs)[1])[:300]) for _ in range(comments)]
        site[f"/{day:%Y/%m/%d}/story-{i}.html"] = article_page(title, paras, said,
                                                             day).encode("utf-8")
    return site


def _serve_forever(pages: int, comments: int, conn: Any) -> None:
    from bench.lib.newsite import serve

    site = build_site(pages, comments)
    _server, base, _counter = serve(site)
    conn.send((base, len(site), sum(len(b) for b in site.values())))
    conn.recv()  # blocks until the bench is done


def start_site(pages: int, comments: int) -> tuple[str, int, int, Any, Any]:
    parent, child = mp.get_context("fork").Pipe()
    proc = mp.get_context("fork").Process(target=_serve_forever, args=(pages, comments, child),
                                          daemon=True)
    proc.start()
    base, count, size = parent.recv()
    return base, count, size, proc, parent


# -- the floor: httpx + lxml, nothing else ------------------------------------------------


def floor(base: str, concurrency: int) -> tuple[float, int]:
    import httpx
    import lxml.etree
    import lxml.html

    started = time.perf_counter()
    with httpx.Client(timeout=20) as http:
        sitemap = lxml.etree.fromstring(http.get(f"{base}/sitemap.xml").content)
        urls = [e.text or "" for e in sitemap.iter("{*}loc")]

        def one(url: str) -> int:
            page = lxml.html.fromstring(http.get(url).content)
            return len(page.text_content())

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            chars = sum(pool.map(one, urls))
    assert chars > 0
    return time.perf_counter() - started, len(urls)


# -- memory of this process and the workers it starts --------------------------------------


class MemorySampler:
    """Peak PSS of this process plus its descendants, except the ones running at start.

    Reads /proc/PID/smaps_rollup a few times a second: reading it takes the process's
    memory-map lock, so sampling much faster would slow the flow it measures.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.skip = set(_descendants(os.getpid()))
        self.interval = interval
        self.peak_mb = 0.0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [os.getpid(), *(p for p in _descendants(os.getpid()) if p not in self.skip)]
            sizes = [_pss_kb(pid) for pid in pids]
            total = sum(s for s in sizes if s is not None) / 1024
            if total > self.peak_mb:
                self.peak_mb, self.peak_procs = total, sum(s is not None for s in sizes)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc/PID/task/*/children."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task_dir in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task_dir / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# -- stage timings --------------------------------------------------------------------------


class Timings(logging.Handler):
    """Collects the `timings` extras that tasks log (the crawl's fetch/parse split)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[dict[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        timings = getattr(record, "timings", None)
        if isinstance(timings, dict):
            self.seen.append(timings)


def task_durations(flow_run_id: Any, wait_s: float = 15.0) -> dict[str, float]:
    """Seconds per task name (summed over runs) for one flow run, from the Prefect API.

    Task states reach the server as events, so the last ones may lag the flow's return by
    a moment: poll until every task run has finished.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            done = runs and all(r.end_time is not None and r.start_time is not None
                                for r in runs)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    out: dict[str, float] = {}
    spans = []
    for run in runs:
        if run.start_time is None or run.end_time is None:
            continue
        seconds = (run.end_time - run.start_time).total_seconds()
        name = run.name.rsplit("-", 1)[0]  # "crawl-source-a1b" -> "crawl-source"
        out[name] = out.get(name, 0.0) + seconds
        spans.append((run.start_time.timestamp(), run.end_time.timestamp()))
    # time inside at least one task: Dask chunks overlap, so their sum would overcount
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    out[BUSY] = busy
    return out


# -- the runs -------------------------------------------------------------------------------


def night(config: Path, db: Path, handler: Timings) -> dict[str, Any]:
    from flows.nightly import nightly

    handler.seen.clear()
    with MemorySampler() as memory:
        started = time.perf_counter()
        state = nightly(str(config), str(db), return_state=True)
        wall = time.perf_counter() - started
    summary = state.result()
    tasks = task_durations(state.state_details.flow_run_id)
    crawl = {k: sum(t.get(k, 0.0) for t in handler.seen)
             for k in ("discover_s", "fetch_s", "parse_s", "dedupe_s", "claims_cpu_s",
                       "stance_cpu_s")}
    return {"wall": wall, "summary": summary, "tasks": tasks, "crawl": crawl,
            "pss_mb": memory.peak_mb, "procs": memory.peak_procs}


def report(name: str, run: dict[str, Any], pages: int) -> None:
    wall, tasks, crawl, summary = run["wall"], dict(run["tasks"]), run["crawl"], run["summary"]
    busy = tasks.pop(BUSY, 0.0)
    work = sum(tasks.values())
    crawl_task = tasks.get("crawl-source", 0.0)
    stages = {
        "fetch": crawl["fetch_s"],
        "parse": crawl["parse_s"],
        "discover+dedupe": crawl_task - crawl["fetch_s"] - crawl["parse_s"],
        "claims": tasks.get("extract-claims", 0.0),
        "stance": tasks.get("classify-stances", 0.0),
        "load": tasks.get("load", 0.0) + tasks.get("load-batch", 0.0),
    }
    # one `analyse` task runs both through one pool: its time is split by the workers' CPU
    both, cpu = tasks.get("analyse", 0.0), crawl["claims_cpu_s"] + crawl["stance_cpu_s"]
    stages["claims"] += both * (crawl["claims_cpu_s"] / cpu if cpu else 1.0)
    stages["stance"] += both * (crawl["stance_cpu_s"] / cpu if cpu else 0.0)
    stages["other tasks"] = work - crawl_task - stages["claims"] - stages["stance"] \
        - stages["load"]
    if busy < work - 0.5:  # tasks overlapped (Dask): shares are of summed task time
        print(f"  tasks overlapped: {work:.1f} s of task time in {busy:.1f} s")
    stages["prefect overhead"] = wall - busy
    print(f"{name}: {wall:.2f} s wall, {summary.articles_new} new articles, "
          f"{summary.comments_new} new comments, {summary.claims_new} new claims, "
          f"{summary.stances_new} new stances, {len(summary.failures)} failures"
          + (f" ({summary.failures[0].stage}: {summary.failures[0].reason[:80]})"
             if summary.failures else ""))
    if name == "cold":
        print(f"  end to end: {pages / wall:.1f} articles/s")
    print("  " + ", ".join(f"{k} {v:.2f} s ({100 * v / wall:.1f}%)" for k, v in stages.items()))
    print("  task runs: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(tasks.items())))
    print(f"  peak PSS of this process + its workers: {run['pss_mb']:.0f} MB "
          f"({run['procs']} processes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--comments", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="per-host concurrency, for the flow and the floor alike")
    parser.add_argument("--runner", choices=("thread", "dask"), default="thread")
    parser.add_argument("--stance-encoder", choices=("minilm", "distilled"), default="minilm",
                        help="performance.stance_encoder of the config (docs/stance.md)")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between the cold and the warm run")
    args = parser.parse_args()
    if not split_path("train").exists():
        print(f"skipped: {CORPUS} is absent (the bench needs PolNeAR text)")
        return 0

    base, count, size, server, conn = start_site(args.pages, args.comments)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"site: {count} pages, {args.comments} comments each, {size / 1e6:.1f} MB of HTML, "
          f"served from pid {server.pid}; per-host concurrency {args.concurrency}")
    floor_s = 0.0
    if not args.no_floor:
        floor_s, n = floor(base, args.concurrency)
        print(f"floor (httpx + lxml, {n} pages, concurrency {args.concurrency}): "
              f"{floor_s:.2f} s = {n / floor_s:.0f} pages/s")

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    handler = Timings()
    logging.getLogger("tasks").addHandler(handler)
    logging.getLogger("tasks").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        config = Path(tmp) / "bench.yaml"
        runner = ("runner: {kind: dask, workers: 2}\n" if args.runner == "dask" else "")
        runner += f"performance: {{stance_encoder: {args.stance_encoder}}}\n"
        config.write_text(
            f"database: bench.duckdb\nsources:\n  - name: bench\n"
            f"    sitemap: {base}/sitemap.xml\n    max_items: {args.pages}\n"
            f"crawl: {{per_host_concurrency: {args.concurrency}, "
            f"user_agent_contact: bench@localhost, "
            f"allow_private_addresses: ['{base.split('://', 1)[1]}']}}\n{ENTITIES}{runner}",
            encoding="utf-8")
        db = Path(tmp) / "bench.duckdb"
        cold = night(config, db, handler)
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        # a re-run comes a night later, not while the local Prefect server is still
        # digesting the cold run's events and logs (that backlog cost the warm run 0.6-3 s)
        time.sleep(args.settle)
        warm = night(config, db, handler)
    conn.send("stop")
    server.join(5)

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(other processes on the machine slow every stage); CPU used: this process "
          f"{cpu.ru_utime + cpu.ru_stime:.1f} s, waited-for children "
          f"{kids.ru_utime + kids.ru_stime:.1f} s (both nights, the Prefect server excluded)")
    report("cold", cold, count)
    print(f"  peak RSS (ru_maxrss): this process {self_mb:.0f} MB, largest waited-for child "
          f"{children_mb:.0f} MB")
    if floor_s:
        print(f"  floor {floor_s:.2f} s; the flow takes {cold['wall'] / floor_s:.1f}x the floor")
    report("warm", warm, count)
    print(f"  warm run = {100 * warm['wall'] / cold['wall']:.1f}% of the cold run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
