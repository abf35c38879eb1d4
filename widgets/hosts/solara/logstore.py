"""One interaction-log store for all the visits of a Solara worker.

Under Voilà each visit has a kernel, a process of its own, and its logger opens the store
(:func:`widgets.log.open_store`). Under Solara every visit of a worker lives in one process:
a store per visit would be a PostgreSQL connection per visitor (200 visitors, 200
connections). :func:`install` makes the loggers of this process share one
:class:`SharedStore` instead: opened with the first write, reopened after a failure (as a
logger reopens its own), written by the visits' writer threads one at a time (the stores
serialise their writes), closed when the process exits, after the visits' loggers.
Each logger keeps its own buffer, rate limit, retries and health notice; a slow store delays
the loggers' writer threads, never a click.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from widgets.log.events import Event, Gap
    from widgets.log.store import EventStore

__all__ = ["SharedStore", "install", "uninstall"]

_log = logging.getLogger("widgets.hosts.solara.logstore")


class SharedStore:
    """The one store of this process, opened by ``opener`` when first needed (thread-safe).

    A visit's logger gets it from ``open_store()`` and uses ``write`` and ``close``: ``close``
    from a logger leaves it open for the others; a failed write closes the store, so that the
    next write opens it again. :meth:`shutdown` closes it for good (a write after it fails
    like a store that is away: the logger counts its events as lost)."""

    def __init__(self, opener: Callable[[], EventStore]) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._store: EventStore | None = None
        self._shut = False
        #: stores opened so far (one, unless the store failed and was opened again)
        self.opened = 0

    def _current(self) -> EventStore:
        from widgets.log.store import StoreUnavailable

        with self._lock:
            if self._shut:
                raise StoreUnavailable("the worker's log store is closed (the server is stopping)")
            if self._store is None:
                self._store = self._opener()
                self.opened += 1
            return self._store

    def write(self, events: Sequence[Event], gaps: Sequence[Gap] = ()) -> None:
        store = self._current()
        try:
            store.write(events, gaps)
        except ValueError:  # an event the store refuses: the store itself is fine
            raise
        except Exception:
            self._discard(store)
            raise

    def close(self) -> None:
        """A visit's logger is done with the store: it stays open for the others."""

    def _discard(self, store: EventStore) -> None:
        with self._lock:
            if self._store is not store:
                return  # another writer already closed it (and maybe opened a new one)
            self._store = None
        _close(store)

    def shutdown(self) -> None:
        """Close the store for good (at exit, after the visits' loggers)."""
        with self._lock:
            self._shut = True
            store, self._store = self._store, None
        if store is not None:
            _close(store)


def _close(store: EventStore) -> None:
    try:
        store.close()
    except Exception:  # noqa: BLE001 - closing a store that failed
        _log.debug("closing the worker's log store failed", exc_info=True)


_installed: SharedStore | None = None


def install() -> SharedStore:
    """Make this process's visits share one store (the configured one, ``GUIDE_LOG_URL``),
    closed at exit after their loggers (registered before any logger registers its own
    closing, so it runs after them). Returns it; a second call returns the same."""
    global _installed
    from widgets.log import urls

    if _installed is None:
        shared = SharedStore(lambda: urls.open_store(urls.log_url()))
        atexit.register(shared.shutdown)
        urls.share_store(lambda: shared)  # type: ignore[arg-type,return-value]
        _installed = shared
        _log.info("interaction log: one store for all the visits of this worker (%s)",
                  urls.redact(urls.log_url()))
    return _installed


def uninstall() -> None:
    """Each logger opens its own store again; the shared one is closed."""
    global _installed
    from widgets.log import urls

    shared, _installed = _installed, None
    urls.share_store(None)
    if shared is not None:
        atexit.unregister(shared.shutdown)
        shared.shutdown()
