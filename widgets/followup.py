"""The return link: what a visit carries to the visit that comes back after contacting Amazon.

The link (``?followup=...``) and the case-notes file carry the earlier visit's answers at the
decisions with the role ``subject`` (what it is about) or ``contact`` (how the visitor gets in
touch), as ids only: ``problem:refund,reach:online,channel:chat`` (decision id, option id; in
the flow's node order). Nothing typed, nothing personal.

Anyone can write a link, so :func:`decode` accepts only what the flow could have produced: known
decisions with those roles, each once, with one of their options, and together exactly the
answers at those decisions of one complete path of the flow. Anything else is None (the guide
then ignores it with a fixed notice, never repeating it).

Pure Python: only the flow and the vocabulary.
"""

from __future__ import annotations

import re
from typing import Mapping

from .flow import Flow
from .vocabulary import is_id

#: The query parameter of the return link.
PARAM = "followup"
#: The roles whose decisions' answers the link carries.
ROLES: tuple[str, ...] = ("subject", "contact")
#: Longest value read (a flow has few such decisions; ids are at most 64 characters).
MAX_LENGTH = 600
#: The value of the parameter as it appears in a text (a case-notes file).
_IN_TEXT = re.compile(PARAM + r"=([a-z0-9._:,-]{1,%d})" % MAX_LENGTH)


def decisions(flow: Flow) -> tuple[str, ...]:
    """The decisions whose answers the link carries, in the flow's node order."""
    wanted = set(ROLES)
    return tuple(node.id for node in flow if node.kind == "choice" and node.roles & wanted)


def carried(flow: Flow, choices: Mapping[str, str]) -> dict[str, str]:
    """Of ``choices`` (decision id → option id), the answers the link carries, in flow order."""
    return {node: choices[node] for node in decisions(flow) if node in choices}


def _valid_sets(flow: Flow) -> set[frozenset[tuple[str, str]]]:
    kept = set(decisions(flow))
    return {frozenset((n, o) for n, o in path if n in kept and o is not None)
            for path in flow.paths}


def encode(flow: Flow, choices: Mapping[str, str]) -> str | None:
    """The link's value for a path whose answers are ``choices``; None until the path has the
    answers of a complete path at those decisions (e.g. before the visitor chose a channel)."""
    answers = carried(flow, choices)
    if frozenset(answers.items()) not in _valid_sets(flow):
        return None
    return ",".join(f"{node}:{option}" for node, option in answers.items())


def decode(flow: Flow, value: object) -> dict[str, str] | None:
    """The earlier visit's answers (decision id → option id, flow order) from the link's
    value, or None when the value is not one the flow could have produced."""
    if type(value) is not str or not 0 < len(value) <= MAX_LENGTH:
        return None
    answers: dict[str, str] = {}
    for part in value.split(","):
        node, sep, option = part.partition(":")
        if not sep or not is_id(node) or not is_id(option) or node in answers:
            return None
        answers[node] = option
    known = decisions(flow)
    if not set(answers) <= set(known):
        return None
    if frozenset(answers.items()) not in _valid_sets(flow):
        return None
    return {node: answers[node] for node in known if node in answers}


def find_in_text(text: str) -> str | None:
    """The link's value written in a text (a case-notes file), unvalidated; None if none."""
    match = _IN_TEXT.search(text)
    return match.group(1) if match else None
