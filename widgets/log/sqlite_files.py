"""The operating-system side of the SQLite log: what keeps the files of a database that other
processes use, and the process itself, safe while :class:`widgets.log.sqlite.SQLiteStore` uses
them. Each piece is here because a test shows what it protects (tests/test_log_hardening.py):

- :class:`FileHandles` (``HANDLES``): read-only descriptors of the files in use, opened once and
  kept open (closing any descriptor of a file drops every POSIX lock the process holds on it,
  SQLite's included);
- :class:`ForkGuard` (``SQLITE_CALLS``): keeps ``os.fork()`` out of SQLite calls made by other
  threads;
- :func:`cannot_write_in_place`: an immutable or append-only ``-shm`` (``chattr``), which SQLite
  would write through a memory mapping and die of SIGBUS;
- :func:`keep`: a connection that must never be closed (closing it would write into a file that
  is no longer ours), kept until the process exits.

Only the standard library is imported here.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["SQLITE_HEADER", "Held", "FileHandles", "HANDLES", "ForkGuard", "SQLITE_CALLS", "read_header",
           "cannot_write_in_place", "keep"]

_log = logging.getLogger("widgets.log")
SQLITE_HEADER = b"SQLite format 3\x00"

# Linux: FS_IOC_GETFLAGS (_IOR('f', 1, long)) and the flags that forbid writing a file in place.
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20


class Held(NamedTuple):
    """A read-only descriptor of one file, and that file's identity (st_dev, st_ino)."""

    key: tuple[int, int]
    fd: int
    path: Path


class FileHandles:
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

    def hold(self, path: Path) -> Held | None:
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
            return Held(key, entry[1], path)

    def release(self, held: Held) -> None:
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


HANDLES = FileHandles()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=HANDLES.after_fork)


class ForkGuard:
    """Keeps ``os.fork()`` from happening while a thread of this process is inside SQLite.

    A child process gets a copy of every lock as it was at the fork, and the threads holding
    them do not exist there: had a thread (e.g. a SessionLogger's writer thread) held one of
    SQLite's process-wide mutexes, the child's first SQLite call would wait forever. Store
    calls run inside ``with SQLITE_CALLS:``; before a fork the forking thread waits (up to
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


SQLITE_CALLS = ForkGuard()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=SQLITE_CALLS.before_fork, after_in_parent=SQLITE_CALLS.after_fork_in_parent,
                        after_in_child=SQLITE_CALLS.after_fork_in_child)

# Connections that must never be used or closed again (see keep()).
_KEPT: list[sqlite3.Connection] = []


def read_header(held: Held) -> bytes:
    """The first 16 bytes of the held file, read through its descriptor."""
    return os.pread(held.fd, len(SQLITE_HEADER), 0)


def cannot_write_in_place(held: Held) -> bool:
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


def keep(conn: sqlite3.Connection) -> None:
    """Never close ``conn`` until the process exits, not even at interpreter shutdown: the
    operating system then closes it without SQLite writing anything (see SQLiteStore._keep)."""
    _KEPT.append(conn)
    try:  # one reference that nothing gives back: not even interpreter shutdown frees it
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))
    except Exception:  # noqa: BLE001 - then _KEPT keeps it until shutdown
        _log.debug("interaction log: cannot pin a connection", exc_info=True)
