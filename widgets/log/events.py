"""The log's events: :class:`Event` and :class:`Gap`, validated when they are made, and
:class:`SessionEvents`, which makes the events of one visit.

An Event keeps one shape from the click to the stored row: the engine makes it when the visitor
acts (``widgets.engine.Engine`` stamps it with a :class:`SessionEvents`), the session logger
buffers it and the store writes it as it is. It is validated once, when it is made: ids are short
ASCII slugs, the action and the language come from the vocabulary (``widgets/vocabulary.py``), so
nothing a person typed, and no personal data, can become an Event at all. Stores trust an Event
and refuse anything else.

The vocabulary (ACTIONS, LANGUAGES, OUTCOMES, ID_PATTERN) lives in ``widgets/vocabulary.py`` and
is re-exported here. Only the standard library is imported here (and importing this module does
not import the stores: see ``widgets/log/__init__.py``), so the guide's pure engine may use it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from ..vocabulary import ACTIONS, ID_PATTERN, LANGUAGES, OUTCOMES, is_id

__all__ = ["ACTIONS", "LANGUAGES", "LANGS", "OUTCOMES", "ID_PATTERN", "Event", "Gap", "SessionEvents",
           "is_id", "validate_event", "validate_gap"]

#: The former name of LANGUAGES.
LANGS = LANGUAGES


def _check_ts(ts: object) -> None:
    if not isinstance(ts, dt.datetime) or ts.utcoffset() != dt.timedelta(0):
        raise ValueError("ts must be an aware datetime in UTC")


class _EventFields(NamedTuple):
    ts: dt.datetime
    session: str
    node: str
    action: str
    option: str | None
    lang: str
    elapsed_ms: int | None


class Event(_EventFields):
    """One interaction, as it is stored. ``ts`` is an aware UTC datetime; ``elapsed_ms`` is the time
    since the session's previous event (None for its first).

    Making one validates it (``_replace`` and ``_make`` too): ValueError names the field at fault,
    never its value, so refused input (which may be something a person typed) does not reach the
    server logs either. Outcome ids are checked as ids, not against OUTCOMES, so that a store
    keeps accepting the events of a kernel still running an older version during an upgrade.
    """

    __slots__ = ()

    def __new__(cls, ts: dt.datetime, session: str, node: str, action: str, option: str | None,
                lang: str, elapsed_ms: int | None) -> Event:
        _check_ts(ts)
        if not is_id(session):
            raise ValueError("session is not a valid id")
        if not is_id(node):
            raise ValueError("node is not a valid id")
        if type(action) is not str or action not in ACTIONS:
            raise ValueError("action is not one of ACTIONS")
        if option is not None and not is_id(option):
            raise ValueError("option is not a valid id")
        if type(lang) is not str or lang not in LANGUAGES:
            raise ValueError("lang is not one of LANGUAGES")
        if elapsed_ms is not None and (type(elapsed_ms) is not int or elapsed_ms < 0):
            raise ValueError("elapsed_ms must be None or a non-negative int")
        return super().__new__(cls, ts, session, node, action, option, lang, elapsed_ms)

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Event:
        return cls(*iterable)


class _GapFields(NamedTuple):
    ts: dt.datetime
    session: str
    dropped: int


class Gap(_GapFields):
    """``dropped`` events of ``session`` before ``ts`` were not written (validated when made).

    They were lost to a buffer overflow while the store was unavailable, or refused
    because the session went over its rate limit; one row may count both.
    """

    __slots__ = ()

    def __new__(cls, ts: dt.datetime, session: str, dropped: int) -> Gap:
        _check_ts(ts)
        if not is_id(session):
            raise ValueError("session is not a valid id")
        if type(dropped) is not int or dropped <= 0:
            raise ValueError("dropped must be a positive int")
        return super().__new__(cls, ts, session, dropped)

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Gap:
        return cls(*iterable)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SessionEvents:
    """Makes the events of one session: each stamped with the session id, the clock's time and
    the milliseconds since the previous event made here (None for the first).

    ``session`` defaults to a random id, drawn when it is first needed (so a guide built ahead of
    its visit, in a preheated kernel, draws it when the visit begins). A call whose fields are
    not valid raises ValueError and does not count as the previous event.
    """

    def __init__(self, session: str | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        if session is not None and not is_id(session):
            raise ValueError("session is not a valid id")
        self._session = session
        self._clock = clock or _utcnow
        self._previous: dt.datetime | None = None

    @property
    def session(self) -> str:
        if self._session is None:
            self._session = uuid.uuid4().hex
        return self._session

    def __call__(self, node: str, action: str, option: str | None = None, lang: str = "ko") -> Event:
        ts = self._clock()
        elapsed = None
        if self._previous is not None:
            elapsed = max(0, round((ts - self._previous).total_seconds() * 1000))
        event = Event(ts, self.session, node, action, option, lang, elapsed)
        self._previous = ts
        return event


def validate_event(event: object) -> Event:
    """``event`` if it is an Event (validated when it was made), else ValueError."""
    if not isinstance(event, Event):
        raise ValueError("not an Event")
    return event


def validate_gap(gap: object) -> Gap:
    """``gap`` if it is a Gap (validated when it was made), else ValueError."""
    if not isinstance(gap, Gap):
        raise ValueError("not a Gap")
    return gap
