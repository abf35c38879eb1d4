"""A ready-to-send message to Amazon, in Korean and English, built from the visitor's path.

Pure Python, no widgets. It follows the guide's advice: one clear, calm, direct request; what
the person wants and why it is fair; courteous phrasing; and, when asked, the polite request for
a supervisor. The opening sentence and the default request of each answer come from flow.yaml
(``opening`` and ``want`` on the options of the decision with the role ``subject``). What the
person types (order number, date, a one-line description) is cleaned to a
single short line; it is used only in the message and never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from .flow import Flow, Text, default_flow

#: What a person can ask for, in the order offered (keys: :data:`widgets.flow.WANTS`).
WANTS: Mapping[str, Text] = {
    "return": Text(ko="반품", en="A return"),
    "refund": Text(ko="환불", en="A refund"),
    "replacement": Text(ko="교환 (새 상품으로)", en="A replacement"),
    "credit": Text(ko="스토어 크레딧", en="Store credit"),
    "information": Text(ko="해결 방법 안내", en="Advice on how to solve it"),
}

#: The opening when the path has no answer with its own ``opening`` in flow.yaml.
OPENING = Text(ko="도움이 필요한 문제가 있어 연락드립니다.",
               en="I am writing about a problem I need help with.")

WANT = {
    "return": Text(ko="이 상품을 반품하고 싶습니다.", en="I would like to return the item."),
    "refund": Text(ko="환불을 받고 싶습니다.", en="I would like a refund."),
    "replacement": Text(ko="새 상품으로 교환받고 싶습니다.", en="I would like a replacement."),
    "credit": Text(ko="이 일에 대한 보상으로 스토어 크레딧을 받고 싶습니다.",
                   en="I would like store credit to make up for this."),
    "information": Text(ko="어떤 조치를 해 주실 수 있는지 알고 싶습니다.",
                        en="I would like to know what can be done about it."),
}

GREETING = Text(ko="안녕하세요.", en="Hello,")
#: Follows what the person asks for, whatever it is.
FAIR = Text(ko="서로에게 공정한 방향으로 해결해 주시면 감사하겠습니다.",
            en="I would appreciate a solution that is fair to both sides.")
ESCALATE = Text(ko="이 문제로 관리자와 이야기할 수 있을까요?",
                en="Could I please speak to a supervisor about this?")
THANKS = Text(ko="도와주셔서 감사합니다.", en="Thank you for your help.")
ORDER_LINE = Text(ko="주문 번호: {}", en="Order number: {}")
DATE_LINE = Text(ko="문제가 생긴 날짜: {}", en="Date of the problem: {}")
DETAIL_LINE = Text(ko="상황: {}", en="What happened: {}")

#: The longest each typed field may be (keys: :class:`MessageInput` fields).
LIMITS = {"order_number": 40, "date": 40, "detail": 200}
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
    one of :data:`WANTS`; the free fields are optional."""

    opening: Text | None = None
    want: str = "information"
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
    want = str(want or (answer.want if answer is not None else None) or "information")
    escalate = bool(flow.escalates(choices) if escalate is None else escalate)
    return MessageInput(opening=answer.opening if answer is not None else None, want=want,
                        escalate=escalate, **{k: str(v or "") for k, v in fields.items()})


def build(data: MessageInput, lang: str) -> str:
    """The message in ``lang``, as plain text."""
    if data.want not in WANT:
        raise ValueError(f"unknown request {data.want!r}; expected one of {list(WANT)}")
    lines = [GREETING(lang), "", (data.opening or OPENING)(lang)]
    facts = []
    order = clean(data.order_number, LIMITS["order_number"])
    date = clean(data.date, LIMITS["date"])
    detail = clean(data.detail, LIMITS["detail"])
    if order:
        facts.append(ORDER_LINE(lang).format(order))
    if date:
        facts.append(DATE_LINE(lang).format(date))
    if detail:
        facts.append(DETAIL_LINE(lang).format(detail))
    if facts:
        lines += [""] + facts
    lines += ["", f"{WANT[data.want](lang)} {FAIR(lang)}"]
    if data.escalate:
        lines += ["", ESCALATE(lang)]
    lines += ["", THANKS(lang)]
    return "\n".join(lines)


def build_both(data: MessageInput) -> dict[str, str]:
    """The message in Korean and in English."""
    return {"ko": build(data, "ko"), "en": build(data, "en")}

#: Labels of the message builder's controls.
LABELS: Mapping[str, Text] = {
    "title": Text(ko="보낼 메시지 만들기", en="Write your message"),
    "intro": Text(ko="지금까지 고른 답으로 채팅이나 이메일에 붙여 넣을 메시지를 만들어요. 아래 칸은 "
                     "비워 두어도 돼요. 입력한 내용은 이 화면에서만 쓰이고 이 안내에 따로 보관되지 않아요.",
                  en="A message to paste into chat or e-mail, built from your answers. The fields "
                     "below are optional; what you type is used only on this screen, and the guide "
                     "doesn’t keep it."),
    "which": Text(ko="아마존에는 영어 메시지를 보내세요. 채팅과 이메일도 영어로 주고받아요. 한국어 "
                     "메시지는 내용을 확인하는 용도예요. 아래 칸에 적은 내용은 두 메시지에 그대로 "
                     "들어가니 영어로 적으세요.",
                  en="Send the English message to Amazon: chat and e-mail are in English too. "
                     "The Korean version is there so you can check what it says. What you type "
                     "below goes into both versions as you typed it, so write it in English."),
    "outcome": Text(ko="원하는 것", en="What you want"),
    "order_number": Text(ko="주문 번호 (해당할 때만, 선택)",
                         en="Order number, if any"),
    "order_number_hint": Text(ko="예: 123-4567890-1234567", en="e.g. 123-4567890-1234567"),
    "date": Text(ko="문제가 생긴 날짜 (영어로, 선택)", en="Date of the problem (optional)"),
    "date_hint": Text(ko="예: Nov 20 (11월 20일)", en="e.g. Nov 20"),
    "detail": Text(ko="한 줄 설명 (영어로, 선택)", en="One-line description (optional)"),
    "detail_hint": Text(ko="예: I was charged the same amount twice (같은 금액이 두 번 청구됨)",
                        en="e.g. I was charged the same amount twice"),
    "supervisor": Text(ko="관리자와 이야기하게 해 달라는 정중한 문장 넣기",
                     en="Add a polite request to speak to a supervisor"),
    "ko": Text(ko="한국어", en="Korean"),
    "en": Text(ko="영어", en="English"),
    "copy": Text(ko="복사하기", en="Copy"),
    "copied": Text(ko="복사했어요", en="Copied"),
    "download": Text(ko="텍스트 파일로 저장", en="Download as text"),
}
