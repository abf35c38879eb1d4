"""Schema version 6: a log at today's previous schema (5, triggers and session_answers), made by
the migrations as they are and filled through them, is migrated without losing a row, and its
derived tables are then those a new store computes from the same events."""

from __future__ import annotations

import datetime as dt

import pytest
from test_log import (T0, _fresh_copy, _without_ids, expected_sessions, index_names, mixed_events,
                      pg_store_url, store_url, stored_sessions, write_in_batches)

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
