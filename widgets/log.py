"""The interaction log: one row per visitor interaction, never free text.

Each row holds a UTC timestamp, an anonymous random session id (one per visit),
the flow node id, the action, the chosen option id (or NULL), the language and
the milliseconds since the session's previous event (NULL for the first one).
Every field is validated structurally before it can reach a store, so nothing a
person typed, and no personal data, is ever written.

Tables: ``events`` (those rows), ``log_gaps`` (events lost to a buffer overflow),
``meta`` (the schema version) and, from schema version 2, ``sessions``: one row per
session, derived from its events by a trigger as they are inserted, for the summary
(see MIGRATIONS; version 3 adds the session's answers at ``problem`` and ``order``).

Stores:
    SQLiteStore     the embedded default, ``$GUIDE_DATA_DIR/events.sqlite3``
                    (WAL mode, one short ``BEGIN IMMEDIATE`` transaction per
                    write, safe with many kernel processes writing at once)
    PostgresStore   when ``GUIDE_LOG_URL`` is a ``postgresql://`` URL
                    (psycopg is imported only when such a store is opened)

``SessionLogger`` is what the view uses: one per visitor, ``log()`` never
raises, and events are kept in a bounded buffer while the store is away.

Only the standard library is imported at module import time.
"""

from __future__ import annotations

import abc
import collections
import datetime as dt
import logging
import os
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qs, unquote

__all__ = [
    "ACTIONS",
    "LANGS",
    "SCHEMA_VERSION",
    "Event",
    "Gap",
    "EventStore",
    "SQLiteStore",
    "PostgresStore",
    "StoreUnavailable",
    "StoreCorrupt",
    "SchemaVersionError",
    "SessionLogger",
    "open_store",
    "log_url",
    "validate_event",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The only actions a row may carry.
ACTIONS: tuple[str, ...] = (
    "enter",
    "choose",
    "next",
    "back",
    "restart",
    "language",
    "finish",
    "outcome",
)
#: The only languages a row may carry.
LANGS: tuple[str, ...] = ("ko", "en")

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SQLITE_HEADER = b"SQLite format 3\x00"
_DEFAULT_TIMEOUT = 5.0
# Key of the PostgreSQL advisory lock serialising schema creation/migration.
_PG_SCHEMA_LOCK = 0x6775_6964_656C_6F67 & 0x7FFF_FFFF_FFFF_FFFF  # "guidelog"


# --------------------------------------------------------------------------- errors


class StoreUnavailable(Exception):
    """The store cannot be reached or written now (I/O, lock, connection)."""


class StoreCorrupt(StoreUnavailable):
    """The store location holds something that is not our log; it is left untouched."""


class SchemaVersionError(StoreUnavailable):
    """The store was written by a newer version of this code; it is left untouched."""


# --------------------------------------------------------------------------- rows


class Event(NamedTuple):
    """One interaction. ``ts`` is an aware UTC datetime."""

    ts: dt.datetime
    session: str
    node: str
    action: str
    option: str | None
    lang: str
    elapsed_ms: int | None


class Gap(NamedTuple):
    """``dropped`` events of ``session`` were lost (buffer overflow) before ``ts``."""

    ts: dt.datetime
    session: str
    dropped: int


def _is_id(value: object) -> bool:
    return type(value) is str and _ID.fullmatch(value) is not None


def _check_ts(ts: object) -> None:
    if not isinstance(ts, dt.datetime) or ts.utcoffset() != dt.timedelta(0):
        raise ValueError("ts must be an aware datetime in UTC")


def validate_event(event: Event) -> None:
    """Raise ValueError unless every field of ``event`` is structurally valid.

    The messages name the field only, never its value, so refused input (which
    may be something a person typed) does not reach the server logs either.
    """
    if not isinstance(event, Event):
        raise ValueError("not an Event")
    _check_ts(event.ts)
    for field in ("session", "node"):
        if not _is_id(getattr(event, field)):
            raise ValueError(f"{field} is not a valid id")
    if type(event.action) is not str or event.action not in ACTIONS:
        raise ValueError("action is not one of ACTIONS")
    if event.option is not None and not _is_id(event.option):
        raise ValueError("option is not a valid id")
    if type(event.lang) is not str or event.lang not in LANGS:
        raise ValueError("lang is not one of LANGS")
    ms = event.elapsed_ms
    if ms is not None and (type(ms) is not int or ms < 0):
        raise ValueError("elapsed_ms must be None or a non-negative int")


def _validate_gap(gap: Gap) -> None:
    if not isinstance(gap, Gap):
        raise ValueError("not a Gap")
    _check_ts(gap.ts)
    if not _is_id(gap.session):
        raise ValueError("session is not a valid id")
    if type(gap.dropped) is not int or gap.dropped <= 0:
        raise ValueError("dropped must be a positive int")


# --------------------------------------------------------------------------- schema


class Migration(NamedTuple):
    """Statements taking a store from ``version - 1`` to ``version``."""

    version: int
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


# Schema version 2: the per-session rollup and the summary's indexes.
#
# ``sessions`` holds one row per session id found in ``events``, kept up to date by a trigger
# on each inserted event, in the transaction that inserts it (so every writer maintains it,
# including a process still running older code while the guide is upgraded):
#
#   firsts          events with elapsed_ms NULL (the logger writes exactly one: the first)
#   first_ts/_lang  time and language of the first of them (NULL while there is none)
#   last_id/_node   id and node of the session's last event (highest id)
#   finishes        ``finish`` events; switches: ``language`` events
#   contact_*       id, node and option of the last ``choose`` at ``channel`` or ``phone``
#   outcome_*       id and option of the last ``outcome`` event
#   entered         the nodes with an ``enter`` event, each once: '|problem|order|...|' ('|': none)
#
# Everything in it is derived from validated event fields (ids, timestamps, counts). The
# migration fills it from the events already stored. These statements are part of the schema's
# history: never edit them; change the rollup with a new migration.
_V2_SESSION_COLUMNS = ("session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches, "
                       "contact_id, contact_node, contact_option, outcome_id, outcome_option, entered")
# How a session's row absorbs one more of its events (``excluded``, as _V2_EVENT_ROW makes it):
# counts add up, ids decide which event is the last (whatever order writers commit in), and
# ``entered`` gains the node of an enter event unless it has it already.
_V2_MERGE = (
    "firsts = sessions.firsts + excluded.firsts, "
    "first_ts = CASE WHEN sessions.first_ts IS NULL THEN excluded.first_ts ELSE sessions.first_ts END, "
    "first_lang = CASE WHEN sessions.first_ts IS NULL THEN excluded.first_lang ELSE sessions.first_lang END, "
    "last_id = CASE WHEN excluded.last_id > sessions.last_id THEN excluded.last_id ELSE sessions.last_id END, "
    "last_node = CASE WHEN excluded.last_id > sessions.last_id THEN excluded.last_node ELSE sessions.last_node END, "
    "finishes = sessions.finishes + excluded.finishes, "
    "switches = sessions.switches + excluded.switches, "
    "contact_id = CASE WHEN excluded.contact_id > sessions.contact_id OR sessions.contact_id IS NULL "
    "THEN excluded.contact_id ELSE sessions.contact_id END, "
    "contact_node = CASE WHEN excluded.contact_id > sessions.contact_id OR sessions.contact_id IS NULL "
    "THEN excluded.contact_node ELSE sessions.contact_node END, "
    "contact_option = CASE WHEN excluded.contact_id > sessions.contact_id OR sessions.contact_id IS NULL "
    "THEN excluded.contact_option ELSE sessions.contact_option END, "
    "outcome_id = CASE WHEN excluded.outcome_id > sessions.outcome_id OR sessions.outcome_id IS NULL "
    "THEN excluded.outcome_id ELSE sessions.outcome_id END, "
    "outcome_option = CASE WHEN excluded.outcome_id > sessions.outcome_id OR sessions.outcome_id IS NULL "
    "THEN excluded.outcome_option ELSE sessions.outcome_option END, "
    "entered = CASE WHEN replace(sessions.entered, excluded.entered, '') <> sessions.entered "
    "THEN sessions.entered ELSE sessions.entered || substr(excluded.entered, 2) END"
)
# The same for the rollup of several events of the session, which may have entered several nodes.
_V2_MERGE_MANY = (
    _V2_MERGE[:_V2_MERGE.index("entered = ")]
    + "entered = sessions.entered || coalesce((SELECT string_agg(n, '|') || '|' "
    "FROM unnest(string_to_array(trim(BOTH '|' FROM excluded.entered), '|')) AS n "
    "WHERE strpos(sessions.entered, '|' || n || '|') = 0), '')"
)
# The sessions row of one event (columns prefixed with ``{e}``: 'NEW.' in a row trigger).
_V2_EVENT_ROW = (
    "{e}session, CASE WHEN {e}elapsed_ms IS NULL THEN 1 ELSE 0 END, "
    "CASE WHEN {e}elapsed_ms IS NULL THEN {e}ts END, CASE WHEN {e}elapsed_ms IS NULL THEN {e}lang END, "
    "{e}id, {e}node, CASE WHEN {e}action = 'finish' THEN 1 ELSE 0 END, "
    "CASE WHEN {e}action = 'language' THEN 1 ELSE 0 END, "
    "CASE WHEN {e}action = 'choose' AND {e}node IN ('channel', 'phone') THEN {e}id END, "
    "CASE WHEN {e}action = 'choose' AND {e}node IN ('channel', 'phone') THEN {e}node END, "
    "CASE WHEN {e}action = 'choose' AND {e}node IN ('channel', 'phone') THEN {e}option END, "
    "CASE WHEN {e}action = 'outcome' THEN {e}id END, CASE WHEN {e}action = 'outcome' THEN {e}option END, "
    "CASE WHEN {e}action = 'enter' THEN '|' || {e}node || '|' ELSE '|' END"
)
# The summary's indexes; its statements repeat these WHERE clauses word for word (SQLite uses a
# partial index only then). Choices per decision; the events leaving each node, by elapsed_ms.
_V2_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_choose ON events (node, option, session) WHERE action = 'choose'",
    "CREATE INDEX IF NOT EXISTS events_leave ON events (node, elapsed_ms, session) "
    "WHERE action IN ('choose', 'next', 'back', 'restart')",
)
# Sessions with more than one first event, which the logger never writes (normally none).
_V2_SESSIONS_INDEX = "CREATE INDEX IF NOT EXISTS sessions_firsts ON sessions (session) WHERE firsts > 1"
_V2_SQLITE = (
    "CREATE TABLE IF NOT EXISTS sessions ("
    " session TEXT PRIMARY KEY,"
    " firsts INTEGER NOT NULL,"
    " first_ts TEXT,"
    " first_lang TEXT,"
    " last_id INTEGER NOT NULL,"
    " last_node TEXT NOT NULL,"
    " finishes INTEGER NOT NULL,"
    " switches INTEGER NOT NULL,"
    " contact_id INTEGER,"
    " contact_node TEXT,"
    " contact_option TEXT,"
    " outcome_id INTEGER,"
    " outcome_option TEXT,"
    " entered TEXT NOT NULL) WITHOUT ROWID",
    f"INSERT INTO sessions ({_V2_SESSION_COLUMNS}) "
    "SELECT a.session, a.firsts, f.ts, f.lang, a.last_id, l.node, a.finishes, a.switches, "
    "a.contact_id, c.node, c.option, a.outcome_id, o.option, '|' || coalesce(n.nodes || '|', '') "
    "FROM (SELECT session, sum(elapsed_ms IS NULL) AS firsts, "
    "min(CASE WHEN elapsed_ms IS NULL THEN id END) AS first_id, max(id) AS last_id, "
    "sum(action = 'finish') AS finishes, sum(action = 'language') AS switches, "
    "max(CASE WHEN action = 'choose' AND node IN ('channel', 'phone') THEN id END) AS contact_id, "
    "max(CASE WHEN action = 'outcome' THEN id END) AS outcome_id "
    "FROM events GROUP BY session) AS a "
    "JOIN events AS l ON l.id = a.last_id "
    "LEFT JOIN events AS f ON f.id = a.first_id "
    "LEFT JOIN events AS c ON c.id = a.contact_id "
    "LEFT JOIN events AS o ON o.id = a.outcome_id "
    "LEFT JOIN (SELECT session, group_concat(node, '|') AS nodes FROM "
    "(SELECT DISTINCT session, node FROM events WHERE action = 'enter') GROUP BY session) AS n "
    "ON n.session = a.session",
    "CREATE TRIGGER IF NOT EXISTS events_sessions AFTER INSERT ON events BEGIN "
    f"INSERT INTO sessions ({_V2_SESSION_COLUMNS}) VALUES ({_V2_EVENT_ROW.format(e='NEW.')}) "
    f"ON CONFLICT (session) DO UPDATE SET {_V2_MERGE}; END",
    *_V2_INDEXES,
    _V2_SESSIONS_INDEX,
)
# PostgreSQL: the rollup of a set of events (all stored ones in the migration; the rows of one
# INSERT statement in the trigger).
_V2_PG_ROLLUP = (
    "SELECT session, count(*) FILTER (WHERE elapsed_ms IS NULL), "
    "(array_agg(ts ORDER BY id) FILTER (WHERE elapsed_ms IS NULL))[1], "
    "(array_agg(lang ORDER BY id) FILTER (WHERE elapsed_ms IS NULL))[1], "
    "max(id), (array_agg(node ORDER BY id DESC))[1], "
    "count(*) FILTER (WHERE action = 'finish'), count(*) FILTER (WHERE action = 'language'), "
    "max(id) FILTER (WHERE action = 'choose' AND node IN ('channel', 'phone')), "
    "(array_agg(node ORDER BY id DESC) FILTER (WHERE action = 'choose' AND node IN ('channel', 'phone')))[1], "
    "(array_agg(option ORDER BY id DESC) FILTER (WHERE action = 'choose' AND node IN ('channel', 'phone')))[1], "
    "max(id) FILTER (WHERE action = 'outcome'), "
    "(array_agg(option ORDER BY id DESC) FILTER (WHERE action = 'outcome'))[1], "
    "'|' || coalesce(string_agg(DISTINCT node, '|') FILTER (WHERE action = 'enter') || '|', '') "
    "FROM {source} GROUP BY session"
)
_V2_POSTGRESQL = (
    "CREATE TABLE IF NOT EXISTS sessions ("
    " session TEXT PRIMARY KEY,"
    " firsts INTEGER NOT NULL,"
    " first_ts TIMESTAMPTZ,"
    " first_lang TEXT,"
    " last_id BIGINT NOT NULL,"
    " last_node TEXT NOT NULL,"
    " finishes INTEGER NOT NULL,"
    " switches INTEGER NOT NULL,"
    " contact_id BIGINT,"
    " contact_node TEXT,"
    " contact_option TEXT,"
    " outcome_id BIGINT,"
    " outcome_option TEXT,"
    " entered TEXT NOT NULL) WITH (fillfactor = 90)",
    f"INSERT INTO sessions ({_V2_SESSION_COLUMNS}) {_V2_PG_ROLLUP.format(source='events')}",
    # Once per INSERT statement (PostgresStore.write inserts a batch with one): a single event
    # as the SQLite trigger does it, several aggregated per session first.
    "CREATE OR REPLACE FUNCTION events_to_sessions() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path FROM CURRENT AS $$ BEGIN "
    "IF (SELECT count(*) FROM new_events) = 1 THEN "
    f"INSERT INTO sessions ({_V2_SESSION_COLUMNS}) SELECT {_V2_EVENT_ROW.format(e='')} FROM new_events "
    f"ON CONFLICT (session) DO UPDATE SET {_V2_MERGE}; "
    "ELSE "
    f"INSERT INTO sessions ({_V2_SESSION_COLUMNS}) {_V2_PG_ROLLUP.format(source='new_events')} "
    f"ON CONFLICT (session) DO UPDATE SET {_V2_MERGE_MANY}; "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER events_sessions AFTER INSERT ON events REFERENCING NEW TABLE AS new_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_to_sessions()",
    *_V2_INDEXES,
    _V2_SESSIONS_INDEX,
)


# Schema version 3: the rollup also keeps the last ``choose`` at ``problem`` and at ``order`` (id
# and option, like contact_*), the session's path for the summary's outcome-by-path table:
#
#   problem_*       id and option of the last ``choose`` at ``problem``
#   order_*         id and option of the last ``choose`` at ``order``
#
# The columns are added and filled from the events already stored, and the trigger (SQLite) or
# its function (PostgreSQL) is replaced by one that keeps them too. PostgreSQL first locks the
# events against inserts, so that no event committed during the migration is left out.
_V3_PATH_NODES = ("problem", "order")
_V3_SESSION_COLUMNS = _V2_SESSION_COLUMNS + ", " + ", ".join(
    f"{n}_id, {n}_option" for n in _V3_PATH_NODES)
_V3_PATH_MERGE = ", ".join(
    f"{n}_id = CASE WHEN excluded.{n}_id > sessions.{n}_id OR sessions.{n}_id IS NULL "
    f"THEN excluded.{n}_id ELSE sessions.{n}_id END, "
    f"{n}_option = CASE WHEN excluded.{n}_id > sessions.{n}_id OR sessions.{n}_id IS NULL "
    f"THEN excluded.{n}_option ELSE sessions.{n}_option END" for n in _V3_PATH_NODES)
_V3_MERGE = f"{_V2_MERGE}, {_V3_PATH_MERGE}"
_V3_MERGE_MANY = f"{_V2_MERGE_MANY}, {_V3_PATH_MERGE}"
_V3_EVENT_ROW = _V2_EVENT_ROW + ", " + ", ".join(
    f"CASE WHEN {{e}}action = 'choose' AND {{e}}node = '{n}' THEN {{e}}id END, "
    f"CASE WHEN {{e}}action = 'choose' AND {{e}}node = '{n}' THEN {{e}}option END"
    for n in _V3_PATH_NODES)
_V3_PG_ROLLUP = _V2_PG_ROLLUP.replace(" FROM {source} GROUP BY session", ", " + ", ".join(
    f"max(id) FILTER (WHERE action = 'choose' AND node = '{n}'), "
    f"(array_agg(option ORDER BY id DESC) FILTER (WHERE action = 'choose' AND node = '{n}'))[1]"
    for n in _V3_PATH_NODES) + " FROM {source} GROUP BY session")
_V3_SQLITE = (
    *(f"ALTER TABLE sessions ADD COLUMN {n}_{column} {kind}" for n in _V3_PATH_NODES
      for column, kind in (("id", "INTEGER"), ("option", "TEXT"))),
    "UPDATE sessions SET " + ", ".join(f"{n}_id = a.{n}_id" for n in _V3_PATH_NODES) + " FROM "
    "(SELECT session, " + ", ".join(f"max(CASE WHEN node = '{n}' THEN id END) AS {n}_id"
                                    for n in _V3_PATH_NODES)
    + " FROM events WHERE action = 'choose' AND node IN ("
    + ", ".join(f"'{n}'" for n in _V3_PATH_NODES) + ") GROUP BY session) AS a "
    "WHERE a.session = sessions.session",
    "UPDATE sessions SET " + ", ".join(
        f"{n}_option = (SELECT option FROM events WHERE id = sessions.{n}_id)" for n in _V3_PATH_NODES)
    + " WHERE " + " OR ".join(f"{n}_id IS NOT NULL" for n in _V3_PATH_NODES),
    "DROP TRIGGER IF EXISTS events_sessions",
    "CREATE TRIGGER events_sessions AFTER INSERT ON events BEGIN "
    f"INSERT INTO sessions ({_V3_SESSION_COLUMNS}) VALUES ({_V3_EVENT_ROW.format(e='NEW.')}) "
    f"ON CONFLICT (session) DO UPDATE SET {_V3_MERGE}; END",
)
_V3_POSTGRESQL = (
    "LOCK TABLE events IN SHARE MODE",
    "ALTER TABLE sessions " + ", ".join(
        f"ADD COLUMN {n}_{column} {kind}" for n in _V3_PATH_NODES
        for column, kind in (("id", "BIGINT"), ("option", "TEXT"))),
    "UPDATE sessions SET " + ", ".join(f"{n}_id = a.{n}_id, {n}_option = a.{n}_option"
                                       for n in _V3_PATH_NODES) + " FROM "
    "(SELECT session, " + ", ".join(
        f"max(id) FILTER (WHERE node = '{n}') AS {n}_id, "
        f"(array_agg(option ORDER BY id DESC) FILTER (WHERE node = '{n}'))[1] AS {n}_option"
        for n in _V3_PATH_NODES)
    + " FROM events WHERE action = 'choose' AND node IN ("
    + ", ".join(f"'{n}'" for n in _V3_PATH_NODES) + ") GROUP BY session) AS a "
    "WHERE a.session = sessions.session",
    "CREATE OR REPLACE FUNCTION events_to_sessions() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path FROM CURRENT AS $$ BEGIN "
    "IF (SELECT count(*) FROM new_events) = 1 THEN "
    f"INSERT INTO sessions ({_V3_SESSION_COLUMNS}) SELECT {_V3_EVENT_ROW.format(e='')} FROM new_events "
    f"ON CONFLICT (session) DO UPDATE SET {_V3_MERGE}; "
    "ELSE "
    f"INSERT INTO sessions ({_V3_SESSION_COLUMNS}) {_V3_PG_ROLLUP.format(source='new_events')} "
    f"ON CONFLICT (session) DO UPDATE SET {_V3_MERGE_MANY}; "
    "END IF; RETURN NULL; END $$",
)


#: Applied in order; a store records the last applied version in ``meta``.
#: Append new migrations (e.g. ``ALTER TABLE events ADD COLUMN ...``); never edit old ones.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        sqlite=(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS events ("
            " id INTEGER PRIMARY KEY,"
            " ts TEXT NOT NULL,"
            " session TEXT NOT NULL,"
            " node TEXT NOT NULL,"
            " action TEXT NOT NULL,"
            " option TEXT,"
            " lang TEXT NOT NULL,"
            " elapsed_ms INTEGER)",
            "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
            "CREATE INDEX IF NOT EXISTS events_session ON events (session, id)",
            "CREATE TABLE IF NOT EXISTS log_gaps ("
            " id INTEGER PRIMARY KEY,"
            " ts TEXT NOT NULL,"
            " session TEXT NOT NULL,"
            " dropped INTEGER NOT NULL)",
        ),
        postgresql=(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS events ("
            " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " ts TIMESTAMPTZ NOT NULL,"
            " session TEXT NOT NULL,"
            " node TEXT NOT NULL,"
            " action TEXT NOT NULL,"
            " option TEXT,"
            " lang TEXT NOT NULL,"
            " elapsed_ms BIGINT)",
            "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
            "CREATE INDEX IF NOT EXISTS events_session ON events (session, id)",
            "CREATE TABLE IF NOT EXISTS log_gaps ("
            " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " ts TIMESTAMPTZ NOT NULL,"
            " session TEXT NOT NULL,"
            " dropped INTEGER NOT NULL)",
        ),
    ),
    Migration(version=2, sqlite=_V2_SQLITE, postgresql=_V2_POSTGRESQL),
    Migration(version=3, sqlite=_V3_SQLITE, postgresql=_V3_POSTGRESQL),
)
#: The schema version this code writes.
SCHEMA_VERSION: int = MIGRATIONS[-1].version
#: The indexes that serve widgets/summary.py (created by schema version 2).
SUMMARY_INDEXES: tuple[str, ...] = _V2_INDEXES
#: The nodes whose last ``choose`` the ``sessions`` rollup keeps (contact_id/_node/_option).
ROLLUP_CONTACT_NODES: tuple[str, ...] = ("channel", "phone")
#: The nodes whose last ``choose`` the rollup keeps each on its own (<node>_id/_option), from
#: schema version 3.
ROLLUP_PATH_NODES: tuple[str, ...] = _V3_PATH_NODES
#: The first schema version whose rollup has the ROLLUP_PATH_NODES columns.
ROLLUP_PATH_VERSION = 3

_EVENT_COLUMNS = "ts, session, node, action, option, lang, elapsed_ms"
_PG_INSERT_EVENT = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
# A batch from one array per column; ids follow the list order.
_PG_INSERT_EVENTS = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM unnest("
    "%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[]) "
    f"WITH ORDINALITY AS batch ({_EVENT_COLUMNS}, n) ORDER BY n"
)
_SET_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('schema_version', {p}) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _parse_version(value: object, where: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreCorrupt(f"{where}: meta.schema_version is not a number") from None


def _check_not_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has log schema version {version}, but this code knows only "
            f"versions up to {SCHEMA_VERSION}; upgrade the guide to use it (nothing was changed)"
        )


def _pending_migrations(version: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > version]


# --------------------------------------------------------------------------- stores


class EventStore(abc.ABC):
    """Where events go. Writes are atomic: all of a call's rows or none."""

    #: 'sqlite' or 'postgresql': which SQL dialect ``query`` speaks.
    dialect: str
    #: The parameter placeholder of ``query``: '?' (sqlite) or '%s' (postgresql).
    placeholder: str

    @abc.abstractmethod
    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        """Store ``events`` (and ``gaps``) in one transaction.

        Raises ValueError for an invalid row (nothing is written) and
        StoreUnavailable for any I/O, lock or connection problem.
        """

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

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_utc(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC)


def _sqlite_ts(ts: dt.datetime) -> str:
    """ISO-8601 UTC text with microseconds, e.g. 2025-01-31T09:05:00.000000Z (sorts as time)."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sqlite_code(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


_SQLITE_BUSY = 5
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class SQLiteStore(EventStore):
    """The log in one SQLite file (WAL mode), shared by many processes.

    Opening checks the file before anything is written to it: a file that is
    not SQLite, or an SQLite database without our ``meta`` table but with other
    tables, raises StoreCorrupt and is left byte-for-byte untouched (no journal
    mode switch, no WAL file). ``read_only=True`` opens the file read-only
    (``mode=ro``), e.g. for the summary dashboard; writes then raise
    StoreUnavailable.

    Durability: ``synchronous=NORMAL`` in WAL mode, i.e. a commit is never
    corrupted, but the last commits may be lost on power failure (not on a
    process crash), which keeps a write well under a millisecond.
    """

    dialect = "sqlite"
    placeholder = "?"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = _DEFAULT_TIMEOUT,
                 read_only: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.timeout = float(timeout)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open()

    # -- opening

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if not self.read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the log folder {path.parent}: {exc}") from exc
        self._check_header()
        # timeout=0: lock waits happen in _retry_busy, with finer-grained sleeps
        # than SQLite's busy handler (1, 2, 5, ... 100 ms), and also where that
        # handler is not called at all (the journal mode switch).
        try:
            if self.read_only:
                conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=0,
                                       isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the log database {path}: {exc}") from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_header(self) -> None:
        """Refuse a non-empty file that does not start with the SQLite header (read only)."""
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the log database {self.path}: {exc}") from exc
        if header and header != _SQLITE_HEADER:
            raise StoreCorrupt(
                f"{self.path} is not an SQLite database; it was left untouched. "
                "Move it away or point GUIDE_LOG_URL elsewhere."
            )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check what the file holds, then switch to WAL and migrate if it is ours.

        Retried as a whole while the database is busy (every step is idempotent).
        """
        try:
            self._retry_busy(lambda: self._prepare_once(conn))
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot open") from exc

    def _prepare_once(self, conn: sqlite3.Connection) -> None:
        version = self._version(conn)
        _check_not_newer(version, str(self.path))
        if not self.read_only:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
        if not self.read_only and _pending_migrations(version):
            self._migrate(conn)

    def _version(self, conn: sqlite3.Connection) -> int:
        """Our schema version; 0 for an empty database; StoreCorrupt for a foreign one."""
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if not tables:
            return 0
        if "meta" not in tables:
            raise StoreCorrupt(
                f"{self.path} is an SQLite database of something else (tables: "
                f"{', '.join(sorted(tables)[:5])}); it was left untouched. "
                "Move it away or point GUIDE_LOG_URL elsewhere."
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StoreCorrupt(f"{self.path}: meta table without schema_version; it was left untouched")
        return _parse_version(row[0], str(self.path))

    def _migrate(self, conn: sqlite3.Connection) -> None:
        self._begin(conn)
        try:
            version = self._version(conn)  # again: another process may have migrated meanwhile
            _check_not_newer(version, str(self.path))
            for migration in _pending_migrations(version):
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(_SET_VERSION.format(p="?"), (str(migration.version),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _retry_busy(self, action: Callable[[], _T]) -> _T:
        """``action()``, retried with short jittered sleeps while SQLITE_BUSY, up to ``timeout``."""
        deadline = time.monotonic() + self.timeout
        delay = 0.0001
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                now = time.monotonic()
                if _sqlite_code(exc) != _SQLITE_BUSY or now >= deadline:
                    raise
                time.sleep(min(delay * random.uniform(0.5, 1.5), deadline - now))
                delay = min(delay * 2, 0.002)

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE: take the write lock now, waiting up to ``timeout``."""
        self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreUnavailable:
        if _sqlite_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return StoreCorrupt(f"{self.path} is damaged or not a log database ({exc}); it was left untouched")
        return StoreUnavailable(f"{doing} the log database {self.path}: {exc}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable(f"the log database {self.path} is closed")
        return self._conn

    # -- use

    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        for event in events:
            validate_event(event)
        for gap in gaps:
            _validate_gap(gap)
        if not events and not gaps:
            return
        event_rows = [(_sqlite_ts(e.ts), *e[1:]) for e in events]
        gap_rows = [(_sqlite_ts(g.ts), g.session, g.dropped) for g in gaps]
        with self._lock:
            conn = self._connection()
            try:
                self._begin(conn)
                try:
                    conn.executemany(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     event_rows)
                    if gap_rows:
                        conn.executemany("INSERT INTO log_gaps (ts, session, dropped) VALUES (?, ?, ?)", gap_rows)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc, "cannot write to") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("PRAGMA query_only=ON")
                try:
                    return self._retry_busy(lambda: self._select(conn, sql, params))
                finally:
                    conn.execute("PRAGMA query_only=OFF")
            except sqlite3.Error as exc:
                raise self._error(exc, "cannot read") from exc

    @staticmethod
    def _select(conn: sqlite3.Connection, sql: str,
                params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = conn.execute(sql, tuple(params))
        columns = [d[0] for d in cur.description or ()]
        return columns, cur.fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class PostgresStore(EventStore):
    """The log in a PostgreSQL database; tables are created on first use.

    psycopg is imported here, when the store is opened, never at module import.
    A lost connection makes the failing call raise StoreUnavailable; the next
    call reconnects.
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
            conn = psycopg.connect(self.url, autocommit=True,
                                   connect_timeout=max(2, int(self.timeout + 0.999)))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the log database {_redact(self.url)}: {exc}") from exc
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(self.timeout * 1000)}ms",))
            self._prepare(conn)
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
                version = _parse_version(row[0], where)
            _check_not_newer(version, where)
            for migration in _pending_migrations(version):
                for statement in migration.postgresql:
                    conn.execute(statement)
                conn.execute(_SET_VERSION.format(p="%s"), (str(migration.version),))

    def _fail(self, exc: Exception, doing: str) -> StoreUnavailable:
        """Drop the connection (the next call reconnects) and describe the failure."""
        try:
            if self._conn is not None:
                self._conn.close()
        finally:
            self._conn = None
        return StoreUnavailable(f"{doing} the log database {_redact(self.url)}: {exc}")

    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        for event in events:
            validate_event(event)
        for gap in gaps:
            _validate_gap(gap)
        if not events and not gaps:
            return
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    # One statement per call, so that the sessions trigger runs once.
                    if len(events) == 1:
                        cur.execute(_PG_INSERT_EVENT, tuple(events[0]))
                    elif events:
                        cur.execute(_PG_INSERT_EVENTS, [list(column) for column in zip(*events)])
                    if gaps:
                        cur.executemany("INSERT INTO log_gaps (ts, session, dropped) VALUES (%s, %s, %s)",
                                        [tuple(g) for g in gaps])
            except self._psycopg.Error as exc:
                raise self._fail(exc, "cannot write to") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
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


# --------------------------------------------------------------------------- configuration


def _data_dir() -> Path:
    """``$GUIDE_DATA_DIR``, or the project's ``data`` folder (beside the widgets package)."""
    env = os.environ.get("GUIDE_DATA_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "data"


def log_url() -> str:
    """The configured store: ``$GUIDE_LOG_URL``, else ``sqlite:///$GUIDE_DATA_DIR/events.sqlite3``."""
    return os.environ.get("GUIDE_LOG_URL") or f"sqlite://{(_data_dir() / 'events.sqlite3').absolute()}"


def open_store(url: str | os.PathLike[str] | None = None, *, timeout: float | None = None) -> EventStore:
    """Open the store at ``url`` (default: ``log_url()``).

    ``url`` is ``postgresql://...`` / ``postgres://...``, ``sqlite:///abs/path``
    (optionally ``?mode=ro``) or a plain file path (str or Path). ``timeout`` (seconds) bounds
    lock waits and connecting; default ``$GUIDE_LOG_TIMEOUT`` or 5 s.
    Raises StoreUnavailable (or a subclass) if the store cannot be used, and
    ValueError for an unsupported URL.
    """
    if timeout is None:
        timeout = float(os.environ.get("GUIDE_LOG_TIMEOUT") or _DEFAULT_TIMEOUT)
    if isinstance(url, os.PathLike):
        return SQLiteStore(url, timeout=timeout)
    url = url or log_url()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url, timeout=timeout)
    if scheme == "sqlite":
        rest = url[len("sqlite://"):]
        path, _, query = rest.partition("?")
        options = parse_qs(query)
        mode = options.pop("mode", ["rwc"])[-1]
        if options or mode not in ("ro", "rw", "rwc"):
            raise ValueError("sqlite log URLs accept only ?mode=ro")
        if not path:
            raise ValueError("sqlite log URL without a path")
        return SQLiteStore(unquote(path), timeout=timeout, read_only=mode == "ro")
    if scheme:
        raise ValueError(f"unsupported log URL scheme {scheme!r}: use sqlite:/// or postgresql://")
    return SQLiteStore(url, timeout=timeout)


# --------------------------------------------------------------------------- session logger


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SessionLogger:
    """The log of one visit. ``log()`` never raises.

    ``store`` is an EventStore or a factory returning one (called lazily, and
    again after a failure, so a store that comes back is reopened). While the
    store is unavailable, events wait in a buffer of ``buffer_limit`` events;
    on overflow the oldest are dropped and their number is recorded in the
    ``log_gaps`` table once the store is back. Retries happen on ``flush()``
    and on ``log()`` calls at least ``retry_after`` seconds after the last
    failure (so an outage does not slow every click down by the lock timeout).
    """

    def __init__(
        self,
        store: EventStore | Callable[[], EventStore],
        session_id: str | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        buffer_limit: int = 500,
        on_status: Callable[[bool], None] | None = None,
        retry_after: float = 2.0,
    ) -> None:
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        self.session = session_id or uuid.uuid4().hex
        if not _is_id(self.session):
            raise ValueError("session_id is not a valid id")
        if isinstance(store, EventStore):
            self._store: EventStore | None = store
            self._factory: Callable[[], EventStore] | None = None
        else:
            self._store = None
            self._factory = store
        self._clock = clock or _utcnow
        self._buffer: collections.deque[Event] = collections.deque()
        self._limit = buffer_limit
        self.on_status = on_status
        self.retry_after = retry_after
        self._lock = threading.RLock()
        self._previous: dt.datetime | None = None
        self._healthy = True
        self._next_retry = 0.0
        self._dropped = 0
        self._unrecorded_drops = 0
        self._refused = 0

    @property
    def healthy(self) -> bool:
        """False while the last attempt to reach the store failed."""
        return self._healthy

    @property
    def pending(self) -> int:
        """Events waiting in the buffer."""
        return len(self._buffer)

    @property
    def dropped(self) -> int:
        """Events lost to buffer overflow during this visit."""
        return self._dropped

    @property
    def refused(self) -> int:
        """log() calls refused because a field was not valid (nothing was stored)."""
        return self._refused

    def log(self, node: str, action: str, option: str | None = None, lang: str = "ko") -> bool:
        """Record one interaction; True if it was accepted (stored now or buffered)."""
        try:
            with self._lock:
                ts = self._clock()
                elapsed = None
                if self._previous is not None:
                    elapsed = max(0, round((ts - self._previous).total_seconds() * 1000))
                event = Event(ts, self.session, node, action, option, lang, elapsed)
                try:
                    validate_event(event)
                except ValueError as exc:
                    self._refused += 1
                    _log.warning("interaction log: refused an event (%s)", exc)
                    return False
                self._previous = ts
                if len(self._buffer) >= self._limit:
                    self._buffer.popleft()
                    self._dropped += 1
                    self._unrecorded_drops += 1
                self._buffer.append(event)
                if self._healthy or time.monotonic() >= self._next_retry:
                    self._flush()
                return True
        except Exception:
            _log.exception("interaction log: unexpected error")
            return False

    def flush(self) -> bool:
        """Try to write the buffered events now; True if nothing is left pending."""
        try:
            with self._lock:
                self._flush()
                return not self._buffer and not self._unrecorded_drops
        except Exception:
            _log.exception("interaction log: unexpected error")
            return False

    def close(self) -> None:
        """Flush, then close the store if this logger opened it."""
        self.flush()
        with self._lock:
            if self._factory is not None and self._store is not None:
                self._close_store()

    def _flush(self) -> None:
        if not self._buffer and not self._unrecorded_drops:
            return
        try:
            if self._store is None:
                assert self._factory is not None
                self._store = self._factory()
            events = list(self._buffer)
            gaps = [Gap(self._clock(), self.session, self._unrecorded_drops)] if self._unrecorded_drops else []
            self._store.write(events, gaps)
        except Exception as exc:
            self._next_retry = time.monotonic() + self.retry_after
            if self._factory is not None:
                self._close_store()
            if self._healthy:
                _log.warning("interaction log: store unavailable, buffering events (%s)", exc)
            else:
                _log.debug("interaction log: store still unavailable (%s)", exc)
            self._set_health(False)
            return
        for _ in events:
            self._buffer.popleft()
        self._unrecorded_drops = 0
        if not self._healthy:
            _log.info("interaction log: store is back, %d buffered events written", len(events))
        self._set_health(True)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                _log.debug("interaction log: error closing the store", exc_info=True)

    def _set_health(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if self.on_status is not None:
            try:
                self.on_status(healthy)
            except Exception:
                _log.exception("interaction log: on_status callback failed")
