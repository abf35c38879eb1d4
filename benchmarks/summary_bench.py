"""How long ``summarize()`` takes on a large log, compared with one full scan of the events table.

Fills a fresh store with demo events (1,000,000 by default; SQLite in a temporary folder, and
PostgreSQL too with ``--pg-url``, in a temporary schema that is dropped afterwards), then times,
alternately, ``summarize(store)`` and one full scan (``SELECT sum(elapsed_ms) FROM events``),
each through the store's ``query`` and after a warm-up run; the ratio of the medians is the
result. The target is a ratio of at most 3.

The store has the schema as ``widgets/log`` creates it (the current version, in the table: the
derived tables ``sessions``, ``session_steps``, ``session_days`` and ``step_totals``, brought up
to date by each write, and their indexes and those of the events); nothing is added here. PostgreSQL is vacuumed and analysed
after loading, as autovacuum would; SQLite is left as the guide leaves it (no ANALYZE).

Both times are also taken as this process's CPU time; for SQLite, which runs in this process,
their ratio does not depend on what else the machine is doing (a shared machine makes the
wall-clock ratio noisy). PostgreSQL works in its own processes: only the wall-clock ratio.

    python benchmarks/summary_bench.py [--events 1000000] [--repeat 5] [--pg-url URL] [--sqlite PATH]

Prints a markdown table (machine, versions, date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from benchmarks import cpu_model  # noqa: E402
from widgets import demo  # noqa: E402
from widgets.log import SCHEMA_VERSION, EventStore, open_store  # noqa: E402
from widgets.summary import summarize  # noqa: E402

TARGET_RATIO = 3.0
BASELINE = "SELECT sum(elapsed_ms) FROM events"
SCHEMA = f"widgets.log (v{SCHEMA_VERSION})"


class Result(NamedTuple):
    backend: str
    schema: str
    events: int
    sessions: int
    scan_ms: float
    summary_ms: float
    scan_cpu_ms: float = math.nan
    summary_cpu_ms: float = math.nan

    @property
    def ratio(self) -> float:
        return self.summary_ms / self.scan_ms

    @property
    def cpu_ratio(self) -> float:
        return self.summary_cpu_ms / self.scan_cpu_ms


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and this process's CPU milliseconds of ``action()``."""
    start, cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


def measure(store: EventStore, backend: str, schema: str, events: int, repeat: int) -> Result:
    """Median times of the full scan and of summarize(), run alternately after a warm-up."""
    store.query(BASELINE)
    sessions = summarize(store).sessions
    scans, summaries = [], []
    for _ in range(repeat):
        scans.append(_timed(lambda: store.query(BASELINE)))
        summaries.append(_timed(lambda: summarize(store)))
    cpu = backend == "SQLite"
    return Result(backend, schema, events, sessions, statistics.median(t for t, _ in scans),
                  statistics.median(t for t, _ in summaries),
                  statistics.median(c for _, c in scans) if cpu else math.nan,
                  statistics.median(c for _, c in summaries) if cpu else math.nan)


def fill(store: EventStore, events: int, seed: int) -> float:
    """Write the demo events; the rate in events per second."""
    start = time.perf_counter()
    demo.fill(store, events, seed=seed, start=dt.date(2025, 1, 1), days=60)
    return events / (time.perf_counter() - start)


@contextmanager
def sqlite_store(path: str | None, events: int, seed: int) -> Iterator[tuple[EventStore, Path, float | None]]:
    with tempfile.TemporaryDirectory(prefix="summary-bench-") as folder:
        file = Path(path) if path else Path(folder) / "events.sqlite3"
        rate = None
        with open_store(file) as store:
            (count,), = store.query("SELECT count(*) FROM events")[1]
            if count != events:
                if count:
                    raise SystemExit(f"{file} holds {count} events, not {events}; remove it first")
                rate = fill(store, events, seed)
        with open_store(file) as store:
            yield store, file, rate


@contextmanager
def pg_store(url: str, events: int, seed: int) -> Iterator[tuple[EventStore, str, float]]:
    import psycopg

    schema = f"summary_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    schema_url = f"{url}{sep}options=-c%20search_path%3D{schema}"
    try:
        with open_store(schema_url) as store:
            rate = fill(store, events, seed)
        with psycopg.connect(schema_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE events, sessions, session_steps, session_days, step_totals")
        with open_store(schema_url) as store:
            yield store, schema_url, rate
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def machine() -> str:
    cpu = cpu_model(platform.processor() or platform.machine())
    load = ", load %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cpus} CPUs{load}, {platform.system()} {platform.release()}"


def report(results: Sequence[Result], versions: dict[str, str], rates: dict[str, float]) -> str:
    lines = [
        "## summarize() vs one full scan of the events table",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- demo load rate: " + ", ".join(f"{k} {v:,.0f} events/s" for k, v in rates.items()),
        f"- full scan: `{BASELINE}`; times are medians of alternating runs after a warm-up",
        "",
        "| store | schema | events | sessions | full scan (ms) | summarize() (ms) | ratio | CPU ratio "
        "| target ≤ 3 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        best = r.ratio if math.isnan(r.cpu_ratio) else r.cpu_ratio
        ok = "yes" if best <= TARGET_RATIO else "**no**"
        cpu = "–" if math.isnan(r.cpu_ratio) else f"{r.cpu_ratio:.2f}"
        lines.append(f"| {r.backend} | {r.schema} | {r.events:,} | {r.sessions:,} | {r.scan_ms:.0f} | "
                     f"{r.summary_ms:.0f} | {r.ratio:.2f} | {cpu} | {ok} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", help="also measure PostgreSQL (a temporary schema in this database)")
    parser.add_argument("--sqlite", help="use (and keep) this SQLite file instead of a temporary one")
    args = parser.parse_args(argv)

    results: list[Result] = []
    versions = {"Python": platform.python_version(), "SQLite": sqlite3.sqlite_version,
                "pandas": pd.__version__}
    rates: dict[str, float] = {}
    with sqlite_store(args.sqlite, args.events, args.seed) as (store, file, rate):
        if rate:
            rates["SQLite"] = rate
        print(f"SQLite: measuring {file}", file=sys.stderr)
        results.append(measure(store, "SQLite", SCHEMA, args.events, args.repeat))
    if args.pg_url:
        with pg_store(args.pg_url, args.events, args.seed) as (store, url, rate):
            rates["PostgreSQL"] = rate
            (server,), = store.query("SHOW server_version")[1]
            versions["PostgreSQL"] = server.split()[0]
            print("PostgreSQL: measuring", file=sys.stderr)
            results.append(measure(store, "PostgreSQL", SCHEMA, args.events, args.repeat))
    print(report(results, versions, rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
