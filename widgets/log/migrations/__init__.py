"""The log's schema, as named migrations in plain SQL files, and the runner that applies them.

Each dialect has its own folder (``sqlite/``, ``postgresql/``) of files ``NNNN_name.sql``; file
``NNNN`` takes a store from schema version ``NNNN - 1`` to ``NNNN``. Both folders hold the same
versions. A store records the last version applied in its ``meta`` table, and applies the
missing ones in order, in one transaction, when it is opened for writing (the store serialises
that between processes: SQLite's write lock, PostgreSQL's advisory lock).

File format: statements are separated by blank lines; lines starting with ``--`` are comments.
A statement is its lines joined by newlines, run as it is (no ``;`` needed at its end; trigger
and function bodies keep theirs). Files are part of the schema's history, run on stores that
exist: never edit one (tests compare versions 1-3 with the statements the earlier code ran);
change the schema with a new file.

Versions:
    1 ``base``            ``meta``, ``events``, ``log_gaps``
    2 ``sessions_rollup`` ``sessions``: one row per session kept by a trigger; the summary's indexes
    3 ``path_answers``    the rollup keeps the answers at ``problem`` and ``order`` (superseded)
    4 ``session_answers`` flow-agnostic rollup: ``session_answers`` (per session and step, the
                          last ``choose``), ``sessions`` without columns named after steps
    5 ``answers_in_order`` ``sessions.answers``: each step's last answer, in the order given, so the
                          summary reads answers and outcomes from one row per session (no join)
    6 ``derived_tables``  no triggers: ``sessions`` and ``session_steps`` (one row per session
                          and step: entered, last answer) are kept by ``widgets/log/derive.py``
                          from the events past a watermark, the same statements for both
                          dialects; ``session_answers`` goes
    7 ``summary_totals``  ``session_days`` (first events per day and language) and
                          ``step_totals`` (views and leaving events per step), kept with the other
                          derived tables; ``sessions.outcome_id``/``outcome`` (the last outcome)
                          and ``sessions.answers`` (each step's last answer, in order); the
                          indexes ``sessions_given`` and ``sessions_ends``

After the migrations, the store fills the derived tables from the stored events
(``derive.refresh``), in the same transaction.

Only the standard library is imported here.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from collections.abc import Callable
from typing import Any, NamedTuple

from ..store import SchemaVersionError, StoreCorrupt

__all__ = ["Migration", "MIGRATIONS", "SCHEMA_VERSION", "DIALECTS", "load", "parse_sql",
           "latest", "pending", "apply", "parse_version", "check_not_newer", "SET_VERSION"]

DIALECTS: tuple[str, ...] = ("sqlite", "postgresql")


class Migration(NamedTuple):
    """Statements taking a store from ``version - 1`` to ``version``."""

    version: int
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]
    name: str = ""

    def statements(self, dialect: str) -> tuple[str, ...]:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r}")
        return getattr(self, dialect)


def parse_sql(text: str) -> tuple[str, ...]:
    """The statements of one migration file (see the module docstring)."""
    statements: list[str] = []
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if lines:
                statements.append("\n".join(lines))
                lines = []
        elif not line.startswith("--"):
            lines.append(line)
    return tuple(statements)


def _files(dialect: str) -> dict[int, tuple[str, str]]:
    """version -> (name, file text) of one dialect's folder."""
    found: dict[int, tuple[str, str]] = {}
    for entry in resources.files(__package__).joinpath(dialect).iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, rest = name[:-len(".sql")].partition("_")
        if not number.isdigit():
            raise RuntimeError(f"migration file {dialect}/{name}: expected NNNN_name.sql")
        if int(number) in found:
            raise RuntimeError(f"two migration files for version {int(number)} in {dialect}/")
        found[int(number)] = (rest, entry.read_text(encoding="utf-8"))
    return found


@cache
def load() -> tuple[Migration, ...]:
    """Every migration, from the packaged files, checked to be complete in both dialects."""
    sqlite, postgresql = _files("sqlite"), _files("postgresql")
    if sorted(sqlite) != sorted(postgresql) or sorted(sqlite) != list(range(1, len(sqlite) + 1)):
        raise RuntimeError("the log migrations must be numbered 1, 2, ... in both sqlite/ and postgresql/")
    migrations = []
    for version in sorted(sqlite):
        name, text = sqlite[version]
        if postgresql[version][0] != name:
            raise RuntimeError(f"migration {version} is named {name!r} in sqlite/ but "
                               f"{postgresql[version][0]!r} in postgresql/")
        migrations.append(Migration(version, parse_sql(text), parse_sql(postgresql[version][1]), name))
    return tuple(migrations)


#: Applied in order; a store records the last applied version in ``meta``.
MIGRATIONS: tuple[Migration, ...] = load()
#: The schema version this code writes.
SCHEMA_VERSION: int = MIGRATIONS[-1].version

#: Records the version applied (parameter placeholder ``{p}``).
SET_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('schema_version', {p}) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def latest() -> int:
    """The newest version this code knows (read from MIGRATIONS at each call)."""
    return MIGRATIONS[-1].version


def pending(version: int) -> list[Migration]:
    """The migrations a store at ``version`` still needs, in order."""
    return [m for m in MIGRATIONS if m.version > version]


def apply(execute: Callable[..., Any], version: int, dialect: str) -> None:
    """Run the migrations a store at ``version`` still needs, in order, recording each version,
    through ``execute(sql[, params])`` inside the caller's transaction (one per store open)."""
    from .. import derive

    placeholder = {"sqlite": "?", "postgresql": "%s"}[dialect]
    todo = pending(version)
    for migration in todo:
        for statement in migration.statements(dialect):
            execute(statement)
        execute(SET_VERSION.format(p=placeholder), (str(migration.version),))
    if todo and todo[-1].version >= derive.SINCE:
        derive.refresh(execute, placeholder, todo[-1].version)  # fills derived tables a migration made again


def parse_version(value: Any, where: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreCorrupt(f"{where}: meta.schema_version is not a number") from None


def check_not_newer(version: int, where: str) -> None:
    if version > latest():
        raise SchemaVersionError(
            f"{where} has log schema version {version}, but this code knows only "
            f"versions up to {latest()}; upgrade the guide to use it (nothing was changed)"
        )
