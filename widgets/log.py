"""The interaction log: one row per visitor interaction, never free text.

Each row holds a UTC timestamp, an anonymous random session id (one per visit),
the flow node id, the action, the chosen option id (or NULL), the language and
the milliseconds since the session's previous event (NULL for the first one).
Every field is validated structurally before it can reach a store, so nothing a
person typed, and no personal data, is ever written.

Tables: ``events`` (those rows), ``log_gaps`` (how many events of a session were not
written: lost to a buffer overflow while the store was away, or over the session's rate
limit), ``meta`` (the schema version) and, from schema version 2, ``sessions``: one row per
session, derived from its events by a trigger as they are inserted, for the summary
(see MIGRATIONS; version 3 adds the session's answers at ``problem`` and ``order``).

Stores:
    SQLiteStore     the embedded default, ``$GUIDE_DATA_DIR/events.sqlite3``
                    (WAL mode, one short ``BEGIN IMMEDIATE`` transaction per
                    write, safe with many kernel processes writing at once)
    PostgresStore   when ``GUIDE_LOG_URL`` is a ``postgresql://`` URL
                    (psycopg is imported only when such a store is opened)

``SessionLogger`` is what the view uses: one per visitor, ``log()`` never
raises, a visitor's events are rate-limited, and events are kept in a bounded
buffer while the store is away, retried in the background and once more when the
session closes (at the latest when the kernel exits). Every event is either written
or counted in ``log_gaps``; what cannot even be counted there (the store is still
away when the session closes) is reported in the server log.

Only the standard library is imported at module import time.
"""

from __future__ import annotations

import abc
import atexit
import collections
import datetime as dt
import logging
import math
import os
import random
import re
import sqlite3
import struct
import threading
import time
import uuid
import weakref
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
#: A visitor's sustained event rate (events per second) and burst (events) before events are
#: refused; ``$GUIDE_LOG_RATE`` / ``$GUIDE_LOG_BURST`` override them (``GUIDE_LOG_RATE=off``: no
#: limit). A click is two events (the action and the step it enters), so the burst lets a visitor
#: click through the whole guide, double-clicks and held-down keys included, as fast as they can.
DEFAULT_RATE = 5.0
DEFAULT_BURST = 60
# Background retries while the store is away: retry_after, doubling up to this (seconds).
_RETRY_MAX = 30.0
_RETRY_MIN = 0.05
# How soon a count of rate-limited events is written when no further event carries it.
_GAP_DELAY = 1.0
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
    """``dropped`` events of ``session`` before ``ts`` were not written.

    They were lost to a buffer overflow while the store was unavailable, or refused
    because the session went over its rate limit; one row may count both.
    """

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

# Linux: FS_IOC_GETFLAGS (_IOR('f', 1, long)) and the flags that forbid writing a file in place.
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20


class _Held(NamedTuple):
    """A read-only descriptor of one file, and that file's identity (st_dev, st_ino)."""

    key: tuple[int, int]
    fd: int
    path: Path


class _FileHandles:
    """Read-only descriptors of the SQLite files this process uses, shared and kept open.

    Closing *any* descriptor of a file releases every POSIX lock the process holds on it,
    SQLite's included (in WAL mode a connection holds a shared lock on the database file and
    one on its ``-shm`` file for as long as it is open; losing them lets another process delete
    the WAL under it, or re-initialise the ``-shm`` it has mapped). So the checks of
    SQLiteStore never open and close these files while a connection may use them: each file
    is opened once, and closed only when no store of this process holds it any more (after
    the stores have closed their connections). A file that must outlive every connection
    (see ``SQLiteStore._keep``) is never closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[tuple[int, int], list[int]] = {}  # key -> [references, fd, more fds]

    def hold(self, path: Path) -> _Held | None:
        """Hold the file at ``path``; None if there is none. Raises OSError if it cannot be read."""
        with self._lock:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            key = (st.st_dev, st.st_ino)
            entry = self._files.get(key)
            if entry is None:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                st = os.fstat(fd)
                key = (st.st_dev, st.st_ino)  # the file may have been replaced meanwhile
                entry = self._files.get(key)
                if entry is None:
                    entry = self._files[key] = [0, fd]
                else:
                    entry.append(fd)  # never closed before the others (see above)
            entry[0] += 1
            return _Held(key, entry[1], path)

    def release(self, held: _Held) -> None:
        """Give up one hold; the last one closes the file's descriptors."""
        with self._lock:
            entry = self._files.get(held.key)
            if entry is None:
                return
            entry[0] -= 1
            if entry[0] <= 0:
                del self._files[held.key]
                for fd in entry[1:]:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def after_fork(self) -> None:
        self._lock = threading.Lock()


_HANDLES = _FileHandles()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HANDLES.after_fork)


class _ForkGuard:
    """Keeps ``os.fork()`` from happening while a thread of this process is inside SQLite.

    A child process gets a copy of every lock as it was at the fork, and the threads holding
    them do not exist there: had a thread (e.g. a SessionLogger's background retry) held one of
    SQLite's process-wide mutexes, the child's first SQLite call would wait forever. Store
    calls run inside ``with _SQLITE_CALLS:``; before a fork the forking thread waits (up to
    30 s) until none is running and holds new ones back until the fork is done.
    """

    _WAIT = 30.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False

    def __enter__(self) -> None:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held through the fork
        self._forking = True
        deadline = time.monotonic() + self._WAIT
        while self._active:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break  # fork anyway rather than hang the caller
            self._cond.wait(remaining)

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        self._reset()  # no other thread exists here


_SQLITE_CALLS = _ForkGuard()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_SQLITE_CALLS.before_fork, after_in_parent=_SQLITE_CALLS.after_fork_in_parent,
                        after_in_child=_SQLITE_CALLS.after_fork_in_child)

# Connections that must never be used or closed again (see SQLiteStore._keep).
_KEPT: list[sqlite3.Connection] = []


def _read_header(held: _Held) -> bytes:
    """The first 16 bytes of the held file, read through its descriptor."""
    return os.pread(held.fd, len(_SQLITE_HEADER), 0)


def _cannot_write_in_place(held: _Held) -> bool:
    """True if the held file is immutable or append-only (``chattr +i`` / ``+a``).

    Such a file cannot be written through a shared memory mapping either: SQLite's
    ``-shm`` is one, and a write to it then kills the process with SIGBUS (ext4, for
    one, refuses the page fault). False where the flags cannot be read (not Linux,
    or a filesystem without them, which then cannot set them either).
    """
    try:
        import fcntl
    except ImportError:
        return False
    buf = bytearray(8)
    try:
        fcntl.ioctl(held.fd, _FS_IOC_GETFLAGS, buf, True)
    except (OSError, OverflowError, ValueError):
        return False
    flags = struct.unpack_from("=i", buf)[0]
    return bool(flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL))


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

    The file can change under an open store; before each write and each query
    (a few microseconds: one ``stat``, one 16-byte read, one ``ioctl``) the store
    checks the files it uses:

    - The database was deleted, or moved and maybe replaced (another inode at the
      path): the old connection is closed and the store continues in the file at
      the path (creating a new log there if there is none), so no event goes into
      a file nobody will read. When nothing is at the path yet, the moved file
      first receives everything committed to it (a checkpoint), so it is complete
      where it is now; so does a file moved together with its ``-wal`` and
      ``-shm``, the safe way to move it. Moved without them, it loses what
      other processes had committed to it but not yet copied into it, as soon as
      a new log is created at the path.
    - The file no longer starts with the SQLite header (something wrote over it):
      StoreCorrupt. The connection is then never used or closed again until the
      process exits, because closing it would copy the WAL into that file; the
      file stays as it was found.
    - The ``-shm`` file is immutable or append-only (``chattr +i``, e.g. on the
      whole data folder): StoreUnavailable, and the connection is likewise left
      alone, because SQLite writes that file through a memory mapping, and a write
      to an immutable mapping kills the process with SIGBUS. A flag set between
      the check and SQLite's next write can still do that: the check makes the
      window microseconds wide, it cannot close it.

    A store whose connection was left alone opens a new one on its next use,
    once the file is usable again.
    """

    dialect = "sqlite"
    placeholder = "?"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = _DEFAULT_TIMEOUT,
                 read_only: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.timeout = float(timeout)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._closed = False
        #: The files of the open connection, held (see _FileHandles): "db", "wal", "shm".
        self._held: dict[str, _Held] = {}
        with _SQLITE_CALLS:
            self._conn: sqlite3.Connection | None = self._open()

    # -- opening

    def _sidecar(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    def _hold(self, held: dict[str, _Held], name: str, path: Path) -> _Held | None:
        """Hold ``path`` as ``held[name]`` (replacing and releasing what was there)."""
        try:
            new = _HANDLES.hold(path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}") from exc
        old = held.pop(name, None)
        if new is not None:
            held[name] = new
        if old is not None:
            _HANDLES.release(old)
        return new

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if not self.read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the log folder {path.parent}: {exc}") from exc
        held: dict[str, _Held] = {}
        conn: sqlite3.Connection | None = None
        try:
            db = self._hold(held, "db", path)
            if db is not None:
                self._check_header(db, allow_empty=True)
            shm = self._hold(held, "shm", self._sidecar("-shm"))
            if shm is not None:
                # Before connecting: a connection of this process may still have it mapped.
                self._check_shm(shm)
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
            self._prepare(conn)
            # Hold the files as the connection now uses them (created just now, perhaps).
            for name, suffix in (("db", ""), ("wal", "-wal"), ("shm", "-shm")):
                self._hold(held, name, self._sidecar(suffix))
            if "db" not in held:
                raise StoreUnavailable(f"the log database {path} disappeared while it was opened")
        except BaseException:
            if conn is not None:
                conn.close()
            for h in held.values():
                _HANDLES.release(h)
            raise
        self._held = held
        return conn

    def _check_header(self, db: _Held, allow_empty: bool = False) -> None:
        """Refuse a file that does not start with the SQLite header (read only).

        ``allow_empty``: an empty file is fine (a new store is created in it).
        """
        try:
            header = _read_header(db)
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the log database {self.path}: {exc}") from exc
        if header != _SQLITE_HEADER and (header or not allow_empty):
            raise StoreCorrupt(
                f"{self.path} is not an SQLite database; it was left untouched. "
                "Move it away or point GUIDE_LOG_URL elsewhere."
            )

    def _check_shm(self, shm: _Held) -> None:
        if _cannot_write_in_place(shm):
            raise StoreUnavailable(
                f"{shm.path} is immutable or append-only (chattr); the log database is left "
                "alone until it can be written again")

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
        """The connection, once the files are checked (see the class docstring); caller holds _lock."""
        if self._closed:
            raise StoreUnavailable(f"the log database {self.path} is closed")
        if self._conn is None:  # left alone, or not reopened after a move: try again
            self._conn = self._open()
        self._check_files()
        assert self._conn is not None
        return self._conn

    def _check_files(self) -> None:
        """Raise, or move on to the file now at the path, if the files changed under the connection."""
        held = self._held
        if "shm" not in held:  # SQLite makes it on first use (a read-only store may open first)
            self._hold(held, "shm", self._sidecar("-shm"))
        shm = held.get("shm")
        if shm is not None and _cannot_write_in_place(shm):
            self._keep()
            self._check_shm(shm)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the log database {self.path}: {exc}") from exc
        if st is None or (st.st_dev, st.st_ino) != held["db"].key:
            self._moved()
            return
        try:
            self._check_header(held["db"])
        except StoreCorrupt:
            self._keep()
            raise StoreCorrupt(
                f"{self.path} was overwritten and is no longer an SQLite database; it is left "
                "untouched (writing to it stopped). Move it away to start a new log there.") from None

    def _moved(self) -> None:
        """The database at the path was deleted or replaced: continue in whatever is there now."""
        _log.warning("interaction log: %s was moved or deleted while in use; continuing with the "
                     "log database at that path (a new one if there is none)", self.path)
        self._retire()
        self._conn = self._open()

    def _retire(self) -> None:
        """Close the connection, unless closing it could harm a file (then keep it, see _keep)."""
        conn, held = self._conn, self._held
        if conn is None:
            return
        db, shm = held["db"], held.get("shm")
        try:
            intact = _read_header(db) == _SQLITE_HEADER
        except OSError:
            intact = False
        if not intact or (shm is not None and _cannot_write_in_place(shm)):
            self._keep()
            return
        self._conn, self._held = None, {}
        try:
            if self._moved_away_alone(held):
                # Give the moved file what was committed to it, while its WAL is still its own.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (OSError, sqlite3.Error):
            _log.debug("interaction log: checkpoint of the moved log database failed", exc_info=True)
        finally:
            conn.close()
            for h in held.values():
                _HANDLES.release(h)

    def _moved_away_alone(self, held: dict[str, _Held]) -> bool:
        """True if the database was renamed (not deleted) and the WAL this connection uses cannot
        belong to another database: nothing is at the path yet, or its ``-wal`` and ``-shm`` were
        moved (or deleted) too, so the files at their names are not the ones used here."""
        if self.read_only or os.fstat(held["db"].fd).st_nlink == 0:
            return False
        if not os.path.lexists(self.path):
            return True
        for name, suffix in (("wal", "-wal"), ("shm", "-shm")):
            try:
                st = os.stat(self._sidecar(suffix))
            except FileNotFoundError:
                continue
            if name not in held or (st.st_dev, st.st_ino) == held[name].key:
                return False
        return True

    def _keep(self) -> None:
        """Never use or close this connection again, nor release its files, until the process exits.

        Closing it would checkpoint its WAL into the database file (writing into a file that
        is not ours any more) or touch an ``-shm`` that can no longer be written (SIGBUS), and
        closing our descriptors of those files would drop the connection's locks. The process
        keeps one idle connection until it exits; the operating system then closes it
        without SQLite writing anything.
        """
        conn, self._conn = self._conn, None
        self._held = {}
        if conn is None:
            return
        _KEPT.append(conn)
        try:  # one reference that nothing gives back: not even interpreter shutdown frees it
            import ctypes

            ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))
        except Exception:  # noqa: BLE001 - then _KEPT keeps it until shutdown
            _log.debug("interaction log: cannot pin a connection", exc_info=True)

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
        with _SQLITE_CALLS, self._lock:
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
        with _SQLITE_CALLS, self._lock:
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
        with _SQLITE_CALLS, self._lock:
            self._closed = True
            self._retire()

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


def _env_limit(name: str, default: float, *, integer: bool) -> float:
    """A positive number from ``$name`` (``off``: no limit), else ``default`` (with a warning if unusable)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "none", "inf", "unlimited"):
        return math.inf
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isnan(value):
        _log.warning("interaction log: ignoring %s=%r (expected a positive number or 'off')", name, raw)
        return default
    return value


# Loggers to close when the process exits (SessionLogger.close_at_exit); weak, so that a
# logger nobody uses any more can still be garbage collected.
_CLOSE_AT_EXIT: weakref.WeakSet[SessionLogger] = weakref.WeakSet()
_close_at_exit_registered = False
_close_at_exit_lock = threading.Lock()


def _close_loggers_at_exit() -> None:
    for logger in list(_CLOSE_AT_EXIT):
        try:
            logger.close()
        except Exception:  # noqa: BLE001 - an exit hook must not raise
            _log.exception("interaction log: closing a session logger at exit failed")


class SessionLogger:
    """The log of one visit. ``log()`` never raises.

    ``store`` is an EventStore or a factory returning one (called lazily, and
    again after a failure, so a store that comes back is reopened).

    Every event accepted by ``log()`` is written to the store, or counted in
    the ``log_gaps`` table, or (only if the store is still unavailable when the
    logger closes) reported in the server log as lost:

    - Rate limit: a token bucket per session, ``burst`` events at once and
      ``rate`` events per second sustained (defaults DEFAULT_BURST and
      DEFAULT_RATE, or ``$GUIDE_LOG_BURST`` and ``$GUIDE_LOG_RATE``; ``math.inf``
      or ``GUIDE_LOG_RATE=off`` turns it off). A fast visitor never reaches it;
      a script sending clicks over the websocket does. Events over the limit are
      not written: ``log()`` returns False for them, and their number is
      recorded in ``log_gaps`` with the next write, or at most ~1 s later.
    - Store unavailable: events wait in a buffer of ``buffer_limit`` events; on
      overflow the oldest are dropped. Both are counted in ``log_gaps`` once the
      store is back (one ``log_gaps`` row can count overflow and rate-limited
      events together). Retries happen on ``flush()``, on ``log()`` calls at
      least ``retry_after`` seconds after the last failure (so an outage does not
      slow every click down by the lock timeout) and in the background: a daemon
      timer retries after ``retry_after`` seconds, doubling up to 30 s, until the
      buffer is written, so the events arrive even if the visitor does nothing
      more. The timer never keeps the process alive and stops at ``close()``.
    - ``close()`` makes a last attempt. Events it cannot write are counted as
      lost (``dropped``); the store being unavailable, that count cannot go into
      ``log_gaps`` either, so it is reported with ``logging.error`` in the server
      log. Call ``close_at_exit()`` to have ``close()`` run when the process
      exits normally (a kernel asked to shut down, as the server does when a
      page closes). A process that is killed (SIGKILL, or the server's kill
      after its shutdown grace period, which the last attempt can exceed if the
      store makes it wait for a lock up to its timeout) runs no exit code: what
      was still buffered then is lost without a trace. The background retries
      make that only what an outage still in progress has buffered.

    ``on_status(healthy)`` is called when writing starts failing or works again
    (not for rate-limited events, nor after ``close()``), possibly from the
    timer's thread.
    ``monotonic`` (default ``time.monotonic``) times the rate limit and the retries.
    """

    def __init__(
        self,
        store: EventStore | Callable[[], EventStore],
        session_id: str | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        buffer_limit: int = 500,
        on_status: Callable[[bool], None] | None = None,
        retry_after: float = 2.0,
        *,
        rate: float | None = None,
        burst: int | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        if rate is None:
            rate = _env_limit("GUIDE_LOG_RATE", DEFAULT_RATE, integer=False)
        if burst is None:
            burst = _env_limit("GUIDE_LOG_BURST", DEFAULT_BURST, integer=True)  # type: ignore[assignment]
        if not rate > 0 or not burst >= 1:  # also refuses NaN
            raise ValueError("rate must be positive and burst at least 1")
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
        self._monotonic = monotonic or time.monotonic
        self._buffer: collections.deque[Event] = collections.deque()
        self._limit = buffer_limit
        self.on_status = on_status
        self.retry_after = retry_after
        self.rate = float(rate)
        self.burst = float(burst)
        # _lock: the buffer, the counters, the health, the timer (held briefly).
        # _write_lock: one write (and store open/close) at a time; taken before _lock, never after.
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._previous: dt.datetime | None = None
        self._healthy = True
        self._next_retry = 0.0
        self._failures = 0
        self._dropped = 0
        self._limited = 0
        self._unrecorded_drops = 0
        self._refused = 0
        self._inflight = 0  # buffered events (from the left) being written right now
        self._tokens = self.burst
        self._refilled = self._monotonic()
        self._timer: threading.Timer | None = None
        self._writer: int | None = None  # the thread writing now
        self._closed = False

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
        """Events lost because the store was unavailable during this visit: buffer
        overflow, or still buffered when the logger closed."""
        return self._dropped

    @property
    def limited(self) -> int:
        """Events not written because the session was over its rate limit."""
        return self._limited

    @property
    def refused(self) -> int:
        """log() calls refused because a field was not valid (nothing was stored)."""
        return self._refused

    def log(self, node: str, action: str, option: str | None = None, lang: str = "ko") -> bool:
        """Record one interaction; True if it was accepted (stored now or buffered).

        False if a field is not valid (nothing is recorded) or the session is over
        its rate limit (the event is counted in ``log_gaps``).
        """
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
                if not self._take_token():
                    self._limited += 1
                    self._unrecorded_drops += 1
                    if self._limited == 1:
                        _log.warning("interaction log: session %s is over the rate limit (%g events/s, "
                                     "burst %g); events over it are counted in log_gaps, not written",
                                     self.session, self.rate, self.burst)
                    self._schedule(_GAP_DELAY)
                    return False
                if len(self._buffer) >= self._limit:
                    self._drop_oldest()
                self._buffer.append(event)
                write_now = self._healthy or self._monotonic() >= self._next_retry
            if write_now:
                self._drain()
            return True
        except Exception:
            _log.exception("interaction log: unexpected error")
            return False

    def flush(self) -> bool:
        """Try to write the buffered events now; True if nothing is left pending."""
        try:
            self._drain()
            with self._lock:
                return not self._buffer and not self._unrecorded_drops
        except Exception:
            _log.exception("interaction log: unexpected error")
            return False

    def close(self) -> None:
        """Stop retrying, make a last attempt to write, then close the store if this logger opened it.

        What is still not written is counted as lost and reported in the server log
        (the store being unavailable, not in ``log_gaps``). May be called more than once.
        """
        try:
            with self._lock:
                self._closed = True
                timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            self._drain()  # gives up (counts and reports) if it fails, the logger being closed
            if self._writer != threading.get_ident():  # not from within a write (on_status)
                with self._write_lock, self._lock:
                    if self._factory is not None and self._store is not None:
                        self._close_store()
        except Exception:
            _log.exception("interaction log: unexpected error")
        finally:
            _CLOSE_AT_EXIT.discard(self)

    def close_at_exit(self) -> SessionLogger:
        """Have ``close()`` run when the process exits normally (weakly: this does not keep
        the logger alive); returns the logger."""
        global _close_at_exit_registered
        with _close_at_exit_lock:
            if not _close_at_exit_registered:
                atexit.register(_close_loggers_at_exit)
                _close_at_exit_registered = True
            _CLOSE_AT_EXIT.add(self)
        return self

    # -- internals

    def _take_token(self) -> bool:
        """The token bucket: True if one more event is within the rate limit (caller holds _lock)."""
        if math.isinf(self.rate):
            return True
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _drop_oldest(self) -> None:
        """Make room for one event (caller holds _lock): drop the oldest not being written now."""
        if self._inflight < len(self._buffer):
            del self._buffer[self._inflight]
            self._dropped += 1
            self._unrecorded_drops += 1
        # else every buffered event is being written: the buffer grows by one for the moment,
        # and _enforce_limit trims it if that write fails

    def _enforce_limit(self) -> None:
        while len(self._buffer) > self._limit:
            self._buffer.popleft()
            self._dropped += 1
            self._unrecorded_drops += 1

    def _drain(self) -> None:
        """Write everything pending (waiting for a write in progress first)."""
        if self._writer == threading.get_ident():
            return  # called back from within a write (on_status logging): that write continues
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
                self._write_pending()
            finally:
                self._writer = None

    def _write_pending(self) -> None:
        """Write the buffer and the uncounted losses until none are left or a write fails (caller
        holds _write_lock)."""
        while True:
            with self._lock:
                if not self._buffer and not self._unrecorded_drops:
                    return
                events = list(self._buffer)
                drops = self._unrecorded_drops
                gaps = [Gap(self._clock(), self.session, drops)] if drops else []
                self._inflight = len(events)
            try:
                if self._store is None:
                    assert self._factory is not None
                    self._store = self._factory()
                self._store.write(events, gaps)
            except Exception as exc:
                with self._lock:
                    self._inflight = 0
                    self._enforce_limit()
                    self._failed(exc)
                return
            with self._lock:
                for _ in events:
                    self._buffer.popleft()
                self._inflight = 0
                self._unrecorded_drops -= drops
                self._failures = 0
                if not self._healthy:
                    _log.info("interaction log: store is back, %d buffered events written", len(events))
                self._set_health(True)
            # and again if events arrived meanwhile

    def _failed(self, exc: Exception) -> None:
        """A write failed (caller holds both locks)."""
        self._failures += 1
        self._next_retry = self._monotonic() + self.retry_after
        if self._factory is not None:
            self._close_store()
        if self._healthy:
            _log.warning("interaction log: store unavailable, buffering events (%s)", exc)
        else:
            _log.debug("interaction log: store still unavailable (%s)", exc)
        self._set_health(False)
        if self._closed:
            self._give_up(exc)
        else:
            base = max(self.retry_after, _RETRY_MIN)
            self._schedule(min(base * 2 ** min(self._failures - 1, 16), max(self.retry_after, _RETRY_MAX)))

    def _give_up(self, exc: Exception) -> None:
        """The logger is closed and the store still unavailable: count what is pending as lost."""
        unwritten = len(self._buffer)
        lost = unwritten + self._unrecorded_drops
        if not lost:
            return
        self._buffer.clear()
        self._dropped += unwritten
        self._unrecorded_drops = 0
        _log.error("interaction log: %d events of session %s are lost (%d never written, %d dropped or "
                   "over the rate limit before); the store is unavailable as the session closes, so "
                   "log_gaps does not count them either (%s)",
                   lost, self.session, unwritten, lost - unwritten, exc)

    def _schedule(self, delay: float) -> None:
        """Retry in the background after ``delay`` seconds, unless a retry is already due (caller holds _lock)."""
        if self._closed or self._timer is not None:
            return
        timer = threading.Timer(delay, self._on_timer)
        timer.daemon = True
        timer.name = f"guide-log-retry-{self.session[:8]}"
        self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        try:
            with self._lock:
                self._timer = None
                if self._closed:
                    return
            self._drain()
        except Exception:  # noqa: BLE001 - a background retry must never raise
            _log.exception("interaction log: unexpected error in a background retry")

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
        if self.on_status is not None and not self._closed:  # closed: the page is gone
            try:
                self.on_status(healthy)
            except Exception:
                _log.exception("interaction log: on_status callback failed")
