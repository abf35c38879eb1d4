"""The log of one visit: :class:`SessionLogger`, what the guide's view uses.

``record_many(events)`` takes the Events of one interaction the guide's engine makes, as they are
(an Event was validated when it was made; anything else is refused), together: they are accepted
or refused as one and written in one store transaction; ``record(event)`` takes one, and
``log(node, action, ...)`` makes one with the logger's own clock first. Neither ever raises, nor waits for the store: a visitor's events are
rate-limited and put in a bounded buffer, which one background thread per session writes, in order
(a store that hangs, e.g. a PostgreSQL server that stopped answering or an SQLite file locked by
another process, holds up that thread, never the visitor's click). The thread retries while the
store is away and makes a last attempt when the session closes (at the latest when the kernel
exits). Every event is either written or counted in ``log_gaps``; what cannot even be counted
there (the store is still away, or still not answering, when the session closes) is reported in
the server log. Only the standard library is imported here.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence

from ..ratelimit import TokenBucket
from .events import Event, Gap, SessionEvents, is_id as _is_id
from .store import EventStore

__all__ = ["SessionLogger", "DEFAULT_RATE", "DEFAULT_BURST", "DEFAULT_SLOW_AFTER"]

_log = logging.getLogger("widgets.log")


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
#: Seconds a write may take before the session counts the store as unhealthy (its notice shows).
DEFAULT_SLOW_AFTER = 2.0
# How long close() waits for the writer's last attempt (below the server's 5 s shutdown grace
# period, so that what the attempt could not write is still reported before the kernel is killed).
_CLOSE_WAIT = 3.0
# A writer with nothing to do for this long ends (so that it does not keep an abandoned logger alive).
_IDLE_EXIT = 60.0



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
    """The log of one visit. ``log()`` never raises and never waits for the store.

    ``store`` is an EventStore or a factory returning one (called lazily, and
    again after a failure, so a store that comes back is reopened).

    ``record(event)`` accepts the Events of this logger's session (``session_id``, the engine's
    ``Engine.session``), as they were made; ``log(node, action, option, lang)`` makes the
    event itself, stamped with ``clock`` and the time since the previous one it made.

    ``log()`` and ``record()`` only put the event in a buffer; one daemon thread per logger (the
    writer, started with the first event) writes the buffer to the store, in order, as soon as
    something is in it, so a store that is slow or hangs delays the writer, never the caller.
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
      events together). The writer retries after ``retry_after`` seconds,
      doubling up to 30 s, until the buffer is written, so the events arrive even
      if the visitor does nothing more; sooner when an event comes at least
      ``retry_after`` seconds after the last failure, and at once on ``flush()``
      (which writes on the caller's thread, after any write in progress).
    - Store hanging: a write in progress for ``slow_after`` seconds (default
      DEFAULT_SLOW_AFTER) counts as a failure for the session's health as soon as
      the next event comes (the notice shows while the events wait in the buffer);
      once the write returns, health follows its outcome. A PostgreSQL store also
      bounds its statements and detects a dead connection itself (see PostgresStore).
    - ``close()`` stops the writer after a last attempt, waiting for it at most
      ``close_timeout`` seconds. Events it cannot write are counted as
      lost (``dropped``); the store being unavailable, that count cannot go into
      ``log_gaps`` either, so it is reported with ``logging.error`` in the server
      log. Call ``close_at_exit()`` to have ``close()`` run when the process
      exits normally (a kernel asked to shut down, as the server does when a
      page closes). A process that is killed (SIGKILL, or the server's kill
      after its shutdown grace period) runs no exit code: what was still
      buffered then is lost without a trace. The background retries make that
      only what an outage still in progress has buffered. Events after
      ``close()`` are not accepted.

    ``on_status(healthy)`` is called when writing starts failing (or hanging) or works
    again (not for rate-limited events, nor after ``close()``), from the writer's thread,
    or from the caller's when an event finds a write hanging.
    ``monotonic`` (default ``time.monotonic``) times the rate limit and ``retry_after``.
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
        slow_after: float = DEFAULT_SLOW_AFTER,
        close_timeout: float = _CLOSE_WAIT,
    ) -> None:
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        if rate is None:
            rate = _env_limit("GUIDE_LOG_RATE", DEFAULT_RATE, integer=False)
        if burst is None:
            burst = _env_limit("GUIDE_LOG_BURST", DEFAULT_BURST, integer=True)  # type: ignore[assignment]
        self.session = session_id or uuid.uuid4().hex
        if not _is_id(self.session):
            raise ValueError("session_id is not a valid id")
        self._clock = clock or _utcnow
        #: Makes the events of log() calls.
        self._events = SessionEvents(self.session, self._clock)
        if isinstance(store, EventStore):
            self._store: EventStore | None = store
            self._factory: Callable[[], EventStore] | None = None
        else:
            self._store = None
            self._factory = store
        self._monotonic = monotonic or time.monotonic
        self._buffer: collections.deque[Event] = collections.deque()
        self._limit = buffer_limit
        self.on_status = on_status
        self.retry_after = retry_after
        self.slow_after = slow_after
        self.close_timeout = close_timeout
        # _lock: the buffer, the counters, the health, the writer's schedule (held briefly).
        # _write_lock: one write (and store open/close) at a time; taken before _lock, never after.
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # wakes the writer; tells wait_idle() it wrote
        self._healthy = True
        self._next_retry = 0.0
        self._failures = 0
        self._dropped = 0
        self._limited = 0
        self._unrecorded_drops = 0
        self._refused = 0
        self._inflight = 0  # buffered events (from the left) being written right now
        self._bucket = TokenBucket(rate, burst, self._monotonic)  # refuses a bad rate or burst
        self._thread: threading.Thread | None = None  # the writer
        self._kick = False  # the writer writes now
        self._wake_at = math.inf  # time.monotonic() of its next retry (or write of a gap count)
        self._busy = False  # the writer is writing (or about to)
        self._write_started: float | None = None  # time.monotonic() the store call in progress began
        self._writer: int | None = None  # the thread writing now
        self._closed = False

    @property
    def rate(self) -> float:
        """Events per second this session may log, sustained."""
        return self._bucket.rate

    @property
    def burst(self) -> float:
        """Events this session may log at once."""
        return self._bucket.burst

    @property
    def healthy(self) -> bool:
        """False while the last attempt to reach the store failed, or (once an event saw it) while a
        write has taken longer than ``slow_after``."""
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
        """Make and record one interaction of this session; True if it was accepted (buffered for
        the writer).

        False if a field is not valid (nothing is recorded, and it does not count as the
        previous event) or the session is over its rate limit (the event is counted in
        ``log_gaps``).
        """
        return self._take(lambda: (self._events(node, action, option, lang),))

    def record(self, event: Event) -> bool:
        """Record ``event``, an Event of this session as it was made (by the guide's engine);
        True if it was accepted (buffered for the writer).

        False for anything that is not an Event, or an Event of another session (nothing is
        recorded), or when the session is over its rate limit (counted in ``log_gaps``).
        """
        return self._take(lambda: self._checked((event,)))

    def record_many(self, events: Sequence[Event]) -> bool:
        """Record the events of one interaction (e.g. the answer chosen and the step it enters),
        as they were made; True if they were accepted (buffered for the writer).

        They are taken or refused together: all of them are Events of this session or none is
        recorded; the rate limit takes them all or counts them all in ``log_gaps``; a closed
        logger takes none. The writer writes them to the store in one transaction (together with
        whatever else is waiting then). An empty sequence is accepted (nothing to write).
        """
        return self._take(lambda: self._checked(tuple(events)))

    def _checked(self, events: tuple[object, ...]) -> tuple[Event, ...]:
        for event in events:
            if not isinstance(event, Event):
                raise ValueError("not an Event")
            if event.session != self.session:
                raise ValueError("an event of another session")
        return events  # type: ignore[return-value]

    def _take(self, make: Callable[[], tuple[Event, ...]]) -> bool:
        """Accept the events ``make`` returns, all or none (called under the lock, so that the
        events made by :meth:`log` get their times in order; a ValueError refuses them) and wake
        the writer. Never raises, never touches the store."""
        try:
            with self._lock:
                try:
                    events = make()
                except ValueError as exc:
                    return self._refuse(exc)
                if self._closed:
                    _log.warning("interaction log: an event of session %s came after it closed; not recorded",
                                 self.session)
                    return False
                if not events:
                    return True
                self._check_slow()
                accepted = self._accept(events)
                self._start_writer()
                return accepted
        except Exception:  # noqa: BLE001 - logged; the guide must go on
            _log.exception("interaction log: unexpected error")
            return False

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the writer has nothing to do for now: everything is written, or it waits to
        retry after a failure. True if so within ``timeout`` seconds."""
        with self._wake:
            return self._wake.wait_for(self._idle, timeout)

    def flush(self) -> bool:
        """Try to write the buffered events now, on this thread (after any write in progress);
        True if nothing is left pending."""
        try:
            self._drain()
            with self._lock:
                return not self._buffer and not self._unrecorded_drops
        except Exception:  # noqa: BLE001 - logged; the guide must go on
            _log.exception("interaction log: unexpected error")
            return False

    def close(self) -> None:
        """Stop the writer after a last attempt to write (waiting for it at most ``close_timeout``
        seconds), then close the store if this logger opened it.

        What is still not written is counted as lost and reported in the server log
        (the store being unavailable, not in ``log_gaps``). May be called more than once.
        """
        try:
            with self._lock:
                self._closed = True
                thread = self._thread
                self._wake.notify_all()
            me = threading.get_ident()
            if self._writer == me or (thread is not None and thread.ident == me):
                return  # from within a write (on_status): the writer finishes once it returns
            if thread is None or not thread.is_alive():
                self._finish()
                return
            thread.join(self.close_timeout)
            if thread.is_alive():  # still inside a write the store does not answer
                with self._lock:
                    self._give_up(f"no answer within {self.close_timeout:g} s")
        except Exception:  # noqa: BLE001 - logged; closing must not raise
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

    def _refuse(self, exc: Exception) -> bool:
        with self._lock:
            self._refused += 1
        _log.warning("interaction log: refused an event (%s)", exc)
        return False

    def _accept(self, events: tuple[Event, ...]) -> bool:
        """Rate-limit and buffer valid events, all or none, and tell the writer when to write them
        (caller holds _lock); True if accepted."""
        if not self._take_token(len(events)):
            first = not self._limited
            self._limited += len(events)
            self._unrecorded_drops += len(events)
            if first:
                _log.warning("interaction log: session %s is over the rate limit (%g events/s, "
                             "burst %g); events over it are counted in log_gaps, not written",
                             self.session, self.rate, self.burst)
            if self._healthy:  # else the retry after the failure writes the count
                self._wake_at = min(self._wake_at, time.monotonic() + _GAP_DELAY)
                self._wake.notify()
            return False
        for event in events:
            if len(self._buffer) >= self._limit:
                self._drop_oldest()
            self._buffer.append(event)
        if self._healthy or self._monotonic() >= self._next_retry:
            self._kick = True
            self._wake.notify()
        return True

    def _check_slow(self) -> None:
        """Count a write in progress for ``slow_after`` seconds as a failure (caller holds _lock)."""
        started = self._write_started
        if self._healthy and started is not None and time.monotonic() - started >= self.slow_after:
            _log.warning("interaction log: the store has not answered for %.1f s, buffering events",
                         time.monotonic() - started)
            self._set_health(False)

    def _start_writer(self) -> None:
        """Start the writer thread if it is not running (caller holds _lock)."""
        if self._thread is None or not self._thread.is_alive():  # not started, or a forked child
            self._thread = threading.Thread(target=self._run, name=f"guide-log-writer-{self.session[:8]}",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """The writer thread: write whenever something is due, until the logger closes; then a
        last attempt, and close the store if this logger opened it."""
        try:
            while True:
                with self._lock:
                    idle_since = time.monotonic()
                    while not self._closed and not self._kick and time.monotonic() < self._wake_at:
                        if not math.isinf(self._wake_at):
                            self._wake.wait(self._wake_at - time.monotonic())
                        elif (time.monotonic() - idle_since < _IDLE_EXIT or self._buffer
                              or self._unrecorded_drops):
                            self._wake.wait(_IDLE_EXIT)
                        else:  # nothing to do for a while: the next event starts a writer again
                            self._thread = None
                            return
                    if self._closed:
                        break
                    self._kick, self._wake_at, self._busy = False, math.inf, True
                try:
                    self._drain()
                finally:
                    with self._lock:
                        self._busy = False
                        self._wake.notify_all()
            self._finish()
        except Exception:  # noqa: BLE001 - the writer must never raise
            _log.exception("interaction log: unexpected error in the writer")

    def _finish(self) -> None:
        """The last attempt (the logger is closed: giving up, counting and reporting, if it fails),
        then close the store if this logger opened it."""
        self._drain()
        with self._write_lock, self._lock:
            if self._factory is not None and self._store is not None:
                self._close_store()

    def _idle(self) -> bool:
        """Nothing to write now (caller holds _lock)."""
        if self._busy or self._write_started is not None:
            return False
        return not self._buffer or not (self._kick or time.monotonic() >= self._wake_at)

    def _take_token(self, count: int = 1) -> bool:
        """The token bucket: True if ``count`` more events are within the rate limit (caller holds
        _lock)."""
        return self._bucket.take(count)

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
                self._write_started = time.monotonic()
            try:
                if self._store is None:
                    assert self._factory is not None
                    self._store = self._factory()
                self._store.write(events, gaps)
            except Exception as exc:  # noqa: BLE001 - recorded as the store's failure
                with self._lock:
                    self._write_started = None
                    self._inflight = 0
                    self._enforce_limit()
                    self._failed(exc)
                    self._wake.notify_all()
                return
            with self._lock:
                self._write_started = None
                for _ in range(self._inflight):  # none if close() gave them up meanwhile
                    self._buffer.popleft()
                self._inflight = 0
                self._unrecorded_drops = max(0, self._unrecorded_drops - drops)
                self._failures = 0
                if not self._healthy:
                    _log.info("interaction log: store is back, %d buffered events written", len(events))
                self._set_health(True)
                self._wake.notify_all()
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
            delay = min(base * 2 ** min(self._failures - 1, 16), max(self.retry_after, _RETRY_MAX))
            self._kick = False
            self._wake_at = time.monotonic() + delay

    def _give_up(self, why: object) -> None:
        """The logger is closed and the store still unavailable: count what is pending as lost
        (caller holds _lock)."""
        unwritten = len(self._buffer)
        lost = unwritten + self._unrecorded_drops
        if not lost:
            return
        self._buffer.clear()
        self._inflight = 0
        self._dropped += unwritten
        self._unrecorded_drops = 0
        _log.error("interaction log: %d events of session %s are lost (%d never written, %d dropped or "
                   "over the rate limit before); the store is unavailable as the session closes, so "
                   "log_gaps does not count them either (%s)",
                   lost, self.session, unwritten, lost - unwritten, why)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing a failed store
                _log.debug("interaction log: error closing the store", exc_info=True)

    def _set_health(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if self.on_status is not None and not self._closed:  # closed: the page is gone
            try:
                self.on_status(healthy)
            except Exception:  # noqa: BLE001 - logged; a callback must not stop the writer
                _log.exception("interaction log: on_status callback failed")
