"""The log in a PostgreSQL database: :class:`PostgresStore`.

psycopg is imported when such a store is opened, never at module import.

A connection bounds its waits, so that a server that is gone or unreachable fails a write in
seconds rather than after the minutes TCP would keep trying: ``connect_timeout``, ``lock_timeout``
and ``statement_timeout`` (for writes; not for the summary's read-only queries, which may take
longer on a large log) come from the store's ``timeout``; TCP keepalives probe an idle connection
after 10 s, every 3 s, 3 times, and ``tcp_user_timeout`` drops a connection whose sent data has
not been acknowledged for 10 s (a network partition, a server host that died). A server that is
paused still acknowledges TCP, so neither fires: SessionLogger writes from its own thread, so
that such a wait never holds up a visitor.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from . import migrations
from .events import Event
from .store import DEFAULT_TIMEOUT, EVENT_COLUMNS, EventStore, StoreCorrupt, StoreUnavailable
from .urls import redact as _redact

__all__ = ["PostgresStore"]

_DEFAULT_TIMEOUT = DEFAULT_TIMEOUT
_EVENT_COLUMNS = EVENT_COLUMNS
# Key of the PostgreSQL advisory lock serialising schema creation/migration.
_PG_SCHEMA_LOCK = 0x6775_6964_656C_6F67 & 0x7FFF_FFFF_FFFF_FFFF  # "guidelog"
# libpq connection parameters that detect a dead peer or a network partition in seconds (unless the
# URL sets them).
_TCP_PARAMETERS = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
                   "tcp_user_timeout": 10_000}  # milliseconds
_PG_INSERT_EVENT = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
# A batch from one array per column; ids follow the list order.
_PG_INSERT_EVENTS = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM unnest("
    "%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[]) "
    f"WITH ORDINALITY AS batch ({_EVENT_COLUMNS}, n) ORDER BY n"
)


class PostgresStore(EventStore):
    """The log in a PostgreSQL database; tables are created on first use.

    psycopg is imported here, when the store is opened, never at module import.
    A lost connection makes the failing call raise StoreUnavailable; the next
    call reconnects. ``timeout`` (seconds) bounds connecting, lock waits and each
    write statement; the connection's TCP settings are in the module docstring.
    """

    dialect = "postgresql"
    placeholder = "%s"

    def __init__(self, url: str, *, timeout: float = _DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        try:
            import psycopg
        except ImportError as exc:
            raise StoreUnavailable(
                "a postgresql:// log URL needs psycopg: pip install 'amazon-contact-guide[postgres]'"
            ) from exc
        self._psycopg = psycopg
        with self._lock:
            self._connection()

    def _connection(self) -> Any:
        """The open connection, connecting (and creating the schema) if needed."""
        if self._closed:
            raise StoreUnavailable(f"the log database {_redact(self.url)} is closed")
        if self._conn is not None and not self._conn.closed:
            return self._conn
        psycopg = self._psycopg
        try:
            given = psycopg.conninfo.conninfo_to_dict(self.url)  # settings in the URL win
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(2, int(self.timeout + 0.999)),
                                   **{k: v for k, v in _TCP_PARAMETERS.items() if k not in given})
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the log database {_redact(self.url)}: {exc}") from exc
        ms = f"{int(self.timeout * 1000)}ms"
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (ms,))
            self._prepare(conn)  # a migration may take longer than a write: not bounded by statement_timeout
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (ms,))
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StoreUnavailable(f"cannot prepare the log database {_redact(self.url)}: {exc}") from exc
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: Any) -> None:
        """Create or migrate the tables, serialised between processes by an advisory lock."""
        where = f"the log database {_redact(self.url)}"
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            meta, events = conn.execute("SELECT to_regclass('meta'), to_regclass('events')").fetchone()
            if meta is None:
                if events is not None:
                    raise StoreCorrupt(f"{where} has an events table that is not ours (no meta table); "
                                       "it was left untouched")
                version = 0
            else:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    raise StoreCorrupt(f"{where}: meta table without schema_version; it was left untouched")
                version = migrations.parse_version(row[0], where)
            migrations.check_not_newer(version, where)
            migrations.apply(conn.execute, version, self.dialect)

    def _fail(self, exc: Exception, doing: str) -> StoreUnavailable:
        """Drop the connection (the next call reconnects) and describe the failure."""
        try:
            if self._conn is not None:
                self._conn.close()
        finally:
            self._conn = None
        return StoreUnavailable(f"{doing} the log database {_redact(self.url)}: {exc}")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    # One write at a time, and none by other code in between (it waits for
                    # those in progress): the derived tables' watermark then never passes an
                    # event that commits later (see widgets/log/derive.py).
                    cur.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
                    yield cur
            except self._psycopg.Error as exc:
                raise self._fail(exc, "cannot write to") from exc

    def _insert_events(self, cursor: Any, events: Sequence[Event]) -> None:
        if len(events) == 1:
            cursor.execute(_PG_INSERT_EVENT, tuple(events[0]))
        else:
            cursor.execute(_PG_INSERT_EVENTS, [list(column) for column in zip(*events)])

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    cur.execute("SET LOCAL statement_timeout = 0")  # a summary of a large log may take long
                    cur.execute(sql, tuple(params))
                    columns = [d.name for d in cur.description or ()]
                    return columns, cur.fetchall()
            except self._psycopg.Error as exc:
                raise self._fail(exc, "cannot read") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.url)!r})"
