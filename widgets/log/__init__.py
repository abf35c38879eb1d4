"""The interaction log: one row per visitor interaction, never free text.

Each row holds a UTC timestamp, an anonymous random session id (one per visit), the flow node
id, the action, the chosen option id (or NULL), the language and the milliseconds since the
session's previous event (NULL for the first one). Every field is validated structurally when
the event is made (``events.Event``; the guide's engine makes them), and stores take nothing but
Events, so nothing a person typed, and no personal data, is ever written.

One job per module:

    events      Event and Gap (validated when made), SessionEvents (the events of one visit); the
                vocabulary (ACTIONS, LANGUAGES, OUTCOMES) comes from widgets/vocabulary.py
    store       the EventStore interface and its errors
    migrations  the schema, as named plain-SQL migrations per dialect, and their runner
    derive      the derived tables (sessions, session_steps, session_days, step_totals), brought
                up to date from the events past a watermark by the same statements on both
                dialects (but for a day's text and a concatenation)
    sqlite      SQLiteStore: the embedded default, ``$GUIDE_DATA_DIR/events.sqlite3`` (WAL mode,
                one short ``BEGIN IMMEDIATE`` transaction per write, many kernel processes)
    postgres    PostgresStore, when ``GUIDE_LOG_URL`` is a ``postgresql://`` URL (psycopg is
                imported only when such a store is opened)
    session     SessionLogger: one per visitor; ``log()`` never raises, events are rate-limited
                and buffered while the store is away
    urls        the configured log URL, its parser, ``open_store``

Tables (schema version 7, see ``migrations``): ``events`` (those rows), ``log_gaps`` (how many
events of a session were not written), ``meta`` (the schema version, and the derived tables'
watermark), and the tables derived from the events by ``derive`` in every write's transaction:
``sessions`` (one row per session: first events, last node, finishes, language switches, last
outcome, the last answer at each step in the order given), ``session_steps`` (one row per
session and step: entered or not, leaving events, last answer there), ``session_days`` (first
events per day and language) and ``step_totals`` (per step: sessions that entered it, leaving
events).
No table or column is named after a step of the flow:
which steps are the contact decision or the path dimensions is read from the flow when the
summary runs.

Only the standard library is imported at import time, and only ``events`` is loaded with the
package: the other modules are imported when one of their names is first used (so importing
``widgets.log.events`` loads no store and not the sqlite3 module).
"""

from __future__ import annotations

import importlib
import time  # noqa: F401 - tests patch widgets.log.time.monotonic
from typing import Any

from .events import (ACTIONS, LANGS, LANGUAGES, OUTCOMES, Event, Gap, SessionEvents, validate_event,
                     validate_gap)

#: The indexes that serve widgets/summary.py (created by schema version 2).
SUMMARY_INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS events_choose ON events (node, option, session) WHERE action = 'choose'",
    "CREATE INDEX IF NOT EXISTS events_leave ON events (node, elapsed_ms, session) "
    "WHERE action IN ('choose', 'next', 'back', 'restart')",
)

# Everything else is imported when first used, so that importing an event type (the guide's
# engine does) loads neither the stores nor the sqlite3 module.
_LAZY: dict[str, tuple[str, str]] = {
    "migrations": ("migrations", ""),
    "MIGRATIONS": ("migrations", "MIGRATIONS"),
    "SCHEMA_VERSION": ("migrations", "SCHEMA_VERSION"),
    "Migration": ("migrations", "Migration"),
    "PostgresStore": ("postgres", "PostgresStore"),
    "SessionLogger": ("session", "SessionLogger"),
    "DEFAULT_BURST": ("session", "DEFAULT_BURST"),
    "DEFAULT_RATE": ("session", "DEFAULT_RATE"),
    "_CLOSE_AT_EXIT": ("session", "_CLOSE_AT_EXIT"),
    "SQLiteStore": ("sqlite", "SQLiteStore"),
    "_sqlite_ts": ("sqlite", "_sqlite_ts"),
    "EVENT_COLUMNS": ("store", "EVENT_COLUMNS"),
    "_EVENT_COLUMNS": ("store", "EVENT_COLUMNS"),
    "EventStore": ("store", "EventStore"),
    "SchemaVersionError": ("store", "SchemaVersionError"),
    "StoreCorrupt": ("store", "StoreCorrupt"),
    "StoreOutdated": ("store", "StoreOutdated"),
    "StoreUnavailable": ("store", "StoreUnavailable"),
    "_as_utc": ("store", "_as_utc"),
    "LogURL": ("urls", "LogURL"),
    "log_url": ("urls", "log_url"),
    "open_store": ("urls", "open_store"),
    "parse_url": ("urls", "parse_url"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = importlib.import_module(f"{__name__}.{module}")
    if attribute:
        value = getattr(value, attribute)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    "SessionEvents",
    "EVENT_COLUMNS",
]

