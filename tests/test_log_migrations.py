"""Schema versions 6 and 7: a log at the schema before (5, triggers and session_answers; 6, without
the totals per day and per step), made by the migrations as they are and filled through them, is
migrated without losing a row, and its derived tables are then those a new store computes from
the same events."""

from __future__ import annotations

import datetime as dt

import pytest
from test_log import (T0, _fresh_copy, _without_ids, expected_sessions, index_names, mixed_events,
                      pg_store_url, store_url, stored_sessions, write_in_batches)

from widgets.log.derive import LEAVE_ACTIONS, parse_answers

import widgets.log as log
from widgets.log import Gap, open_store

__all__ = ["pg_store_url", "store_url"]  # the fixtures, used here too


def table_names(store: log.EventStore) -> set[str]:
    if store.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return {name for (name,) in store.query(sql)[1]}


def test_a_schema_5_log_migrates_to_6_keeping_every_row(store_url: str, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path) -> None:
    events = mixed_events(seed=21)
    gaps = [Gap(T0 + dt.timedelta(seconds=i), f"s{i}", i + 1) for i in range(3)]
    with monkeypatch.context() as m:
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:5])
        with open_store(store_url) as old:
            write_in_batches(old, events)  # through the schema 5 triggers
            old.write([], gaps)
            assert old.schema_version() == 5
            assert {"session_answers", "sessions"} <= table_names(old)
            assert "events_sessions" in index_names(old)  # the trigger
            before = old.query("SELECT * FROM events ORDER BY id")[1]
            gaps_before = old.query("SELECT * FROM log_gaps ORDER BY id")[1]
            answers_before = sorted(old.query("SELECT session, node, option, event_id FROM session_answers")[1])
    with monkeypatch.context() as m:  # the schema 6 code
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:6])
        with open_store(store_url) as store:  # migrates
            assert store.schema_version() == 6
            assert store.query("SELECT * FROM events ORDER BY id")[1] == before
            assert store.query("SELECT * FROM log_gaps ORDER BY id")[1] == gaps_before
            assert "session_answers" not in table_names(store)
            assert not {"events_sessions", "events_session_answers"} & index_names(store)
            migrated = stored_sessions(store)
            assert migrated == expected_sessions(store)
            assert migrated[1] == answers_before  # every last answer kept, now in session_steps
            assert store.query("SELECT value FROM meta WHERE key = 'derived_through'")[1] == [
                (str(max(row[0] for row in before)),)]
            if store.dialect == "sqlite":
                fresh = str(tmp_path / "fresh.sqlite3")
                assert _without_ids(migrated) == _without_ids(_fresh_copy(store, fresh))
            more = mixed_events(seed=22)
            write_in_batches(store, more)  # and the derived tables follow the new writes
            assert store.read_events() == events + more
            assert stored_sessions(store) == expected_sessions(store)


def expected_totals(store: log.EventStore) -> tuple[list[tuple], list[tuple]]:
    """``session_days`` and ``step_totals`` as computed here from the stored events: first events
    per UTC day and language; per step, the sessions that entered it and its leaving events."""
    days: dict[tuple[str, str], int] = {}
    entered: dict[str, set[str]] = {}
    leaves: dict[str, int] = {}
    for event in store.read_events():
        if event.elapsed_ms is None:
            key = (event.ts.astimezone(dt.UTC).strftime("%Y-%m-%d"), event.lang)
            days[key] = days.get(key, 0) + 1
        if event.action == "enter":
            entered.setdefault(event.node, set()).add(event.session)
        if event.action in LEAVE_ACTIONS and event.elapsed_ms is not None:
            leaves[event.node] = leaves.get(event.node, 0) + 1
    steps = {n: (len(entered.get(n, ())), leaves.get(n, 0)) for n in {*entered, *leaves}}
    return sorted((*k, n) for k, n in days.items()), sorted((n, *v) for n, v in steps.items())


def expected_answers(store: log.EventStore) -> list[tuple]:
    """Per session: its last outcome (event id, option) and its last answer at each step in the
    order given, computed here from the stored events."""
    _, rows = store.query("SELECT id, session, node, action, option FROM events ORDER BY id")
    sessions: dict[str, dict] = {}
    for id_, session, node, action, option in rows:
        r = sessions.setdefault(session, {"outcome": (None, None), "answers": {}})
        if action == "outcome":
            r["outcome"] = (id_, option)
        if action == "choose":
            r["answers"].pop(node, None)  # a new answer at a step moves it to the end
            r["answers"][node] = option
    return sorted((s, *r["outcome"], tuple(r["answers"].items())) for s, r in sessions.items())


def stored_answers(store: log.EventStore) -> list[tuple]:
    _, rows = store.query("SELECT session, outcome_id, outcome, answers FROM sessions")
    return sorted((s, i, o, tuple(parse_answers(a))) for s, i, o, a in rows)


def stored_totals(store: log.EventStore) -> tuple[list[tuple], list[tuple]]:
    days = store.query("SELECT day, lang, firsts FROM session_days")[1]
    steps = store.query("SELECT node, views, leaves FROM step_totals WHERE views > 0 OR leaves > 0")[1]
    return sorted((d, lang, int(n)) for d, lang, n in days), sorted((n, int(v), int(k)) for n, v, k in steps)


def test_a_schema_6_log_migrates_to_7_keeping_every_row(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events = mixed_events(seed=31)
    # A day boundary: sessions starting on two UTC days.
    events += [e._replace(ts=e.ts + dt.timedelta(days=1, hours=15)) for e in mixed_events(seed=32, sessions=12)]
    gaps = [Gap(T0 + dt.timedelta(seconds=i), f"s{i}", i + 1) for i in range(3)]
    with monkeypatch.context() as m:
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:6])
        with open_store(store_url) as old:
            write_in_batches(old, events)
            old.write([], gaps)
            assert old.schema_version() == 6
            assert not {"session_days", "step_totals"} & table_names(old)
            before = old.query("SELECT * FROM events ORDER BY id")[1]
            gaps_before = old.query("SELECT * FROM log_gaps ORDER BY id")[1]
            derived_before = stored_sessions(old)
    with open_store(store_url) as store:  # migrates
        assert store.schema_version() == 7
        assert store.query("SELECT * FROM events ORDER BY id")[1] == before
        assert store.query("SELECT * FROM log_gaps ORDER BY id")[1] == gaps_before
        assert stored_sessions(store) == derived_before  # kept as they were
        assert "sessions_ends" in index_names(store)
        totals = stored_totals(store)
        assert totals == expected_totals(store)
        answers = stored_answers(store)
        assert answers == expected_answers(store)
        assert any(len(given) > 2 for *_, given in answers) and any(o for _, o, *_ in answers)
        assert any(option is None for *_, given in answers for _, option in given)
        assert len(totals[0]) >= 3 and totals[1]  # two days (both languages), some steps
        more = mixed_events(seed=33)
        write_in_batches(store, more)  # and the totals follow the new writes
        assert store.read_events()[len(events):] == more
        assert stored_totals(store) == expected_totals(store)
        assert stored_answers(store) == expected_answers(store)
        assert stored_sessions(store) == expected_sessions(store)


def test_the_totals_and_answers_follow_every_write(store_url: str) -> None:
    """Written one by one and in batches, a session entering a step again counts once there;
    events written by other code are counted by the next refresh."""
    with open_store(store_url) as store:
        assert stored_totals(store) == ([], [])
        write_in_batches(store, mixed_events(seed=34), seed=5)
        totals = stored_totals(store)
        assert totals == expected_totals(store)
        assert any(views < leaves for _, views, leaves in totals[1])  # steps left more often than entered
        assert stored_answers(store) == expected_answers(store)
        store.write(mixed_events(seed=35, sessions=3))  # sessions s0-s2 again: steps seen before
        assert stored_totals(store) == expected_totals(store)
        assert stored_answers(store) == expected_answers(store)
