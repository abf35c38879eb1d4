"""A ready-to-send message to Amazon, in Korean and English, built from the visitor's path.

Pure Python, no widgets. It follows the guide's advice: one clear, calm, direct request; what
the person wants and why it is fair; courteous phrasing; and, when asked, the polite request for
a supervisor. The opening sentence and the default request of each answer come from flow.yaml
(``opening`` and ``want`` on the options of the decision with the role ``subject``); every other
text (what a person can ask for, the message's own lines, the builder's labels) from flow.yaml's
``messages:`` (:class:`widgets.flow.MessageTexts`). What the person types (order number, date, a
one-line description) is cleaned to a single short line; it is used only in the message and
never logged.

:func:`texts` gives a flow's texts (``wants``: want id → its label and request; ``lines``;
``labels``: the builder's controls); the builder takes the ``flow`` whose words it uses (the
packaged flow by default), so a visit of another flow file (``GUIDE_FLOW``) reads its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .flow import Flow, MessageTexts, Text, default_flow


def texts(flow: Flow | None = None) -> MessageTexts:
    """The message's texts of ``flow`` (the guide's flow by default)."""
    return (flow if flow is not None else default_flow()).messages


#: The longest each typed field may be (keys: :class:`MessageInput` fields).
LIMITS = {"order_number": 40, "date": 40, "detail": 200}
#: The message's line for each typed field, in the message's order (keys of
#: ``messages.lines`` in flow.yaml, each filled in with its field: ``{order_number}``...).
FACT_LINES = {"order_number": "order_line", "date": "date_line", "detail": "detail_line"}
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(value: str | None, limit: int) -> str:
    """One trimmed line of at most ``limit`` characters (control characters removed)."""
    if not value:
        return ""
    value = _CONTROL.sub(" ", str(value))
    return _SPACE.sub(" ", value).strip()[:limit]


@dataclass(frozen=True)
class MessageInput:
    """Everything a message is built from. ``opening``: the sentence the message opens with
    (from the answer to the decision with the role ``subject``; None: a general one); ``want``:
    one of the flow's ``messages.wants`` (by default its ``default: true`` want); the free
    fields are optional."""

    opening: Text | None = None
    want: str = field(default_factory=lambda: texts().default_want)
    order_number: str = ""
    date: str = ""
    detail: str = ""
    escalate: bool = False


def from_choices(choices: Mapping[str, str], flow: Flow | None = None, *,
                 want: str | None = None, escalate: bool | None = None,
                 **fields: object) -> MessageInput:
    """A :class:`MessageInput` for the decisions taken so far (``engine.choices``) in ``flow``
    (the packaged flow by default): the ``opening`` and ``want`` of the answer at the node with
    the role ``subject`` (``want`` unless given), and the supervisor request if an answer marked
    ``escalate`` was chosen (unless given)."""
    flow = flow if flow is not None else default_flow()
    answer = None
    for node_id in flow.role_nodes("subject"):
        if node_id in choices and choices[node_id] in flow[node_id].option_ids:
            answer = flow[node_id].option(choices[node_id])
    want = str(want or (answer.want if answer is not None else None)
               or texts(flow).default_want)
    escalate = bool(flow.escalates(choices) if escalate is None else escalate)
    return MessageInput(opening=answer.opening if answer is not None else None, want=want,
                        escalate=escalate, **{k: str(v or "") for k, v in fields.items()})


def build(data: MessageInput, lang: str, flow: Flow | None = None) -> str:
    """The message in ``lang``, as plain text, in the words of ``flow`` (the guide's flow by
    default)."""
    words = texts(flow)
    if data.want not in words.wants:
        raise ValueError(f"unknown request {data.want!r}; expected one of {list(words.wants)}")
    line = words.lines
    lines = [line["greeting"](lang), "", (data.opening or line["opening"])(lang)]
    facts = []
    for key, limit in LIMITS.items():
        value = clean(getattr(data, key), limit)
        if value:
            facts.append(line[FACT_LINES[key]](lang).format(**{key: value}))
    if facts:
        lines += [""] + facts
    lines += ["", f"{words.wants[data.want].request(lang)} {line['fair_solution'](lang)}"]
    if data.escalate:
        lines += ["", line["supervisor"](lang)]
    lines += ["", line["thanks"](lang)]
    return "\n".join(lines)


def build_both(data: MessageInput, flow: Flow | None = None) -> dict[str, str]:
    """The message in Korean and in English."""
    return {"ko": build(data, "ko", flow), "en": build(data, "en", flow)}
