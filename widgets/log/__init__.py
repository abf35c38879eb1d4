"""The interaction log: one row per visitor interaction, never free text.

Each row holds a UTC timestamp, an anonymous random session id (one per visit), the flow node
id, the action, the chosen option id (or NULL), the language and the milliseconds since the
session's previous event (NULL for the first one). Every field is validated structurally before
it can reach a store, so nothing a person typed, and no personal data, is ever written.

One job per module:

    events      the vocabulary (ACTIONS, LANGUAGES, OUTCOMES), Event and Gap, their validation
    store       the EventStore interface and its errors
    migrations  the schema, as named plain-SQL migrations per dialect, and their runner
    sqlite      SQLiteStore: the embedded default, ``$GUIDE_DATA_DIR/events.sqlite3`` (WAL mode,
                one short ``BEGIN IMMEDIATE`` transaction per write, many kernel processes)
    postgres    PostgresStore, when ``GUIDE_LOG_URL`` is a ``postgresql://`` URL (psycopg is
                imported only when such a store is opened)
    session     SessionLogger: one per visitor; ``log()`` never raises, events are rate-limited
                and buffered while the store is away
    urls        the configured log URL, its parser, ``open_store``

Tables (schema version 4, see ``migrations``): ``events`` (those rows), ``log_gaps`` (how many
events of a session were not written), ``meta`` (the schema version), and the rollup kept by
triggers as events are inserted: ``sessions`` (one row per session: first event, last node,
finishes, language switches, last outcome, entered nodes) and ``session_answers`` (per session
and step, the last answer chosen there). No table or column is named after a step of the flow:
which steps are the contact decision or the path dimensions is read from the flow when the
summary runs.

Only the standard library is imported at import time.
"""

from __future__ import annotations

import time  # noqa: F401 - tests patch widgets.log.time.monotonic

from . import migrations
from .events import ACTIONS, LANGS, LANGUAGES, OUTCOMES, Event, Gap, validate_event, validate_gap
from .migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from .postgres import PostgresStore
from .session import _CLOSE_AT_EXIT, DEFAULT_BURST, DEFAULT_RATE, SessionLogger
from .sqlite import SQLiteStore, _sqlite_ts
from .store import (EVENT_COLUMNS, EventStore, SchemaVersionError, StoreCorrupt, StoreOutdated, StoreUnavailable,
                    _as_utc)
from .urls import LogURL, log_url, open_store, parse_url

_EVENT_COLUMNS = EVENT_COLUMNS

#: The indexes that serve widgets/summary.py (created by schema version 2).
SUMMARY_INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS events_choose ON events (node, option, session) WHERE action = 'choose'",
    "CREATE INDEX IF NOT EXISTS events_leave ON events (node, elapsed_ms, session) "
    "WHERE action IN ('choose', 'next', 'back', 'restart')",
)

__all__ = [
    "ACTIONS",
    "LANGS",
    "LANGUAGES",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "Migration",
    "Event",
    "Gap",
    "EventStore",
    "SQLiteStore",
    "PostgresStore",
    "StoreUnavailable",
    "StoreCorrupt",
    "SchemaVersionError",
    "StoreOutdated",
    "SessionLogger",
    "DEFAULT_RATE",
    "DEFAULT_BURST",
    "LogURL",
    "open_store",
    "log_url",
    "parse_url",
    "validate_event",
    "validate_gap",
    "migrations",
    "SUMMARY_INDEXES",
]

