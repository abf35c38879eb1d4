"""The guide's vocabulary, in one place: the actions the guide reports, its languages, the answers
of the how-did-it-go question, and what an id looks like.

The flow (``widgets/flow/``), the engine, the interaction log (``log/events.py``), the demo data and the
summary all read these tuples; none keeps a copy. Only the standard library is imported here, so
any module may import it (the guide's kernel, the log's stores, the dashboard).
"""

from __future__ import annotations

import re

__all__ = ["ACTIONS", "LANGUAGES", "OUTCOMES", "UNSOLVED", "ID_PATTERN", "is_id"]

#: Every action the guide reports, and the only actions a log row may carry.
#:   outcome   the how-did-it-go answer as the guide asked it until the call sheet came, on its
#:             last screen, before the visitor had contacted Amazon (older rows; the summary
#:             keeps these apart)
#:   recall    on a visit that came back with the return link: one answer of the earlier
#:             visit the link carried (the node and option ids of a ``subject`` or ``contact``
#:             decision)
#:   followup  the how-did-it-go answer on that visit, after contact (option: an OUTCOMES id)
ACTIONS: tuple[str, ...] = (
    "enter",
    "choose",
    "next",
    "back",
    "restart",
    "language",
    "finish",
    "outcome",
    "recall",
    "followup",
)
#: The guide's languages, in display order; the only languages a log row may carry.
LANGUAGES: tuple[str, ...] = ("ko", "en")
#: The answers of the how-did-it-go question (the option of ``outcome`` events), in display
#: order. Events written by older code may carry other ids; the summary shows those as "(other)".
OUTCOMES: tuple[str, ...] = ("solved", "partly", "not-yet", "escalated")
#: The answers after which the guide leads straight to the advice for when the agent could
#: not help, with the message's supervisor request ticked.
UNSOLVED: tuple[str, ...] = ("not-yet",)

#: Ids of steps (nodes), options and sessions: short lowercase ASCII slugs. Use ``fullmatch``
#: (or :func:`is_id`).
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def is_id(value: object) -> bool:
    """True for a valid step, option or session id (a str matching ID_PATTERN)."""
    return type(value) is str and ID_PATTERN.fullmatch(value) is not None
