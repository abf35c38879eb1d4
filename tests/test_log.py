"""Tests of the interaction log (widgets/log.py): SQLite and PostgreSQL stores, SessionLogger."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import fresh_schema, schema_url

import widgets.log as log
from widgets.log import (
    ACTIONS,
    LANGS,
    Event,
    EventStore,
    SchemaVersionError,
    SessionLogger,
    StoreCorrupt,
    StoreUnavailable,
    open_store,
)

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
T0 = dt.datetime(2025, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
TYPED = ["내 주문번호 123-4567890", "<img src=x>", "john@example.com"]
NEWER = log.SCHEMA_VERSION + 1  # a schema version this code does not know


# --------------------------------------------------------------------------- helpers


class FakeClock:
    """UTC datetimes advancing by ``step`` on every call."""

    def __init__(self, start: dt.datetime = T0, step: dt.timedelta = dt.timedelta(milliseconds=1500)) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> dt.datetime:
        self.now += self.step
        return self.now


class Switch:
    """A store factory whose target can be changed; ``None`` means unavailable."""

    def __init__(self, target: str | None, timeout: float = 0.5) -> None:
        self.target = target
        self.timeout = timeout
        self.calls = 0

    def __call__(self) -> EventStore:
        self.calls += 1
        if self.target is None:
            raise StoreUnavailable("switched off")
        return open_store(self.target, timeout=self.timeout)


def rows(url: str, sql: str) -> list[tuple]:
    with open_store(url) as store:
        return store.query(sql)[1]


def session_events(url: str, session: str) -> list[Event]:
    with open_store(url) as store:
        return [e for e in store.read_events() if e.session == session]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(path: Path) -> list[str]:
    return [s for s in ("-wal", "-shm", "-journal") if Path(f"{path}{s}").exists()]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


@pytest.fixture
def pg_store_url(pg_url: str) -> Iterator[str]:
    """The test server with a fresh, empty schema first on the search_path (isolates each test)."""
    with fresh_schema(pg_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'events.sqlite3'}"
    return request.getfixturevalue("pg_store_url")


# --------------------------------------------------------------------------- round trip, schema


def test_round_trip_and_elapsed(store_url: str) -> None:
    clock = FakeClock()
    logger = SessionLogger(functools.partial(open_store, store_url), clock=clock)
    assert logger.log("start", "enter", lang="en")
    assert logger.log("q.order-status", "choose", option="opt_1", lang="en")
    assert logger.log("q.order-status", "language", lang="ko")
    assert logger.log("end", "finish")
    assert logger.wait_idle(10)  # the writer thread writes them
    assert (logger.healthy, logger.pending, logger.dropped, logger.refused) == (True, 0, 0, 0)
    logger.close()

    step = dt.timedelta(milliseconds=1500)
    s = logger.session
    assert re.fullmatch(r"[0-9a-f]{32}", s)
    assert session_events(store_url, s) == [
        Event(T0, s, "start", "enter", None, "en", None),
        Event(T0 + step, s, "q.order-status", "choose", "opt_1", "en", 1500),
        Event(T0 + 2 * step, s, "q.order-status", "language", None, "ko", 1500),
        Event(T0 + 3 * step, s, "end", "finish", None, "ko", 1500),
    ]
    assert sorted(rows(store_url, "SELECT key, value FROM meta")) == [
        ("derived_through", "4"), ("schema_version", str(log.SCHEMA_VERSION))]
    assert rows(store_url, "SELECT count(*) FROM log_gaps") == [(0,)]


def test_store_reports_dialect_and_columns(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.dialect == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
        store.write([Event(T0, "s1", "n1", "enter", None, "ko", None)])
        columns, result = store.query(
            f"SELECT node, count(*) AS n FROM events WHERE lang = {store.placeholder} GROUP BY node", ["ko"])
        assert columns == ["node", "n"]
        assert result == [("n1", 1)]


def test_query_is_read_only(store_url: str) -> None:
    with open_store(store_url) as store, pytest.raises(StoreUnavailable):
        store.query("DELETE FROM meta RETURNING key")
    assert rows(store_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(log.SCHEMA_VERSION),)]


def test_sessions_get_distinct_random_ids(db: Path) -> None:
    with open_store(db) as store:
        ids = {SessionLogger(store).session for _ in range(100)}
    assert len(ids) == 100


def test_elapsed_counts_from_the_last_stored_event(db: Path) -> None:
    clock = FakeClock(step=dt.timedelta(seconds=1))
    with open_store(db) as store:
        logger = SessionLogger(store, clock=clock)
        logger.log("a", "enter")
        assert not logger.log("a", "typed text")  # refused: not stored, not a reference point
        logger.log("b", "next")
        assert logger.wait_idle(10)
        assert [e.elapsed_ms for e in store.read_events()] == [None, 2000]


def test_newer_schema_is_refused_untouched_sqlite(db: Path) -> None:
    with open_store(db) as store:
        store.write([Event(T0, "s1", "n1", "enter", None, "ko", None)])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(NEWER),))
    conn.close()
    before = sha256(db)

    with pytest.raises(SchemaVersionError) as info:
        open_store(db)
    assert str(db) in str(info.value) and f"version {NEWER}" in str(info.value)
    assert sha256(db) == before

    logger = SessionLogger(Switch(str(db)))
    assert logger.log("n2", "enter") and logger.wait_idle(10)
    assert not logger.healthy and logger.pending == 1
    assert sha256(db) == before


@pytest.mark.postgres
def test_newer_schema_is_refused_untouched_postgres(pg_store_url: str) -> None:
    with open_store(pg_store_url) as store:
        store.write([Event(T0, "s1", "n1", "enter", None, "ko", None)])
    import psycopg

    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(NEWER),))
    with pytest.raises(SchemaVersionError, match=f"version {NEWER}"):
        open_store(pg_store_url)
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(str(NEWER),)]
        assert conn.execute("SELECT node FROM events").fetchall() == [("n1",)]


def test_migration_adds_a_column_and_keeps_old_rows(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Event(T0, "s1", "n1", "enter", None, "ko", None)
    with open_store(store_url) as store:
        store.write([old])
    later = log.Migration(NEWER, ("ALTER TABLE events ADD COLUMN variant TEXT",),
                          ("ALTER TABLE events ADD COLUMN IF NOT EXISTS variant TEXT",))
    monkeypatch.setattr(log.migrations, "MIGRATIONS", (*log.MIGRATIONS, later))
    with open_store(store_url) as store:
        assert store.read_events() == [old]
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(NEWER),)]
        columns, _ = store.query("SELECT * FROM events")
        assert columns[-1] == "variant"


# --------------------------------------------------------------------------- schema version 2: the sessions rollup

SESSION_COLUMNS = "session, firsts, last_id, last_node, finishes, switches"


def mixed_events(seed: int = 5, sessions: int = 24, per: int = 30) -> list[Event]:
    """Overlapping sessions of random events, in time order: node ids that contain one another
    (a, ab, b.a), contact and path choices with and without an option, outcomes; most sessions start with
    one first event (elapsed_ms NULL), s3 has none and s7 two."""
    rng = random.Random(seed)
    nodes = ["problem", "order", "channel", "phone", "a", "ab", "b.a", "done"]
    events = []
    for k in range(sessions):
        for i in range(per):
            first = (i == 0 and k % 10 != 3) or (k % 10 == 7 and i == 9)
            events.append(Event(T0 + dt.timedelta(seconds=7 * k + 3 * i), f"s{k}", rng.choice(nodes),
                                rng.choice(ACTIONS), rng.choice([None, "call", "chat", "x"]),
                                rng.choice(LANGS), None if first else rng.randrange(10_000)))
    events.sort(key=lambda e: e.ts)
    return events


def write_in_batches(store: EventStore, events: list[Event], seed: int = 1) -> None:
    """One event at a time, and batches of up to 40 (several sessions, nodes entered twice)."""
    rng = random.Random(seed)
    i = 0
    while i < len(events):
        n = rng.choice([1, 1, 2, 5, 40])
        store.write(events[i:i + n])
        i += n


def expected_sessions(store: EventStore) -> list[tuple]:
    """The derived tables' contents, computed here from the stored events (in id order): each
    session's row with the steps it entered and its last answer at each step in the order given,
    and each last answer as (session, node, option, event id): (sorted session rows, sorted answer
    rows)."""
    _, result = store.query("SELECT id, ts, session, node, action, option, lang, elapsed_ms FROM events ORDER BY id")
    rollup: dict[str, dict] = {}
    answers: dict[tuple[str, str], tuple] = {}
    for id_, ts, session, node, action, option, lang, elapsed_ms in result:
        r = rollup.setdefault(session, {"firsts": 0, "finishes": 0, "switches": 0, "leaves": {},
                                        "outcome": (None, None), "entered": set(), "answers": {}})
        if action in ("choose", "next", "back", "restart") and elapsed_ms is not None:
            r["leaves"][node] = r["leaves"].get(node, 0) + 1
        if elapsed_ms is None:
            r["firsts"] += 1
        r["last"] = (id_, node)
        r["finishes"] += action == "finish"
        r["switches"] += action == "language"
        if action == "outcome":
            r["outcome"] = (id_, option)
        if action == "choose":
            answers[session, node] = (session, node, option, id_)
            r["answers"].pop(node, None)  # a new answer at a step moves it to the end
            r["answers"][node] = option
        if action == "enter":
            r["entered"].add(node)
    return [sorted((s, r["firsts"], *r["last"], r["finishes"], r["switches"],
                    *r["outcome"], frozenset(r["entered"]),
                    "|" + "".join(f"{n}={o or ''}|" for n, o in r["answers"].items()),
                    frozenset(r["leaves"].items()))
                   for s, r in rollup.items()),
            sorted(answers.values())]


def stored_sessions(store: EventStore) -> list[tuple]:
    """The store's derived tables in the shape of expected_sessions: each ``sessions`` row with its
    last outcome (the one of highest id in ``session_steps``), the steps it entered and its
    answers there in the order given, and the answers as (session, node, option, event id):
    (sorted session rows, sorted answer rows)."""
    _, result = store.query(f"SELECT {SESSION_COLUMNS} FROM sessions")
    _, steps = store.query("SELECT session, node, entered, leaves, answer_id, answer, outcome_id, outcome "
                           "FROM session_steps")
    entered: dict[str, set[str]] = {}
    left: dict[str, set[tuple[str, int]]] = {}
    answers: dict[str, list[tuple[int, str, str | None]]] = {}
    outcomes: dict[str, tuple[int, str | None]] = {}
    for session, node, was_entered, leaves, answer_id, answer, outcome_id, outcome in steps:
        assert was_entered in (0, 1) and leaves >= 0
        assert was_entered or leaves or answer_id is not None or outcome_id is not None
        if leaves:
            left.setdefault(session, set()).add((node, leaves))
        if was_entered:
            entered.setdefault(session, set()).add(node)
        if answer_id is not None:
            answers.setdefault(session, []).append((answer_id, node, answer))
        if outcome_id is not None and outcome_id > outcomes.get(session, (0, None))[0]:
            outcomes[session] = (outcome_id, outcome)
    stored = []
    for row in result:
        assert all(ID.fullmatch(v) for v in (row[0], row[3]) if v is not None)
        given = sorted(answers.get(row[0], []))
        stored.append((*row, *outcomes.get(row[0], (None, None)), frozenset(entered.get(row[0], ())),
                       "|" + "".join(f"{n}={o or ''}|" for _, n, o in given),
                       frozenset(left.get(row[0], ()))))
    assert set(entered) | set(answers) | set(outcomes) | set(left) <= {row[0] for row in result}
    return [sorted(stored), sorted((s, n, o, i) for s, items in answers.items() for i, n, o in items)]


def index_names(store: EventStore) -> set[str]:
    if store.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger')"
    else:
        sql = ("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() UNION ALL "
               "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    return {name for (name,) in store.query(sql)[1]}


def make_old_store(url: str, events: list[Event], monkeypatch: pytest.MonkeyPatch,
                   version: int = 1) -> None:
    """A store as an earlier version of this code made it (schema ``version``), with ``events``."""
    with monkeypatch.context() as m:
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:version])
        with open_store(url) as store:
            write_in_batches(store, events)
            assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(version),)]
            if version == 1:
                assert "events_sessions" not in index_names(store)


def test_rollup_follows_every_write(store_url: str) -> None:
    events = mixed_events()
    with open_store(store_url) as store:
        write_in_batches(store, events)
        assert store.read_events() == events
        expected = expected_sessions(store)
        assert len(expected[0]) == 24 and stored_sessions(store) == expected
        assert {node for _, node, _, _ in expected[1]} >= {"problem", "order", "channel", "phone", "ab"}
        firsts = {row[0]: row[1] for row in expected[0]}
        assert (firsts["s3"], firsts["s7"], firsts["s0"]) == (0, 2, 1)


def test_rollup_is_kept_by_writers_that_do_not_know_it(store_url: str) -> None:
    """Rows inserted by other code (e.g. a kernel still running the previous version during an
    upgrade, which inserts one row per statement) are rolled up too: by the next write, or by
    ``refresh()``."""
    events = mixed_events(seed=8, sessions=6)
    with open_store(store_url) as store:
        store.write(events[:20])
        sql = f"INSERT INTO events ({log._EVENT_COLUMNS}) VALUES ({', '.join([store.placeholder] * 7)})"
        if store.dialect == "sqlite":
            with sqlite3.connect(store.path) as conn:
                conn.executemany(sql, [(log._sqlite_ts(e.ts), *e[1:]) for e in events[20:]])
            conn.close()
        else:
            import psycopg

            with psycopg.connect(store_url, autocommit=True) as conn:
                conn.cursor().executemany(sql, [tuple(e) for e in events[20:]])
        assert store.read_events() == events
        assert stored_sessions(store) != expected_sessions(store)  # not yet
        store.refresh()
        assert stored_sessions(store) == expected_sessions(store)
        more = mixed_events(seed=9, sessions=4)
        if store.dialect == "sqlite":
            with sqlite3.connect(store.path) as conn:
                conn.executemany(sql, [(log._sqlite_ts(e.ts), *e[1:]) for e in more[:-1]])
            conn.close()
        else:
            with psycopg.connect(store_url, autocommit=True) as conn:
                conn.cursor().executemany(sql, [tuple(e) for e in more[:-1]])
        store.write(more[-1:])  # the next write folds in what came before it
        assert store.read_events() == events + more
        assert stored_sessions(store) == expected_sessions(store)


def test_v1_store_migrates_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events = mixed_events(seed=6)
    make_old_store(store_url, events, monkeypatch)
    with open_store(store_url) as store:
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(log.SCHEMA_VERSION),)]
        assert store.read_events() == events  # every row kept, in order
        assert {"events_choose", "events_leave"} <= index_names(store)
        assert not {"events_sessions", "events_session_answers"} & index_names(store)  # no trigger
        assert stored_sessions(store) == expected_sessions(store)  # filled from the old rows
        more = mixed_events(seed=7)
        write_in_batches(store, more)  # sessions s0... continue, and the rollup follows
        assert store.read_events() == events + more
        assert stored_sessions(store) == expected_sessions(store)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_v2_v3_and_v4_stores_migrate_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch,
                                              version: int) -> None:
    """Schema version 4: the step-named columns go, session_answers is filled from the stored
    events; version 5: sessions.answers is filled from session_answers, in the order the answers
    were given; both are kept by the new triggers from then on."""
    events = mixed_events(seed=9)
    make_old_store(store_url, events, monkeypatch, version=version)
    with open_store(store_url) as store:
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(log.SCHEMA_VERSION),)]
        assert store.read_events() == events
        expected = expected_sessions(store)
        assert stored_sessions(store) == expected
        more = mixed_events(seed=10)
        write_in_batches(store, more)
        assert store.read_events() == events + more
        assert stored_sessions(store) == expected_sessions(store)
        columns, _ = store.query("SELECT * FROM sessions")
        assert not {"contact_id", "contact_node", "problem_id", "order_option"} & set(columns)


def _fresh_copy(store: EventStore, url: str) -> list:
    """The rollup a new store computes from the same events, written one by one and in batches."""
    events = store.read_events()
    with open_store(url) as fresh:
        write_in_batches(fresh, events, seed=4)
        assert fresh.read_events() == events
        return stored_sessions(fresh)


def _without_ids(rollup: list) -> list:
    """A rollup without its event ids (the fresh store numbers the same events from 1 too, but
    an old store may have gaps in its ids)."""
    sessions, answers = rollup
    return [sorted((*row[:2], *row[3:6], *row[7:]) for row in sessions),
            sorted((s, n, o) for s, n, o, _ in answers)]


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_real_old_sqlite_files_migrate_in_place(tmp_path: Path, version: int) -> None:
    """Files written by the previous code at schema versions 1 to 4 (tests/fixtures, made with the
    demo's events and odd sessions: unknown steps, choices with and without options): every event
    and gap row is kept, and the rollup equals what a new store computes from the same events."""
    db = tmp_path / "old.sqlite3"
    shutil.copy(ROOT / "tests" / "fixtures" / f"log-v{version}.sqlite3", db)
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        gaps = conn.execute("SELECT * FROM log_gaps ORDER BY id").fetchall()
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(str(version),)]
    conn.close()
    with open_store(db) as store:
        assert store.schema_version() == log.SCHEMA_VERSION
        assert store.query("SELECT * FROM events ORDER BY id")[1] == before
        assert store.query("SELECT * FROM log_gaps ORDER BY id")[1] == gaps
        migrated = stored_sessions(store)
        assert migrated == expected_sessions(store)
        assert _without_ids(migrated) == _without_ids(_fresh_copy(store, str(tmp_path / "fresh.sqlite3")))


@pytest.mark.postgres
@pytest.mark.parametrize("version", [1, 2, 3])
def test_old_postgres_stores_migrate_in_place(pg_store_url: str, pg_url: str, version: int) -> None:
    """A PostgreSQL store made by the previous code's statements at schema version 1, 2 or 3 (the
    statements as that code ran them, tests/fixtures/log-migrations-v1-v3.json), its events inserted
    through that version's triggers: every row is kept and the rollup equals a fresh store's."""
    import psycopg

    old = json.loads((ROOT / "tests" / "fixtures" / "log-migrations-v1-v3.json").read_text())
    events = mixed_events(seed=12)
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        with conn.transaction():
            for v in range(1, version + 1):
                for statement in old[str(v)]["postgresql"]:
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(version),))
        rng = random.Random(2)
        i = 0
        while i < len(events):  # one row per statement, and batches (the old trigger's two ways)
            n = rng.choice([1, 3, 30])
            conn.cursor().execute(
                f"INSERT INTO events ({log._EVENT_COLUMNS}) SELECT * FROM unnest(%s::timestamptz[], "
                "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[])",
                [list(c) for c in zip(*events[i:i + n])])
            i += n
        conn.execute("INSERT INTO log_gaps (ts, session, dropped) VALUES (%s, 's1', 4)", (T0,))
    with open_store(pg_store_url) as store:
        assert store.schema_version() == log.SCHEMA_VERSION
        assert store.read_events() == events
        assert store.query("SELECT session, dropped FROM log_gaps")[1] == [("s1", 4)]
        migrated = stored_sessions(store)
        assert migrated == expected_sessions(store)
        name = f"f_{uuid.uuid4().hex[:12]}"
        try:
            assert _without_ids(migrated) == _without_ids(_fresh_copy(store, schema_url(pg_url, name)))
        finally:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {name} CASCADE")


def test_v1_store_opened_by_many_processes_at_once_migrates_once_sqlite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite://{tmp_path / 'events.sqlite3'}"
    make_old_store(url, mixed_events(), monkeypatch)
    assert open_at_once(url) == []
    with open_store(url) as store:
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(log.SCHEMA_VERSION),)]
        assert stored_sessions(store) == expected_sessions(store)


@pytest.mark.postgres
def test_v1_store_opened_by_many_processes_at_once_migrates_once_postgres(
        pg_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_old_store(pg_store_url, mixed_events(), monkeypatch)
    assert open_at_once(pg_store_url) == []
    with open_store(pg_store_url) as store:
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(log.SCHEMA_VERSION),)]
        assert stored_sessions(store) == expected_sessions(store)


def test_read_only_v1_store_is_not_migrated(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_old_store(str(db), mixed_events(sessions=3), monkeypatch)
    before = sha256(db)
    with open_store(f"sqlite://{db}?mode=ro") as store:
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [("1",)]
    assert sha256(db) == before


# --------------------------------------------------------------------------- privacy


def test_typed_text_never_reaches_the_store(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with open_store(db) as store:
        logger = SessionLogger(store)
        logger.log("start", "enter")
        refused = 0
        for text in [*TYPED, "Start", "start\n", "a" * 65, "", " start"]:
            for args, kwargs in (
                ((text, "enter"), {}),
                (("start", "choose"), {"option": text}),
                (("start", text), {}),
                (("start", "enter"), {"lang": text}),
            ):
                assert logger.log(*args, **kwargs) is False  # refused, not raised
                refused += 1
        assert not logger.log(123, "enter")  # type: ignore[arg-type]
        assert not logger.log("start", "enter", option=["x"])  # type: ignore[arg-type]
        logger.log("end", "finish", option="ok")
        assert logger.wait_idle(10)
        assert logger.healthy and logger.refused == refused + 2 and logger.pending == 0

        fine = Event(T0, "s1", "fine", "enter", None, "ko", None)
        for bad in (
            (T0, "s1", TYPED[0], "enter", None, "ko", None),
            (T0, "s1", "n", "enter", TYPED[2], "ko", None),
            (T0, TYPED[1], "n", "enter", None, "ko", None),
            (T0.replace(tzinfo=None), "s1", "n", "enter", None, "ko", None),
            (T0, "s1", "n", "enter", None, "ko", -5),
            (T0, "s1", "n", "typed", None, "ko", None),
            (T0, "s1", "n", "enter", None, "fr", None),
        ):
            with pytest.raises(ValueError) as refused_where_made:
                Event(*bad)  # an Event cannot even be made of it
            assert not any(text in str(refused_where_made.value) for text in TYPED)
            with pytest.raises(ValueError):
                fine._replace(node=bad[2], option=bad[4], session=bad[1], ts=bad[0], elapsed_ms=bad[6],
                              action=bad[3], lang=bad[5])
            with pytest.raises(ValueError, match="not an Event"):
                store.write([fine, bad])  # a plain tuple is refused, and nothing is written
        with pytest.raises(ValueError, match="not a Gap"):
            store.write([fine], [(T0, "s1", 3)])

        events = store.read_events()
        assert [(e.node, e.action, e.option) for e in events] == [("start", "enter", None), ("end", "finish", "ok")]
        for e in events:
            assert all(ID.fullmatch(v) for v in (e.session, e.node, e.action, e.lang))

    stored = b"".join(Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists())
    for text in TYPED:
        for needle in (text, *text.split()):
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                assert needle.encode(encoding) not in stored
            assert needle not in caplog.text


@pytest.mark.postgres
def test_typed_text_never_reaches_postgres(pg_store_url: str) -> None:
    with open_store(pg_store_url) as store:
        logger = SessionLogger(store)
        for text in TYPED:
            assert not logger.log(text, "enter")
            assert not logger.log("n", "choose", option=text)
        logger.log("n", "enter")
        assert logger.wait_idle(10)
        assert logger.healthy and logger.refused == 2 * len(TYPED)
        _, result = store.query("SELECT * FROM events")
    flat = " ".join(str(v) for row in result for v in row)
    assert len(result) == 1
    assert all(text not in flat for text in TYPED)


# --------------------------------------------------------------------------- concurrency


def _writer(url: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue,
            count: int) -> None:
    """One kernel: wait for the others, then log ``count`` events as one visitor."""
    if url.startswith("postgres"):
        import psycopg  # noqa: F401  (imported before the barrier, so that all open the store at once)
    barrier.wait(timeout=120)
    logger = SessionLogger(functools.partial(open_store, url, timeout=30))  # generous: CI may be loaded
    accepted = sum(
        logger.log(f"node-{i % 7}", ACTIONS[i % len(ACTIONS)], f"opt-{i}" if i % 2 else None, LANGS[i % 2])
        for i in range(count)
    )
    logger.wait_idle(120)
    results.put((logger.session, accepted, logger.healthy, logger.pending, logger.dropped))
    logger.close()


def run_writers(url: str, processes: int = 16, count: int = 50) -> None:
    """``processes`` fresh processes open the store at once (it may not exist yet) and write."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(url, barrier, results, count)) for _ in range(processes)]
    for w in workers:
        w.start()
    reports = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert all(r[1:] == (count, True, 0, 0) for r in reports), reports

    with open_store(url) as store:
        assert store.query("SELECT count(*) FROM events")[1] == [(processes * count,)]
        events = store.read_events()
    by_session: dict[str, list[Event]] = {}
    for e in events:
        by_session.setdefault(e.session, []).append(e)
    assert sorted(by_session) == sorted(r[0] for r in reports)
    for session_events_ in by_session.values():
        assert [e.option for e in session_events_] == [f"opt-{i}" if i % 2 else None for i in range(count)]
        assert session_events_[0].elapsed_ms is None
        assert all(e.elapsed_ms is not None for e in session_events_[1:])


@pytest.mark.slow
def test_many_processes_write_at_once_sqlite(tmp_path: Path) -> None:
    run_writers(f"sqlite://{tmp_path / 'new-folder' / 'events.sqlite3'}")


@pytest.mark.postgres
def test_many_processes_write_at_once_postgres(pg_store_url: str) -> None:
    run_writers(pg_store_url)


def _opener(url: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait(timeout=60)
    try:
        open_store(url, timeout=30).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(repr(exc))


def open_at_once(url: str, processes: int = 16) -> list[str]:
    """Forked processes (modules already imported) open one store at the same moment."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    openers = [ctx.Process(target=_opener, args=(url, barrier, results)) for _ in range(processes)]
    for p in openers:
        p.start()
    outcomes = [results.get(timeout=120) for _ in openers]
    for p in openers:
        p.join(timeout=60)
    return [o for o in outcomes if o != "ok"]


def test_open_waits_for_a_concurrent_creator(db: Path) -> None:
    """Another process holds the write lock on a fresh file: opening waits, it does not fail.

    (SQLite reports SQLITE_BUSY at once, without its busy handler, for the
    journal mode switch in this situation.)
    """
    sqlite3.connect(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def opener() -> None:
        try:
            open_store(db, timeout=60).close()
            outcome.append("ok")
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=opener)
    thread.start()
    thread.join(0.5)  # give it time to run into the lock (not an assertion)
    holder.execute("COMMIT")
    holder.close()
    thread.join(60)
    assert outcome == ["ok"]
    assert rows(str(db), "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(log.SCHEMA_VERSION),)]


@pytest.mark.slow
def test_many_processes_create_the_store_at_once_sqlite(tmp_path: Path) -> None:
    for round_ in range(10):
        url = f"sqlite://{tmp_path / str(round_) / 'events.sqlite3'}"
        assert open_at_once(url) == []
        assert rows(url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(log.SCHEMA_VERSION),)]


@pytest.mark.postgres
def test_many_processes_create_the_store_at_once_postgres(pg_store_url: str) -> None:
    assert open_at_once(pg_store_url) == []
    assert rows(pg_store_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(log.SCHEMA_VERSION),)]


# --------------------------------------------------------------------------- store unavailable


def test_unwritable_folder_then_back(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    path = blocker / "data" / "events.sqlite3"
    statuses: list[bool] = []
    factory = Switch(str(path))
    logger = SessionLogger(factory, on_status=statuses.append, retry_after=3600)

    assert logger.log("a", "enter")  # does not raise
    assert logger.log("b", "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (False, 2, [False])
    assert factory.calls == 1  # no retry on every click before retry_after

    blocker.unlink()  # the folder can be created now
    assert logger.flush()
    assert (logger.healthy, logger.pending, statuses) == (True, 0, [False, True])
    assert [e.node for e in session_events(str(path), logger.session)] == ["a", "b"]


@pytest.mark.postgres
def test_unreachable_postgres_then_back(pg_store_url: str) -> None:
    factory = Switch(f"postgresql://guide:secret@127.0.0.1:{closed_port()}/nowhere")
    with pytest.raises(StoreUnavailable) as info:
        factory()
    assert "secret" not in str(info.value)

    statuses: list[bool] = []
    logger = SessionLogger(factory, on_status=statuses.append, retry_after=0)
    for node in ("a", "b", "c"):
        assert logger.log(node, "enter")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (False, 3, [False])

    factory.target = pg_store_url
    assert logger.log("d", "next")  # the writer retries (now: retry_after=0) and writes the backlog first
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (True, 0, [False, True])
    assert [e.node for e in session_events(pg_store_url, logger.session)] == ["a", "b", "c", "d"]


@pytest.mark.postgres
def test_lost_postgres_connection_then_back(pg_store_url: str) -> None:
    import psycopg

    store = open_store(pg_store_url)
    logger = SessionLogger(store, retry_after=3600)
    logger.log("a", "enter")
    assert logger.wait_idle(10)
    with psycopg.connect(pg_store_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert logger.log("b", "next")
    assert logger.wait_idle(10)
    assert not logger.healthy and logger.pending == 1
    assert logger.flush()  # the store reconnects
    assert logger.healthy
    assert [e.node for e in session_events(pg_store_url, logger.session)] == ["a", "b"]
    store.close()


def test_read_only_connection_then_back(db: Path) -> None:
    open_store(db).close()
    factory = Switch(f"sqlite://{db}?mode=ro")
    with factory() as ro, pytest.raises(StoreUnavailable, match="readonly"):
        ro.write([Event(T0, "s1", "n1", "enter", None, "ko", None)])

    logger = SessionLogger(factory, retry_after=0)
    assert logger.log("a", "enter") and logger.log("b", "next")
    assert logger.wait_idle(10)
    assert not logger.healthy and logger.pending == 2
    factory.target = str(db)
    assert logger.log("c", "back")
    assert logger.wait_idle(10)
    assert logger.healthy and logger.pending == 0
    assert [e.node for e in session_events(str(db), logger.session)] == ["a", "b", "c"]


def _read_only_visitor(path: str, uid: int | None, results: multiprocessing.Queue,
                       writable: multiprocessing.synchronize.Event) -> None:
    """Log as a user who may not write the store, then again once the store is writable."""
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    logger = SessionLogger(Switch(path), retry_after=3600)
    for node in ("a", "b", "c"):
        logger.log(node, "enter")
    logger.wait_idle(60)
    results.put((logger.healthy, logger.pending, logger.session))
    writable.wait(timeout=60)
    logger.flush()
    results.put((logger.healthy, logger.pending, logger.session))


def test_read_only_file_permissions_then_back() -> None:
    """A store the process may not write (file and folder read-only for it).

    Root ignores permission bits, so as root the visitor process drops its
    privileges to an unprivileged uid first; the permissions then really apply.
    """
    folder = Path(tempfile.mkdtemp(prefix="guide-ro-"))
    try:
        path = folder / "events.sqlite3"
        with open_store(path) as store:
            store.write([Event(T0, "s1", "old", "enter", None, "ko", None)])
        assert not sidecars(path)
        path.chmod(0o444)
        folder.chmod(0o555)

        ctx = multiprocessing.get_context("fork")
        results, writable = ctx.Queue(), ctx.Event()
        uid = 65534 if os.geteuid() == 0 else None
        child = ctx.Process(target=_read_only_visitor, args=(str(path), uid, results, writable))
        child.start()
        try:
            healthy, pending, session = results.get(timeout=60)
            assert (healthy, pending) == (False, 3)
            folder.chmod(0o777)
            path.chmod(0o666)
            writable.set()
            assert results.get(timeout=60) == (True, 0, session)
        finally:
            writable.set()
            child.join(timeout=60)
        assert child.exitcode == 0
        assert [e.node for e in session_events(str(path), session)] == ["a", "b", "c"]
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_locked_store_then_back(db: Path) -> None:
    store = open_store(db, timeout=0.2)
    clock = FakeClock()
    logger = SessionLogger(store, clock=clock, retry_after=3600)
    assert logger.log("a", "enter") and logger.wait_idle(10)

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.write([Event(T0, "s1", "n1", "enter", None, "ko", None)])
        assert logger.log("b", "next")
        assert logger.log("c", "back")
        assert logger.wait_idle(10)
        assert not logger.healthy and logger.pending == 2
    finally:
        holder.execute("COMMIT")
        holder.close()

    assert logger.flush() and logger.healthy
    events = session_events(str(db), logger.session)
    assert [(e.node, e.elapsed_ms) for e in events] == [("a", None), ("b", 1500), ("c", 1500)]
    store.close()


def test_buffer_overflow_is_counted_and_recorded(db: Path) -> None:
    factory = Switch(None)
    logger = SessionLogger(factory, buffer_limit=5, retry_after=0)
    for i in range(12):
        assert logger.log(f"n{i}", "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, logger.dropped) == (False, 5, 7)

    factory.target = str(db)
    assert logger.flush()
    assert (logger.healthy, logger.pending, logger.dropped) == (True, 0, 7)
    assert [e.node for e in session_events(str(db), logger.session)] == [f"n{i}" for i in range(7, 12)]
    assert rows(str(db), "SELECT session, dropped FROM log_gaps") == [(logger.session, 7)]

    logger.log("n12", "finish")  # later drops only: no second gap row
    assert logger.wait_idle(10) and logger.pending == 0
    assert rows(str(db), "SELECT count(*) FROM log_gaps") == [(1,)]


def test_status_callback_only_on_change_and_may_fail(db: Path) -> None:
    calls: list[bool] = []

    def on_status(healthy: bool) -> None:
        calls.append(healthy)
        raise RuntimeError("a broken notice must not break logging")

    factory = Switch(None)
    logger = SessionLogger(factory, on_status=on_status, retry_after=0)
    for _ in range(3):
        logger.log("a", "enter")
    assert logger.wait_idle(10)
    factory.target = str(db)
    for _ in range(3):
        logger.log("a", "enter")
    assert logger.wait_idle(10)
    assert calls == [False, True]
    assert logger.healthy and logger.pending == 0


# --------------------------------------------------------------------------- corrupt or foreign files


def _assert_refused_untouched(path: Path, reason: str) -> None:
    before = sha256(path)
    with pytest.raises(StoreCorrupt, match=reason) as info:
        open_store(path)
    assert str(path) in str(info.value)
    logger = SessionLogger(Switch(str(path)))
    assert logger.log("a", "enter") and logger.wait_idle(10) and not logger.healthy
    assert sha256(path) == before
    assert sidecars(path) == []


def test_random_bytes_file_is_refused_untouched(db: Path) -> None:
    db.write_bytes(random.Random(7).randbytes(8192))
    _assert_refused_untouched(db, "is not an SQLite database")


def test_damaged_sqlite_file_is_refused_untouched(db: Path) -> None:
    db.write_bytes(b"SQLite format 3\x00" + random.Random(7).randbytes(8192 - 16))
    _assert_refused_untouched(db, "damaged or not a log database")


def test_foreign_sqlite_database_is_refused_untouched(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (name TEXT, email TEXT)")
    conn.execute("INSERT INTO customers VALUES ('someone', 'someone@example.com')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(db, "database of something else")


@pytest.mark.postgres
def test_foreign_events_table_in_postgres_is_refused(pg_store_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (what TEXT)")
        with pytest.raises(StoreCorrupt):
            open_store(pg_store_url)
        assert conn.execute("SELECT to_regclass('meta')").fetchone() == (None,)


# --------------------------------------------------------------------------- configuration, imports


def test_default_location_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUIDE_LOG_URL", raising=False)
    monkeypatch.delenv("GUIDE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # the user's data folder, not the code's folder
    assert log.log_url() == f"sqlite://{tmp_path / 'xdg' / 'amazon-contact-guide' / 'events.sqlite3'}"

    monkeypatch.setenv("GUIDE_DATA_DIR", str(tmp_path / "made" / "here"))
    with open_store() as store:
        assert isinstance(store, log.SQLiteStore)
        assert store.path == tmp_path / "made" / "here" / "events.sqlite3"
    assert store.path.exists()

    other = tmp_path / "other.sqlite3"
    monkeypatch.setenv("GUIDE_LOG_URL", f"sqlite://{other}")
    with open_store() as store:
        assert store.path == other
    monkeypatch.setenv("GUIDE_LOG_URL", str(tmp_path / "plain.sqlite3"))
    with open_store() as store:
        assert store.path == tmp_path / "plain.sqlite3"

    monkeypatch.setenv("GUIDE_LOG_URL", f"postgres://u:pw@127.0.0.1:{closed_port()}/x")
    with pytest.raises(StoreUnavailable):
        open_store()
    with pytest.raises(ValueError):
        open_store("mysql://somewhere/db")


def test_import_is_light() -> None:
    code = ("import widgets.log, sys; "
            "assert 'psycopg' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sqlite_store_does_not_import_psycopg(tmp_path: Path) -> None:
    code = ("import sys, widgets.log as l; s = l.open_store(sys.argv[1]); "
            "l.SessionLogger(s).log('a', 'enter'); assert 'psycopg' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "e.sqlite3")], cwd=ROOT, check=True)


def test_actions_vocabulary() -> None:
    assert ACTIONS == ("enter", "choose", "next", "back", "restart", "language", "finish", "outcome",
                       "recall", "followup")
    assert LANGS == ("ko", "en")
    assert log.SCHEMA_VERSION == 7


def test_migration_files_keep_the_history() -> None:
    """Versions 1-3 are, statement for statement and byte for byte, what the earlier code ran on
    existing stores (recorded in tests/fixtures/log-migrations-v1-v3.json); every version has a
    file in both dialects, and no statement of versions 4 and 5 names a step of the flow."""
    old = json.loads((ROOT / "tests" / "fixtures" / "log-migrations-v1-v3.json").read_text())
    for migration in log.MIGRATIONS[:3]:
        assert list(migration.sqlite) == old[str(migration.version)]["sqlite"]
        assert list(migration.postgresql) == old[str(migration.version)]["postgresql"]
    assert [m.version for m in log.MIGRATIONS] == [1, 2, 3, 4, 5, 6, 7]
    creating = " ".join(s for m in log.MIGRATIONS[3:] for s in m.sqlite + m.postgresql
                        if not s.startswith(("ALTER TABLE sessions DROP", "DROP TRIGGER")))
    assert not re.search(r"'(channel|phone|problem|order)'|\b(contact|problem|order)_(id|option)\b", creating)
    assert log.migrations.parse_sql("-- c\nA\nB;\n\n\nC\n-- d\n") == ("A\nB;", "C")


def test_the_engines_events_are_stored_as_they_were_made(store_url: str) -> None:
    """One shape from the click to the row: the Events made from the engine's transitions
    (widgets/eventlog.py) reach the store unchanged; the logger takes only Events of its own
    session."""
    from widgets.engine import Engine
    from widgets.eventlog import EventStamper

    clock = FakeClock()
    made: list[Event] = []
    stamp = EventStamper(clock=clock, on_event=made.append)
    engine = Engine(lang="en", on_transition=stamp)
    engine.set_language("ko")  # before the first screen: the language the visit starts in
    logger = SessionLogger(functools.partial(open_store, store_url), session_id=stamp.session)
    stamp.on_event = lambda event: (made.append(event), logger.record(event))
    engine.start()
    engine.choose("return")
    engine.set_language("en")
    assert made and all(type(e) is Event and e.session == stamp.session for e in made)
    assert made[0].elapsed_ms is None and all(e.elapsed_ms == 1500 for e in made[1:])
    other = Event(T0, "someone-else", "problem", "enter", None, "ko", None)
    assert logger.record(other) is False
    assert logger.record(tuple(made[0])) is False  # type: ignore[arg-type]
    assert logger.refused == 2
    logger.close()
    assert session_events(store_url, stamp.session) == made
    assert [e.action for e in made] == ["enter", "choose", "enter", "language"]


def test_stores_share_one_write_path(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interface owns the shape of a write (refuse what is not an Event, then one transaction
    for the events and the gaps); a dialect gives only its transaction and statements. A failure
    inside that transaction writes nothing, events included."""
    from widgets.log.store import EventStore as Interface

    assert log.SQLiteStore.write is Interface.write and log.PostgresStore.write is Interface.write
    gap = log.Gap(T0, "s1", 2)
    with open_store(store_url) as store:
        fine = [Event(T0, "s1", "n1", "enter", None, "ko", None), Event(T0, "s1", "n1", "next", None, "ko", 5)]
        store.write(fine, [gap])
        broken = type(store)._insert_events

        def insert_then_fail(self, cursor, events):  # type: ignore[no-untyped-def]
            broken(self, cursor, events)
            cursor.execute("INSERT INTO no_such_table VALUES (1)")

        with monkeypatch.context() as m:
            m.setattr(type(store), "_insert_events", insert_then_fail)
            with pytest.raises(StoreUnavailable):
                store.write([Event(T0, "s1", "n2", "enter", None, "ko", 7)], [gap])
        assert store.read_events() == fine
        assert store.query("SELECT count(*) FROM log_gaps")[1] == [(1,)]
        store.write(fine[:1])  # and the store goes on
        assert len(store.read_events()) == 3
