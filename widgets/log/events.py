"""The log's vocabulary and its validation: the one home of actions, languages and outcomes.

An :class:`Event` keeps one shape from the click (``SessionLogger.log``) to the stored row, and is
validated once, by :func:`validate_event`, before it can reach a store: ids are short ASCII
slugs, the action, language and (for ``outcome`` events) the outcome come from the tuples below,
so nothing a person typed, and no personal data, is ever written.

Only the standard library is imported here.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

__all__ = ["ACTIONS", "LANGUAGES", "LANGS", "OUTCOMES", "ID_PATTERN", "Event", "Gap", "is_id",
           "validate_event", "validate_gap"]

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
#: The only languages a row may carry (the guide's languages, in display order).
LANGUAGES: tuple[str, ...] = ("ko", "en")
#: The former name of LANGUAGES.
LANGS = LANGUAGES
#: The answers of the how-did-it-go question (the option of ``outcome`` events), in display order.
#: Events written by older code may carry other ids; the summary shows those as "(other)".
OUTCOMES: tuple[str, ...] = ("solved", "partly", "not-yet", "escalated")

#: Ids of sessions, steps (nodes) and options.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class Event(NamedTuple):
    """One interaction. ``ts`` is an aware UTC datetime; ``elapsed_ms`` is the time since the
    session's previous event (None for its first)."""

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


def is_id(value: object) -> bool:
    """True for a valid session, node or option id."""
    return type(value) is str and ID_PATTERN.fullmatch(value) is not None


def _check_ts(ts: object) -> None:
    if not isinstance(ts, dt.datetime) or ts.utcoffset() != dt.timedelta(0):
        raise ValueError("ts must be an aware datetime in UTC")


def validate_event(event: Event) -> None:
    """Raise ValueError unless every field of ``event`` is structurally valid.

    The messages name the field only, never its value, so refused input (which
    may be something a person typed) does not reach the server logs either.
    Outcome ids are checked as ids, not against OUTCOMES, so that a store keeps accepting the
    events of a kernel still running an older version during an upgrade.
    """
    if not isinstance(event, Event):
        raise ValueError("not an Event")
    _check_ts(event.ts)
    for field in ("session", "node"):
        if not is_id(getattr(event, field)):
            raise ValueError(f"{field} is not a valid id")
    if type(event.action) is not str or event.action not in ACTIONS:
        raise ValueError("action is not one of ACTIONS")
    if event.option is not None and not is_id(event.option):
        raise ValueError("option is not a valid id")
    if type(event.lang) is not str or event.lang not in LANGUAGES:
        raise ValueError("lang is not one of LANGS")
    ms = event.elapsed_ms
    if ms is not None and (type(ms) is not int or ms < 0):
        raise ValueError("elapsed_ms must be None or a non-negative int")


def validate_gap(gap: Gap) -> None:
    """Raise ValueError unless ``gap`` is structurally valid."""
    if not isinstance(gap, Gap):
        raise ValueError("not a Gap")
    _check_ts(gap.ts)
    if not is_id(gap.session):
        raise ValueError("session is not a valid id")
    if type(gap.dropped) is not int or gap.dropped <= 0:
        raise ValueError("dropped must be a positive int")
