"""SessionLogger.record_many: the events of one interaction, taken or refused together and
written to the store in one transaction."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from widgets.log import Event, Gap, SessionLogger, SQLiteStore, StoreUnavailable
from widgets.ratelimit import TokenBucket

T0 = dt.datetime(2025, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
SESSION = "s-many"


def click(n: int, session: str = SESSION) -> list[Event]:
    """The events of one click: an answer chosen at step ``a<n>`` and the step it enters."""
    ts = T0 + dt.timedelta(seconds=n)
    return [Event(ts, session, f"a{n}", "choose", "yes", "ko", 1000),
            Event(ts, session, f"b{n}", "enter", None, "ko", 0)]


class CountingStore(SQLiteStore):
    """An SQLite store that records the events of each transaction it commits (and may be slow)."""

    def __init__(self, path: Path, delay: float = 0.0) -> None:
        super().__init__(path)
        self.delay = delay
        self.transactions: list[list[Event]] = []
        self._batch: list[Event] | None = None

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        self._batch = []
        with super()._transaction() as cursor:
            yield cursor
            time.sleep(self.delay)
        self.transactions.append(self._batch)

    def _insert_events(self, cursor: Any, events: Any) -> None:
        assert self._batch is not None
        self._batch.extend(events)
        super()._insert_events(cursor, events)


def stored(store: SQLiteStore) -> tuple[list[Event], int]:
    events = [e for e in store.read_events() if e.session == SESSION]
    _, rows = store.query("SELECT coalesce(sum(dropped), 0) FROM log_gaps")
    return events, int(rows[0][0])


def test_one_interaction_is_one_transaction(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.sqlite3")
    logger = SessionLogger(store, session_id=SESSION, rate=float("inf"))
    assert logger.record_many(click(1)) is True
    assert logger.wait_idle(10)
    assert store.transactions == [click(1)]
    assert stored(store) == (click(1), 0)
    logger.close()
    store.close()


def test_the_events_of_an_interaction_are_never_split(tmp_path: Path) -> None:
    """Interactions arriving while the writer is inside a slow write wait for the next one; a
    transaction holds whole interactions only, in order."""
    store = CountingStore(tmp_path / "events.sqlite3", delay=0.02)
    logger = SessionLogger(store, session_id=SESSION, rate=float("inf"))
    clicks = [click(n) for n in range(12)]
    for events in clicks:
        assert logger.record_many(events) is True
        time.sleep(0.003)
    assert logger.wait_idle(30)
    assert [e for batch in store.transactions for e in batch] == [e for c in clicks for e in c]
    for batch in store.transactions:
        assert len(batch) % 2 == 0 and all(batch[i].action == "choose" for i in range(0, len(batch), 2))
    assert len(store.transactions) <= len(clicks)
    logger.close()
    store.close()


def test_an_interaction_is_refused_whole_if_one_event_is_not_of_the_session(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.sqlite3")
    logger = SessionLogger(store, session_id=SESSION, rate=float("inf"))
    assert logger.record_many([click(1)[0], click(1, "someone-else")[1]]) is False
    assert logger.record_many([click(2)[0], tuple(click(2)[1])]) is False  # type: ignore[list-item]
    assert logger.refused == 2
    assert logger.record_many([]) is True  # nothing to write
    logger.close()
    assert stored(store) == ([], 0)
    store.close()


def test_the_rate_limit_takes_or_counts_an_interaction_whole(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.sqlite3")
    logger = SessionLogger(store, session_id=SESSION, rate=1 / 3600, burst=3)
    assert logger.record_many(click(1)) is True  # 2 of 3 tokens
    assert logger.record_many(click(2)) is False  # 1 token left: neither event is written
    assert logger.limited == 2
    assert logger.record(click(3)[0]) is True  # the token left
    logger.close()
    assert stored(store) == ([*click(1), click(3)[0]], 2)
    store.close()


def test_a_full_bucket_takes_an_interaction_larger_than_the_burst(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.sqlite3")
    logger = SessionLogger(store, session_id=SESSION, rate=1 / 3600, burst=1)
    assert logger.record_many(click(1)) is True
    assert logger.record_many(click(2)) is False
    logger.close()
    assert stored(store) == (click(1), 2)
    store.close()


def test_a_closed_logger_takes_no_interaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.sqlite3")
    logger = SessionLogger(store, session_id=SESSION, rate=float("inf"))
    logger.close()
    assert logger.record_many(click(1)) is False
    assert stored(store) == ([], 0)
    store.close()


def test_an_interaction_waits_whole_while_the_store_is_away(tmp_path: Path) -> None:
    """A store that fails: the interaction is buffered, then written whole with the count of what
    was lost meanwhile, in one transaction."""
    store = CountingStore(tmp_path / "events.sqlite3")
    failing = threading.Event()
    failing.set()
    real = store._transaction

    def transaction() -> Any:
        if failing.is_set():
            raise StoreUnavailable("away")
        return real()

    store._transaction = transaction  # type: ignore[method-assign]
    logger = SessionLogger(store, session_id=SESSION, rate=float("inf"), buffer_limit=3, retry_after=60)
    assert logger.record_many(click(1)) is True
    assert logger.wait_idle(10)
    assert not logger.healthy
    assert logger.record_many(click(2)) is True  # the buffer keeps 3: the oldest event goes
    failing.clear()
    assert logger.flush()
    assert store.transactions == [[click(1)[1], *click(2)]]
    events, dropped = stored(store)
    assert events == [click(1)[1], *click(2)] and dropped == 1
    logger.close()
    store.close()


@pytest.mark.parametrize(("count", "tokens", "taken"), [(1, 3, True), (3, 3, True), (4, 3, True),
                                                         (2, 1, False), (1, 1, True)])
def test_token_bucket_takes_several_at_once(count: int, tokens: int, taken: bool) -> None:
    now = [0.0]
    bucket = TokenBucket(1 / 3600, 3, lambda: now[0])
    for _ in range(3 - tokens):
        assert bucket.take()
    assert bucket.take(count) is taken
    left = tokens - count if taken else tokens
    assert bucket.take(1) is (left >= 1)


def test_gap_is_written_with_the_interaction(tmp_path: Path) -> None:
    """Events and gaps share the store's one write path: one transaction for both."""
    store = CountingStore(tmp_path / "events.sqlite3")
    store.write(click(1), [Gap(T0, SESSION, 3)])
    assert store.transactions == [click(1)]
    assert stored(store) == (click(1), 3)
    store.close()
