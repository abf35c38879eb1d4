"""From the engine's transitions to the interaction log: the one place the guide meets the log.

The engine (widgets/engine.py) reports what the visitor did as plain :class:`Transition`\\ s.
:class:`EventStamper` makes each one the log's :class:`~widgets.log.events.Event` of the visit
(its session id, drawn here, the clock's UTC time, the milliseconds since the previous one),
when it happens. :class:`EventRelay` keeps the events of one interaction and hands them to the sink
together, once the page has its update: the sink's ``record_many(events)`` (the session logger
writes them in one transaction). A sink that has only ``record(event)`` gets them one by one.
Delivering never raises: the guide never fails because its log did.

Only the standard library, ``widgets.log.events`` (itself standard library only) and the
shared vocabulary are imported here: it runs in every visitor's kernel.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Callable, Protocol, Sequence

from .engine import Transition
from .log.events import Event, SessionEvents
from .vocabulary import is_id

__all__ = ["EventRelay", "EventSink", "EventStamper", "deliver"]

logger = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where the events of one interaction go together (the interaction log): each as it was
    made, unchanged. ``record_many`` must never raise; it says whether they were accepted."""

    def record_many(self, events: Sequence[Event]) -> bool:
        ...


class EventStamper:
    """Makes the log's Event of each transition of one visit: call it with each transition (an
    engine's ``on_transition``); it returns the Event, and hands it to ``on_event`` too when
    given (for tools driving a bare engine: the demo data, the tests).

    ``session`` is the visit's anonymous id (a valid id, or a callable giving one); without it
    a random one is drawn when first needed (:attr:`session`), so a guide built ahead of its
    visit (a preheated kernel) draws it when the visit begins."""

    def __init__(self, session: str | Callable[[], str] | None = None,
                 clock: Callable[[], dt.datetime] | None = None, *,
                 on_event: Callable[[Event], Any] | None = None) -> None:
        if isinstance(session, str) and not is_id(session):
            raise ValueError("session is not a valid id")
        self._session = session
        self._clock = clock
        self.on_event = on_event
        self._events: SessionEvents | None = None

    @property
    def session(self) -> str:
        """The visit's session id (drawn, or asked for, when first needed)."""
        if self._session is None:
            self._session = uuid.uuid4().hex
        elif callable(self._session):
            session = self._session()
            if not is_id(session):
                raise ValueError("session is not a valid id")
            self._session = session
        return self._session

    def __call__(self, transition: Transition) -> Event:
        if self._events is None:
            self._events = SessionEvents(self.session, self._clock)
        event = self._events(transition.node, transition.action, transition.option,
                             transition.lang)
        if self.on_event is not None:
            self.on_event(event)
        return event


def deliver(sink: Any, events: Sequence[Event]) -> bool:
    """Hand ``events`` to ``sink`` together; False if there were none to hand, no sink, or the
    sink refused or failed (its error goes to the server's log, never further)."""
    if sink is None or not events:
        return False
    try:
        record_many = getattr(sink, "record_many", None)
        if record_many is not None:
            return bool(record_many(tuple(events)))
        accepted = True
        for event in events:
            accepted = bool(sink.record(event)) and accepted
        return accepted
    except Exception:  # noqa: BLE001 - logging must never break the guide
        logger.exception("the interaction log failed")
        return False


class EventRelay:
    """The events of one visit on their way to the sink: call it with each transition (the
    engine's ``on_transition``); :meth:`flush` hands what it holds to :attr:`sink` together."""

    def __init__(self, session: str | Callable[[], str] | None = None, sink: Any = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.sink = sink
        self._stamp = EventStamper(session, clock)
        self._held: list[Event] = []

    @property
    def session(self) -> str:
        """The visit's session id (see :class:`EventStamper`)."""
        return self._stamp.session

    def __call__(self, transition: Transition) -> None:
        self._held.append(self._stamp(transition))

    @property
    def held(self) -> tuple[Event, ...]:
        """The events made since the last flush."""
        return tuple(self._held)

    def flush(self) -> bool:
        """Hand the events held to the sink (dropped without one); see :func:`deliver`."""
        if not self._held:
            return False
        events, self._held = self._held, []
        return deliver(self.sink, events)
