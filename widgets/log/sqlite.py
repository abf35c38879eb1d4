"""The log in one SQLite file (WAL mode), shared by many processes: :class:`SQLiteStore`.

The process-wide guards it needs against what the operating system and other processes do to
its files are in ``widgets/log/sqlite_files.py``. Only the standard library is imported here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from . import migrations
from .events import Event
from .sqlite_files import HANDLES, SQLITE_CALLS, SQLITE_HEADER, Held, cannot_write_in_place, keep, read_header
from .store import (DEFAULT_TIMEOUT, EVENT_COLUMNS, EventStore, StoreCorrupt, StoreUnavailable)

__all__ = ["SQLiteStore"]

_log = logging.getLogger("widgets.log")
_T = TypeVar("_T")
_DEFAULT_TIMEOUT = DEFAULT_TIMEOUT
_EVENT_COLUMNS = EVENT_COLUMNS


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

    A write waits for the lock up to ``timeout`` on the calling thread: a SessionLogger's
    writer thread, never a visitor's click.

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
        #: The files of the open connection, held (see FileHandles): "db", "wal", "shm".
        self._held: dict[str, Held] = {}
        with SQLITE_CALLS:
            self._conn: sqlite3.Connection | None = self._open()

    # -- opening

    def _sidecar(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    def _hold(self, held: dict[str, Held], name: str, path: Path) -> Held | None:
        """Hold ``path`` as ``held[name]`` (replacing and releasing what was there)."""
        try:
            new = HANDLES.hold(path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}") from exc
        old = held.pop(name, None)
        if new is not None:
            held[name] = new
        if old is not None:
            HANDLES.release(old)
        return new

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if not self.read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the log folder {path.parent}: {exc}") from exc
        held: dict[str, Held] = {}
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
                HANDLES.release(h)
            raise
        self._held = held
        return conn

    def _check_header(self, db: Held, allow_empty: bool = False) -> None:
        """Refuse a file that does not start with the SQLite header (read only).

        ``allow_empty``: an empty file is fine (a new store is created in it).
        """
        try:
            header = read_header(db)
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the log database {self.path}: {exc}") from exc
        if header != SQLITE_HEADER and (header or not allow_empty):
            raise StoreCorrupt(
                f"{self.path} is not an SQLite database; it was left untouched. "
                "Move it away or point GUIDE_LOG_URL elsewhere."
            )

    def _check_shm(self, shm: Held) -> None:
        if cannot_write_in_place(shm):
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
        migrations.check_not_newer(version, str(self.path))
        if not self.read_only:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
        if not self.read_only and migrations.pending(version):
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
        return migrations.parse_version(row[0], str(self.path))

    def _migrate(self, conn: sqlite3.Connection) -> None:
        self._begin(conn)
        try:
            version = self._version(conn)  # again: another process may have migrated meanwhile
            migrations.check_not_newer(version, str(self.path))
            migrations.apply(conn.execute, version, self.dialect)
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
        if shm is not None and cannot_write_in_place(shm):
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
            intact = read_header(db) == SQLITE_HEADER
        except OSError:
            intact = False
        if not intact or (shm is not None and cannot_write_in_place(shm)):
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
                HANDLES.release(h)

    def _moved_away_alone(self, held: dict[str, Held]) -> bool:
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
        keep(conn)

    # -- use

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE (waiting for the write lock up to ``timeout``) ... COMMIT."""
        with SQLITE_CALLS, self._lock:
            conn = self._connection()
            try:
                self._begin(conn)
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc, "cannot write to") from exc

    def _insert_events(self, cursor: sqlite3.Connection, events: Sequence[Event]) -> None:
        cursor.executemany(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(_sqlite_ts(e.ts), *e[1:]) for e in events])

    def _ts(self, ts: dt.datetime) -> str:
        return _sqlite_ts(ts)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with SQLITE_CALLS, self._lock:
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
        with SQLITE_CALLS, self._lock:
            self._closed = True
            self._retire()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
