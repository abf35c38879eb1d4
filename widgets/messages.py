"""A ready-to-send message to Amazon, in Korean and English, built from the visitor's path.

Pure Python, no widgets. It follows the guide's advice: one clear, calm, direct request; what
the person wants and why it is fair; courteous phrasing; and, when asked, the polite request for
a supervisor. What the person types (order number, date, a one-line description) is cleaned to a
single short line; it is used only in the message and never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from .flow import Flow, Text, default_flow

#: The outcomes a person can ask for, in the order they are offered.
OUTCOMES: Mapping[str, Text] = {
    "return": Text(ko="반품", en="Return"),
    "refund": Text(ko="환불", en="Refund"),
    "replacement": Text(ko="교환(대체 상품)", en="Replacement"),
    "credit": Text(ko="크레딧", en="Credit"),
    "information": Text(ko="해결 방법 안내", en="Information"),
}

#: The outcome suggested for each answer to the message's subject (the decision with the role
#: ``subject`` in flow.yaml; keys are its option ids).
DEFAULT_OUTCOME = {"return": "return", "refund": "refund", "late": "refund",
                   "damaged": "replacement", "service": "information", "prepare": "information"}

PROBLEM = {
    "return": Text(ko="주문한 상품을 반품하고 싶어 연락드립니다.",
                   en="I’m writing because I would like to return an item I ordered."),
    "refund": Text(ko="주문에 대한 환불을 요청드리고자 연락드립니다.",
                   en="I’m writing to ask for a refund on an order."),
    "late": Text(ko="주문한 상품이 아직 도착하지 않아 연락드립니다.",
                 en="I’m writing because my order hasn’t arrived yet."),
    "damaged": Text(ko="받은 상품이 파손되었거나 주문한 것과 다른 상품이어서 연락드립니다.",
                    en="I’m writing because the item I received is damaged or is not what I "
                       "ordered."),
    "service": Text(ko="주문이 아닌 아마존 서비스와 관련해 문의드립니다.",
                    en="I’m writing about an Amazon service rather than an order."),
    None: Text(ko="도움이 필요한 문제가 있어 연락드립니다.",
               en="I’m writing about a problem I need help with."),
}

WANT = {
    "return": Text(ko="이 상품을 반품하고 싶습니다.", en="I would like to return the item."),
    "refund": Text(ko="환불을 받고 싶습니다.", en="I would like a refund."),
    "replacement": Text(ko="대체 상품으로 교환받고 싶습니다.", en="I would like a replacement."),
    "credit": Text(ko="이 문제에 대해 크레딧을 받을 수 있으면 좋겠습니다.",
                   en="I would like to receive credit for this problem."),
    "information": Text(ko="어떻게 해결할 수 있는지 안내해 주시면 좋겠습니다.",
                        en="I would like to know how this can be resolved."),
}

GREETING = Text(ko="안녕하세요.", en="Hello,")
FAIR = Text(ko="오랫동안 아마존을 이용해 온 고객으로서, 약속대로 처리되는 것이 양쪽 모두에게 공정한 "
               "해결이라고 생각합니다.",
            en="I’ve been a customer for a long time, and I think this is a fair solution for "
               "both of us: it puts things back the way they were promised.")
COURTESY = Text(ko="상담원님 잘못이 아니라는 건 알고 있습니다. 그저 공정하게 해결하고 싶습니다.",
                en="I know this isn’t your fault; I just want to resolve it fairly.")
ESCALATE = Text(ko="죄송하지만, 이 문제를 바로 도와주실 수 있는 분과 이야기할 수 있을까요?",
                en="I’m sorry, but could I speak with someone who can help me with this right "
                   "away?")
THANKS = Text(ko="도와주셔서 감사합니다.", en="Thank you for your help.")
ORDER_LINE = Text(ko="주문 번호: {}", en="Order number: {}")
DATE_LINE = Text(ko="날짜: {}", en="Date: {}")
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
    """Everything a message is built from. ``problem`` is the answer to the message's subject
    (the decision with the role ``subject``; None if unknown); the free fields are optional."""

    problem: str | None = None
    outcome: str = "information"
    order_number: str = ""
    date: str = ""
    detail: str = ""
    escalate: bool = False


def from_choices(choices: Mapping[str, str], flow: Flow | None = None, *,
                 outcome: str | None = None, escalate: bool | None = None,
                 **fields: object) -> MessageInput:
    """A :class:`MessageInput` for the decisions taken so far (``engine.choices``) in ``flow``
    (the packaged flow by default): the answer at the node with the role ``subject``, the
    outcome it suggests (unless given), and the supervisor request if an answer marked
    ``escalate`` was chosen (unless given)."""
    flow = flow if flow is not None else default_flow()
    problem = next((choices[n] for n in flow.role_nodes("subject") if n in choices), None)
    outcome = str(outcome or DEFAULT_OUTCOME.get(problem or "", "information"))
    escalate = bool(flow.escalates(choices) if escalate is None else escalate)
    return MessageInput(problem=problem if problem in PROBLEM else None, outcome=outcome,
                        escalate=escalate, **{k: str(v or "") for k, v in fields.items()})


def build(data: MessageInput, lang: str) -> str:
    """The message in ``lang``, as plain text."""
    if data.outcome not in WANT:
        raise ValueError(f"unknown outcome {data.outcome!r}; expected one of {list(WANT)}")
    lines = [GREETING(lang), "", PROBLEM.get(data.problem, PROBLEM[None])(lang)]
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
    lines += ["", f"{WANT[data.outcome](lang)} {FAIR(lang)}", COURTESY(lang)]
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
    "intro": Text(ko="지금까지 고른 내용으로 채팅이나 이메일에 붙여 넣을 메시지를 만듭니다. 아래 칸은 "
                     "비워 두어도 됩니다. 입력한 내용은 이 화면에서만 쓰이고 저장되지 않습니다.",
                  en="A message to paste into chat or e-mail, built from your answers. The fields "
                     "below are optional; what you type is used only on this screen and is not "
                     "stored."),
    "outcome": Text(ko="원하는 결과", en="What you want"),
    "order_number": Text(ko="주문 번호 (선택)", en="Order number (optional)"),
    "order_number_hint": Text(ko="예: 123-4567890-1234567", en="e.g. 123-4567890-1234567"),
    "date": Text(ko="날짜 (선택)", en="Date (optional)"),
    "date_hint": Text(ko="예: 11월 20일 주문", en="e.g. ordered on 20 November"),
    "detail": Text(ko="한 줄 설명 (선택)", en="One-line description (optional)"),
    "detail_hint": Text(ko="예: 상자가 젖은 채로 도착했어요", en="e.g. the box arrived soaked"),
    "supervisor": Text(ko="관리자 연결을 정중히 요청하는 문장 넣기",
                     en="Add a polite request to speak to a supervisor"),
    "ko": Text(ko="한국어", en="Korean"),
    "en": Text(ko="영어", en="English"),
    "copy": Text(ko="복사하기", en="Copy"),
    "copied": Text(ko="복사했습니다", en="Copied"),
    "download": Text(ko="텍스트 파일로 저장", en="Download as text"),
}
