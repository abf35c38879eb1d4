"""The store interface: what every log store does, and the errors it raises.

A store writes Events atomically and answers read-only queries in its SQL dialect; the schema it
keeps is described in ``widgets/log/migrations`` and created or migrated when the store is opened.
The shape of a write is the interface's (:meth:`EventStore.write`: refuse what is not an Event or
a Gap, then insert the events and the gaps in one transaction); a dialect gives the transaction
(:meth:`EventStore._transaction`: its connection, locks and errors) and its statements. Only the
standard library is imported here.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from .events import Event, Gap, validate_event, validate_gap

__all__ = ["EventStore", "StoreUnavailable", "StoreCorrupt", "SchemaVersionError", "StoreOutdated",
           "EVENT_COLUMNS"]

#: The columns of ``events`` that an Event fills, in Event field order.
EVENT_COLUMNS = "ts, session, node, action, option, lang, elapsed_ms"
_EVENT_COLUMNS = EVENT_COLUMNS
#: Inserts one gap row (parameter placeholder ``{p}``).
INSERT_GAP = "INSERT INTO log_gaps (ts, session, dropped) VALUES ({p}, {p}, {p})"
#: Seconds a store waits for a lock or a connection, unless told otherwise.
DEFAULT_TIMEOUT = 5.0

# --------------------------------------------------------------------------- errors


class StoreUnavailable(Exception):
    """The store cannot be reached or written now (I/O, lock, connection)."""


class StoreCorrupt(StoreUnavailable):
    """The store location holds something that is not our log; it is left untouched."""


class SchemaVersionError(StoreUnavailable):
    """The store was written by a newer version of this code; it is left untouched."""


class StoreOutdated(StoreUnavailable):
    """The store has an older schema and was opened read-only, so it was not migrated."""


class EventStore(abc.ABC):
    """Where events go. Writes are atomic: all of a call's rows or none."""

    #: 'sqlite' or 'postgresql': which SQL dialect ``query`` speaks.
    dialect: str
    #: The parameter placeholder of ``query``: '?' (sqlite) or '%s' (postgresql).
    placeholder: str

    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        """Store ``events`` (and ``gaps``) in one transaction.

        Raises ValueError for anything that is not an Event (or a Gap; they were validated
        when made), before anything is written, and StoreUnavailable for any I/O, lock or
        connection problem (nothing is written).
        """
        for event in events:
            validate_event(event)
        for gap in gaps:
            validate_gap(gap)
        if not events and not gaps:
            return
        with self._transaction() as cursor:
            if events:
                self._insert_events(cursor, events)
                self._derive(cursor)
            if gaps:
                cursor.executemany(INSERT_GAP.format(p=self.placeholder),
                                   [(self._ts(g.ts), g.session, g.dropped) for g in gaps])

    def refresh(self) -> None:
        """Bring the derived tables up to date with every stored event (see
        ``widgets/log/derive.py``): each write does, so this is needed only for events inserted
        by other code. Raises StoreUnavailable like a write."""
        with self._transaction() as cursor:
            self._derive(cursor)

    def _derive(self, cursor: Any) -> None:
        from . import derive, migrations

        if migrations.latest() >= derive.SINCE:  # else a store made for an older schema (tests)
            derive.refresh(cursor.execute, self.placeholder, migrations.latest())

    def _transaction(self) -> AbstractContextManager[Any]:
        """One write transaction: a context giving a DB-API cursor (``execute``,
        ``executemany``) that commits when the block ends and rolls back if it raises; every
        failure of the store's driver becomes StoreUnavailable (or a subclass). Every SQL store
        gives one (a store that is not SQL, e.g. a test double, overrides ``write`` instead)."""
        raise NotImplementedError

    def _insert_events(self, cursor: Any, events: Sequence[Event]) -> None:
        """Insert ``events`` in this order, inside :meth:`_transaction`."""
        raise NotImplementedError

    def _ts(self, ts: dt.datetime) -> Any:
        """A timestamp as the dialect stores it (default: the datetime itself)."""
        return ts

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement in a read-only transaction; return (column names, rows).

        Parameters use ``placeholder``. Any failure, including a statement that
        tries to write, raises StoreUnavailable.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; the store must not be used afterwards."""

    def read_events(self) -> list[Event]:
        """All events in insertion order, as Event tuples with UTC datetimes."""
        _, rows = self.query(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id")
        return [Event(_as_utc(r[0]), *r[1:]) for r in rows]

    def schema_version(self) -> int:
        """The log schema version the store holds now (0 for none)."""
        _, rows = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows and str(rows[0][0]).isdigit() else 0

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_utc(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC)

