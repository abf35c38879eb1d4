"""Per-event write latency of the interaction log with concurrent writer processes.

Each writer process stands for one Voilà kernel: it opens the store, waits for
the others at a barrier, then records events with ``SessionLogger.log`` and
``flush`` (one transaction per event) and measures how long each pair takes: the
write itself. (A click only buffers the event; the session's writer thread makes
this write.)

Modes:
    burst   every process logs as fast as it can (worst case: constant contention)
    paced   every process pauses 0-2x ``--pace-ms`` between events (still far
            more traffic than real visitors, who click every few seconds)

A single-writer burst row comes first for each backend: it cannot wait for a
lock, so its tail shows the machine's own noise (preemption by other work).

SQLite runs on a fresh file in a temporary folder; PostgreSQL (``--pg-url``)
in a temporary schema that is dropped afterwards. The target is p99 <= 5 ms
on SQLite.

    python benchmarks/log_write.py [--processes 16] [--events 200] [--pace-ms 10] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from widgets.log import ACTIONS, SessionLogger, open_store

TARGET_P99_MS = 5.0


class Result(NamedTuple):
    """Latencies of one run, in milliseconds."""

    backend: str
    mode: str
    processes: int
    events: int
    p50: float
    p99: float
    max: float
    per_second: float
    rows_ok: bool


def _writer(url: str, count: int, pace_ms: float, barrier: multiprocessing.synchronize.Barrier,
            results: multiprocessing.Queue[tuple[list[float], float, bool]]) -> None:
    store = open_store(url, timeout=30)
    logger = SessionLogger(store, rate=math.inf)  # a writer flat out: no per-visit limit
    rng = random.Random()
    latencies: list[float] = []
    barrier.wait(timeout=120)
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        logger.log(f"node-{i % 9}", ACTIONS[i % len(ACTIONS)], f"opt-{i % 4}" if i % 2 else None, "ko")
        logger.flush()  # the write (whichever thread makes it, flush returns once it is done)
        latencies.append((time.perf_counter() - t0) * 1000)
        if pace_ms:
            time.sleep(rng.uniform(0, 2 * pace_ms) / 1000)
    elapsed = time.perf_counter() - start
    results.put((latencies, elapsed, logger.healthy and logger.pending == 0))
    logger.close()
    store.close()


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(backend: str, url: str, processes: int, events: int, pace_ms: float) -> Result:
    """One run: ``processes`` writers x ``events`` events into the store at ``url``."""
    open_store(url).close()  # create the schema first: measure writes, not creation
    with open_store(url) as store:
        before = store.query("SELECT count(*) FROM events")[1][0][0]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(url, events, pace_ms, barrier, results)) for _ in range(processes)]
    for w in workers:
        w.start()
    reports = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(ms for report in reports for ms in report[0])
    wall = max(report[1] for report in reports)
    with open_store(url) as store:
        after = store.query("SELECT count(*) FROM events")[1][0][0]
    return Result(
        backend=backend,
        mode=f"paced {pace_ms:g} ms" if pace_ms else "burst",
        processes=processes,
        events=len(latencies),
        p50=statistics.median(latencies),
        p99=_percentile(latencies, 0.99),
        max=latencies[-1],
        per_second=len(latencies) / wall,
        rows_ok=all(report[2] for report in reports) and after - before == processes * events,
    )


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="guide-bench-") as folder:
        yield f"sqlite://{Path(folder) / 'events.sqlite3'}"


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    """``base`` with a throw-away schema first on the search_path."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-c%20search_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def format_table(results: Sequence[Result]) -> str:
    """A Markdown table of ``results``."""
    lines = [
        "| backend | mode | processes | events | p50 ms | p99 ms | max ms | events/s | rows |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(f"| {r.backend} | {r.mode} | {r.processes} | {r.events} | {r.p50:.2f} | {r.p99:.2f} "
                     f"| {r.max:.1f} | {r.per_second:.0f} | {'ok' if r.rows_ok else 'MISSING'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--events", type=int, default=200, help="events per process")
    parser.add_argument("--pace-ms", type=float, default=10.0, help="mean pause between events in paced mode")
    parser.add_argument("--pg-url", help="also measure this PostgreSQL server (a temporary schema is used)")
    args = parser.parse_args(argv)

    backends: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [("sqlite", sqlite_url)]
    if args.pg_url:
        backends.append(("postgresql", functools.partial(postgres_url, args.pg_url)))
    results = []
    for backend, make_url in backends:
        for processes, pace in ((1, 0.0), (args.processes, 0.0), (args.processes, args.pace_ms)):
            with make_url() as url:
                results.append(run(backend, url, processes, args.events, pace))
    print(format_table(results))
    sqlite_p99 = max(r.p99 for r in results if r.backend == "sqlite" and r.processes == args.processes)
    print(f"\nSQLite p99 target <= {TARGET_P99_MS:g} ms with {args.processes} writers: "
          f"{'met' if sqlite_p99 <= TARGET_P99_MS else 'NOT met'} (worst p99 {sqlite_p99:.2f} ms; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0 if all(r.rows_ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
