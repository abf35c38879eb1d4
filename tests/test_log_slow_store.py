"""A visitor's click never waits for the log store (widgets/log/session.py, widgets/log/postgres.py).

The store is written by one background thread per session: a store that hangs (a PostgreSQL
server that stopped answering, an SQLite file another process keeps locked) holds up that
thread, and the session's notice shows, while clicks return at once. Once the store answers,
every event is written, or counted in ``log_gaps``. A PostgreSQL connection bounds its waits
(statement_timeout, TCP keepalives, tcp_user_timeout).

Each test proves that clicks returned *while* the store was blocked by the event that blocks it:
the store is released only after the clicks are done, so there is no timing to measure.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from pg_server import PostgresServers, fresh_schema

from widgets.log import Event, EventStore, Gap, SessionLogger, StoreUnavailable, open_store

# Generous bounds for things that take microseconds when they work; reached only on failure.
WAIT = 30.0


def stored(path: Path) -> tuple[list[str], int]:
    """(the nodes of the stored events in order, the sum of log_gaps.dropped)."""
    with open_store(path) as store:
        nodes = [e.node for e in store.read_events()]
        gaps = store.query("SELECT coalesce(sum(dropped), 0) FROM log_gaps")[1][0][0]
    return nodes, gaps


class HangingStore(EventStore):
    """A real store whose writes hang until ``release`` is set (a database that stopped answering);
    ``writing`` is set when a write has begun."""

    def __init__(self, store: EventStore, hang: bool = True) -> None:
        self.store = store
        self.dialect, self.placeholder = store.dialect, store.placeholder
        self.writing = threading.Event()
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        self.writing.set()
        if not self.release.wait(WAIT):
            raise StoreUnavailable("no answer")
        self.store.write(events, gaps)

    def query(self, sql, params=()):  # type: ignore[no-untyped-def]
        return self.store.query(sql, params)

    def close(self) -> None:
        self.store.close()


def clicks_in_a_thread(click: Callable[[int], object], count: int) -> tuple[threading.Event, list[object]]:
    """Run ``click(0)`` ... ``click(count - 1)`` on another thread (so that a click that hangs cannot
    hang the test); the event is set once all of them have returned."""
    done, results = threading.Event(), []

    def clicks() -> None:
        for i in range(count):
            results.append(click(i))
        done.set()

    threading.Thread(target=clicks, daemon=True).start()
    return done, results


def event(logger: SessionLogger, node: str) -> Event:
    """An event of the logger's session, as the guide's engine makes them."""
    return Event(dt.datetime.now(dt.UTC), logger.session, node, "next", None, "ko", None)


def test_clicks_return_while_the_store_hangs_and_the_notice_shows(tmp_path: Path) -> None:
    """A paused PostgreSQL server used to hold the kernel inside the click's write: the next click
    was not handled until the database answered again."""
    db = tmp_path / "events.sqlite3"
    store = HangingStore(open_store(db))
    statuses: list[bool] = []
    logger = SessionLogger(store, on_status=statuses.append, buffer_limit=20, rate=float("inf"))
    logger.slow_after = 0.0  # any write in progress counts as hanging: no clock in this test
    try:
        done, results = clicks_in_a_thread(
            lambda i: logger.record(event(logger, f"n{i}")) if i % 2 else logger.log(f"n{i}", "next"), 50)
        assert done.wait(WAIT), "a click waited for the hanging store"
        assert store.writing.wait(WAIT)  # the first click's write hangs ...
        assert not store.release.is_set()  # ... and has hung all along: the clicks did not wait for it
        assert all(results) and len(results) == 50
        assert logger.log("n50", "next")  # a click while the write hangs: the notice shows
        assert statuses == [False] and not logger.healthy
        assert logger.pending > 0 and logger.dropped > 0  # buffered, the oldest dropped and counted
    finally:
        store.release.set()
    assert logger.flush()
    assert statuses == [False, True] and logger.healthy  # the notice goes once the store answers
    logger.close()
    nodes, gaps = stored(db)
    assert len(nodes) + gaps == 51 and gaps == logger.dropped  # every event written or counted
    assert nodes == sorted(nodes, key=lambda n: int(n[1:])) and nodes[-1] == "n50"  # in order


def test_clicks_return_while_another_process_locks_sqlite(tmp_path: Path) -> None:
    """The kernel used to wait up to the store's timeout for the lock in every click (5 s, and
    again after retry_after); now the writer thread waits for it."""
    db = tmp_path / "events.sqlite3"
    store = open_store(db, timeout=WAIT * 2)  # the writer would wait this long for the lock
    logger = SessionLogger(store)
    assert logger.log("before", "enter") and logger.flush()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done, results = clicks_in_a_thread(lambda i: logger.record(event(logger, f"n{i}")), 20)
        assert done.wait(WAIT), "a click waited for the lock"
        assert holder.in_transaction  # the lock was held all along: the clicks did not wait for it
        assert all(results) and logger.pending == 20  # none could be written meanwhile
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert logger.flush()
    assert stored(db) == (["before", *(f"n{i}" for i in range(20))], 0)
    logger.close()
    store.close()


def test_close_does_not_wait_for_a_store_that_never_answers(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """At kernel exit the last attempt is bounded: what the hanging write holds is reported lost."""
    store = HangingStore(open_store(tmp_path / "events.sqlite3"))
    logger = SessionLogger(store, close_timeout=0.2)
    try:
        done, _ = clicks_in_a_thread(lambda i: logger.log(f"n{i}", "next"), 2)
        assert done.wait(WAIT) and store.writing.wait(WAIT)
        with caplog.at_level(logging.ERROR, logger="widgets.log"):
            logger.close()  # returns, the write still hanging
        assert not store.release.is_set()
        assert f"2 events of session {logger.session} are lost" in caplog.text
        assert (logger.pending, logger.dropped) == (0, 2)
        assert not logger.log("n2", "next")  # the session is closed
    finally:
        store.release.set()


# --------------------------------------------------------------------------- PostgreSQL


def _socket_options(conn) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(SO_KEEPALIVE, TCP_USER_TIMEOUT in ms) of the connection's socket, as the kernel has them."""
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", 18)))
    finally:
        sock.close()


@pytest.fixture
def pg_store_url(pg_url: str) -> Iterator[str]:
    with fresh_schema(pg_url) as url:
        yield url


def test_postgres_connection_bounds_its_waits(pg_store_url: str) -> None:
    """A partitioned network or a dead server used to keep a write waiting for minutes (TCP
    retransmissions); statements had no time limit."""
    store = open_store(pg_store_url, timeout=4)
    try:
        conn = store._conn
        assert conn.execute("SHOW statement_timeout").fetchone() == ("4s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("4s",)
        params = conn.info.get_parameters()
        assert {k: params.get(k) for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                           "keepalives_count", "tcp_user_timeout")} == \
            {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "3", "keepalives_count": "3",
             "tcp_user_timeout": "10000"}
        if not conn.info.host.startswith("/"):  # TCP: the socket has them too
            assert _socket_options(conn) == (1, 10000)
        # The summary's read-only queries are not cut short on a large log.
        assert store.query("SHOW statement_timeout")[1] == [("0",)]
    finally:
        store.close()


@pytest.fixture
def private_pg(pg_servers: PostgresServers) -> Iterator[str]:
    """A PostgreSQL server of this test alone (its process gets paused)."""
    with pg_servers.serve() as url:
        yield url


def test_clicks_return_while_the_postgres_server_is_paused(private_pg: str) -> None:
    """The probe's scenario: the server process serving the session is stopped (SIGSTOP); it still
    acknowledges TCP, so no timeout fires, and the click used to wait until it was resumed."""
    store = HangingStore(open_store(private_pg), hang=False)
    statuses: list[bool] = []
    logger = SessionLogger(store, on_status=statuses.append, rate=float("inf"))
    logger.slow_after = 0.0  # any write in progress counts as hanging: no clock in this test
    assert logger.log("before", "enter") and logger.flush()
    backend = store.query("SELECT pg_backend_pid()")[1][0][0]
    store.writing.clear()
    os.kill(backend, signal.SIGSTOP)
    try:
        done, results = clicks_in_a_thread(lambda i: logger.log(f"n{i}", "next"), 30)
        assert done.wait(WAIT), "a click waited for the paused server"
        assert store.writing.wait(WAIT)  # the writer is inside a write the server cannot answer
        assert all(results)
        assert logger.log("n30", "next")  # a click now sees the write in progress: the notice shows
        assert statuses == [False] and logger.pending == 31
    finally:
        os.kill(backend, signal.SIGCONT)  # before anything else can fail
    assert logger.wait_idle(WAIT) and logger.flush()
    assert statuses == [False, True]
    logger.close()
    with open_store(private_pg) as check:
        assert [e.node for e in check.read_events()] == ["before", *(f"n{i}" for i in range(31))]
    store.close()
