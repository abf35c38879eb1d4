"""Message builder, case notes and the outcome question, without a browser."""

from __future__ import annotations

import html
from datetime import datetime, timezone
import sqlite3
from urllib.parse import quote

import pytest
import yaml

from widgets import casenotes, messages
from widgets.engine import Engine, EngineError
from widgets.flow import DEFAULT_PATH, load_flow
from widgets.view import GuideView

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
XSS = "<img src=x onerror=alert(1)>"
TYPED = ["123-4567890-1234567", "김민수", "REF-998877", XSS, "환불 약속 받음"]


class Sink:
    def __init__(self):
        self.events = []

    def record(self, event):
        self.events.append((event.node, event.action, event.option, event.lang))


def to_channel(view: GuideView, problem="damaged"):
    view.step_view.dropdown.value = problem
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    online = view.engine.flow[view.engine.node.id].option("online").label(view.engine.lang)
    next(b for b in view.step_view.option_buttons if b.description == online).click()
    while view.engine.node.kind == "info":
        view.step_view.next_button.click()
    assert view.engine.node.id == "channel"


def to_end(view: GuideView):
    while not view.engine.finished:
        if view.engine.node.kind == "info":
            view.step_view.next_button.click()
        elif view.engine.node.widget == "dropdown":
            view.step_view.dropdown.value = "late"
            view.step_view.continue_button.click()
        else:
            next(b for b in view.step_view.option_buttons if b.layout.display != "none").click()


@pytest.fixture()
def view():
    return GuideView(lang="en", sink=Sink()).start()


# ------------------------------------------------------------------ message builder


def test_message_follows_the_articles_advice():
    data = messages.from_choices({"problem": "again"}, order_number="123-456")
    assert data.escalate and data.want == "information"  # "again" is marked escalate
    en = messages.build(data, "en")
    assert en.startswith("Hello,\n\nI am writing again because a problem I contacted you about")
    assert "Order number: 123-456" in en
    assert "I would like to know what can be done about it. I would appreciate a solution" in en
    assert "Could I please speak to a supervisor about this?" in en
    ko = messages.build(data, "ko")
    assert "주문 번호: 123-456" in ko and "이 문제로 관리자와 이야기할 수 있을까요?" in ko
    # the courtesy line belongs to the escalation advice, not to the first message
    assert "isn’t your fault" not in en and "잘못이 아니" not in ko


def test_damaged_and_wrong_items_open_differently_and_ask_for_a_replacement():
    damaged = messages.from_choices({"problem": "damaged"})
    wrong = messages.from_choices({"problem": "wrong"})
    assert damaged.want == wrong.want == "replacement" and not damaged.escalate
    assert "arrived damaged" in messages.build(damaged, "en")
    assert "different item" in messages.build(wrong, "en")
    refund = messages.build(messages.from_choices({"problem": "damaged"}, want="refund"), "en")
    assert "I would like a refund." in refund


def test_the_fair_sentence_fits_every_request():
    words = messages.texts()
    for want in words.wants:
        en = messages.build(messages.MessageInput(want=want), "en")
        assert f"{words.wants[want].request('en')} {words.lines['fair_solution']('en')}" in en
        assert "put back" not in en and "as promised" not in en


def test_the_message_says_which_version_to_send(view):
    to_channel(view)
    heading = html.unescape(view.message_panel.heading.value)
    assert "Send the English message" in heading
    view.language.value = "ko"
    assert "영어 메시지를 보내세요" in html.unescape(view.message_panel.heading.value)


def test_a_flow_file_with_its_own_texts_shows_them_in_the_view(tmp_path):
    """A flow file (as ``GUIDE_FLOW`` names one) with its own ``messages:`` and ``casenotes:``
    texts: the message builder and the case notes show those, in both languages, never the
    packaged flow's."""
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    words = data["messages"]
    words["labels"]["title"] = {"ko": "메시지 초안", "en": "Draft your message"}
    words["labels"]["outcome"] = {"ko": "바라는 해결", "en": "What would fix it"}
    words["lines"]["greeting"] = {"ko": "안녕하십니까.", "en": "Good day,"}
    refund = next(want for want in words["wants"] if want["id"] == "refund")
    refund["label"] = {"ko": "돈 돌려받기", "en": "My money back"}
    refund["request"] = {"ko": "돈을 돌려받고 싶습니다.", "en": "I would like my money back."}
    notes = data["casenotes"]
    notes["title"] = {"ko": "연락 기록", "en": "Contact log"}
    notes["headers"]["agent"] = {"ko": "담당자", "en": "Person"}
    notes["channels"]["chat"] = {"ko": "대화창", "en": "Live chat"}
    notes["labels"]["add"] = {"ko": "적어 두기", "en": "Keep this note"}
    notes["labels"]["toggle"] = {"ko": "연락 기록 보기", "en": "Show the contact log"}
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    flow = load_flow(path)
    packaged = messages.texts()
    view = GuideView(flow, lang="en", sink=Sink()).start()

    to_channel(view)
    panel = view.message_panel
    assert ("My money back", "refund") in panel.outcome.options
    assert packaged.wants["refund"].label("en") not in [label for label, _ in panel.outcome.options]
    assert "Draft your message" in html.unescape(panel.heading.value)
    assert panel.outcome.description == "What would fix it"
    panel.outcome.value = "refund"
    out = html.unescape(panel.output.value)
    assert "Good day," in out and "I would like my money back." in out
    assert "안녕하십니까." in out and "돈을 돌려받고 싶습니다." in out
    assert packaged.lines["greeting"]("en") not in out
    assert packaged.wants["refund"].request("en") not in out

    assert view.notes_panel.toggle.description == "Show the contact log"
    view.notes_panel.toggle.value = True
    notes_panel = view.notes_panel
    assert "Contact log" in html.unescape(notes_panel.intro.value)
    assert notes_panel.agent.description == "Person"
    assert ("Live chat", "chat") in notes_panel.channel.options
    assert notes_panel.add_button.description == "Keep this note"
    notes_panel.channel.value = "chat"
    notes_panel.agent.value = "Kim"
    notes_panel.add_button.click()
    table = html.unescape(notes_panel.table.value)
    assert "Live chat" in table and "Person" in table
    assert quote("# Contact log") in notes_panel.links.value
    assert quote("| Live chat | Kim |") in notes_panel.links.value

    view.language.value = "ko"
    assert "메시지 초안" in html.unescape(panel.heading.value)
    assert ("돈 돌려받기", "refund") in panel.outcome.options
    assert "대화창" in html.unescape(notes_panel.table.value)
    assert "연락 기록" in html.unescape(notes_panel.intro.value)


def test_message_fields_are_one_short_line():
    data = messages.MessageInput(detail="line one\nline two\t" + "x" * 500)
    text = messages.build(data, "en")
    detail = next(line for line in text.splitlines() if line.startswith("What happened:"))
    assert "\n" not in detail and len(detail) <= len("What happened: ") + 200
    with pytest.raises(ValueError):
        messages.build(messages.MessageInput(want="revenge"), "en")


def test_builder_shows_at_channel_and_end_only(view):
    assert view.message_panel.layout.display == "none"
    to_channel(view)
    assert view.message_panel.layout.display != "none"
    assert view.message_panel.outcome.value == "replacement"  # suggested from "damaged"
    view.step_view.next_button.click() if view.engine.node.kind == "info" else None
    next(b for b in view.step_view.option_buttons if b.description.startswith("Chat")).click()
    assert view.message_panel.layout.display == "none"
    to_end(view)
    assert view.message_panel.layout.display != "none"


def test_builder_shows_both_languages_side_by_side(view):
    to_channel(view)
    view.message_panel.order_number.value = "123-4567890-1234567"
    out = view.message_panel.output.value
    assert "lang='ko'" in out and "lang='en'" in out
    assert "주문 번호: 123-4567890-1234567" in out and "Order number: 123-4567890-1234567" in out
    assert "amazon-message-ko.txt" in out and "amazon-message-en.txt" in out
    assert "navigator.clipboard" in out


def test_typed_markup_is_shown_as_text_not_run(view):
    to_channel(view)
    view.message_panel.detail.value = XSS
    out = view.message_panel.output.value
    assert XSS not in out
    assert html.escape(XSS) in out


def test_outcome_choice_and_escalation_change_the_message(view):
    to_channel(view)
    view.message_panel.outcome.value = "credit"
    view.message_panel.escalate.value = True
    out = html.unescape(view.message_panel.output.value)
    assert "I would like store credit" in out and "speak to a supervisor" in out
    view.language.value = "ko"  # switching language keeps what the person set
    panel = view.message_panel
    assert panel.outcome.value == "credit" and panel.escalate.value is True


# ------------------------------------------------------------------ case notes


def test_case_notes_add_download_and_reload(view):
    view.notes_panel.toggle.value = True
    assert view.notes_panel.layout.display != "none"
    view.notes_panel.when.value = "26 Nov, 3 pm"
    view.notes_panel.channel.value = "chat"
    view.notes_panel.agent.value = "Kim | Lee"
    view.notes_panel.reference.value = "REF-998877"
    view.notes_panel.promised.value = "refund, within 3 days"
    view.notes_panel.add_button.click()
    view.notes_panel.agent.value = "박지민"
    view.notes_panel.add_button.click()
    assert len(view.notes_panel.notes) == 2 and view.notes_panel.agent.value == ""
    assert "REF-998877" in view.notes_panel.table.value
    # the channel by its name in the guide's language; the notes keep its id
    panel = view.notes_panel
    assert "<td>Chat</td>" in panel.table.value and panel.notes[0].channel == "chat"
    view.language.value = "ko"
    assert "<td>채팅</td>" in panel.table.value and "<td>chat</td>" not in panel.table.value
    for text in (casenotes.to_markdown(panel.notes, "ko"), casenotes.to_csv(panel.notes)):
        fresh = GuideView(lang="ko").start()
        fresh.notes_panel.toggle.value = True
        fresh.notes_panel.upload.value = ({"name": "notes", "type": "text/plain",
                                     "size": len(text.encode()),
                                     "content": memoryview(text.encode()),
                                     "last_modified": NOW},)
        assert fresh.notes_panel.notes == view.notes_panel.notes
        assert "2" in fresh.notes_panel.status.value


def test_empty_note_is_refused_and_bad_file_loses_nothing(view):
    view.notes_panel.toggle.value = True
    view.notes_panel.add_button.click()
    assert view.notes_panel.notes == [] and "at least one field" in view.notes_panel.status.value
    view.notes_panel.agent.value = "Lee"
    view.notes_panel.add_button.click()
    view.notes_panel.upload.value = ({"name": "x.csv", "type": "text/csv", "size": 3,
                                "content": memoryview(b"a,b\n1,2\n"), "last_modified": NOW},)
    assert len(view.notes_panel.notes) == 1 and "can’t be loaded" in view.notes_panel.status.value


def test_note_cells_are_escaped(view):
    view.notes_panel.toggle.value = True
    view.notes_panel.agent.value = XSS
    view.notes_panel.add_button.click()
    table = view.notes_panel.table.value
    assert XSS not in table and html.escape(XSS) in table


def test_markdown_names_the_channel_and_reads_it_back():
    notes = [casenotes.make_note(channel="chat", agent="Kim"),
             casenotes.make_note(channel="phone"), casenotes.make_note(agent="Lee")]
    korean, english = casenotes.to_markdown(notes, "ko"), casenotes.to_markdown(notes, "en")
    assert "| 채팅 | Kim |" in korean and "| 전화 |" in korean and "chat" not in korean
    assert "| Chat | Kim |" in english and "| Phone |" in english
    assert casenotes.parse(korean) == notes and casenotes.parse(english) == notes
    # a name edited by hand in the other language or case still reads back
    assert casenotes.parse(korean.replace("채팅", "CHAT"))[0].channel == "chat"


def test_casenotes_parse_errors_name_the_line():
    with pytest.raises(casenotes.CaseNotesError, match="line 3"):
        casenotes.parse("when,channel,agent,reference,promised\n1,2,3,4,5\n1,2\n")
    with pytest.raises(casenotes.CaseNotesError, match="UTF-8"):
        casenotes.parse(b"\xff\xfe\x00")


# ------------------------------------------------------------------ outcome


def test_outcome_is_one_click_on_the_visit_that_comes_back(view):
    to_end(view)
    assert view.outcome_panel.layout.display == "none"  # not before contact
    assert view.follow_up(view.engine.followup_code())
    assert view.outcome_panel.layout.display != "none"
    next(b for b in view.outcome_panel.buttons if b.description == "Partly solved").click()
    assert view.sink.events[-1] == ("done", "followup", "partly", "en")
    assert "Thank you" in view.outcome_panel.label.value


def test_outcome_only_on_a_visit_that_comes_back():
    engine = Engine()
    with pytest.raises(EngineError):
        engine.record_followup("solved")


# ------------------------------------------------------------------ privacy


def test_typed_text_never_reaches_the_store(tmp_path, monkeypatch):
    from widgets.app import guide

    db = tmp_path / "events.sqlite3"
    monkeypatch.setenv("GUIDE_LOG_URL", f"sqlite:///{db}")
    monkeypatch.delenv("QUERY_STRING", raising=False)
    view = guide(lang="en")
    to_channel(view)
    message = view.message_panel
    for field, value in zip((message.order_number, message.date, message.detail), TYPED):
        field.value = value
    view.notes_panel.toggle.value = True
    notes = view.notes_panel
    for field, value in zip((notes.when, notes.agent, notes.reference, notes.promised), TYPED):
        field.value = value
    view.notes_panel.add_button.click()
    to_end(view)
    assert view.follow_up(view.engine.followup_code())
    next(b for b in view.outcome_panel.buttons if b.description == "Solved").click()
    view.sink.flush()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM events").fetchall()
    assert len(rows) > 10 and ("done", "followup", "solved") in {r[3:6] for r in rows} | {
        (r[3], r[4], r[5]) for r in rows}
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("events.sqlite3-*"))
    for value in TYPED + ["Kim"]:
        assert value.encode() not in raw, value
        assert all(value not in map(str, row) for row in rows)


# ------------------------------------------------------------------ logging failures


def test_guide_keeps_working_while_the_store_is_away_and_catches_up(tmp_path, monkeypatch):
    """The store's folder is blocked (a file stands where it should be): the guide advances and
    shows the notice; once the folder can be made, the buffered events are written in order."""
    from widgets.app import guide

    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    db = blocker / "events.sqlite3"
    monkeypatch.setenv("GUIDE_LOG_URL", f"sqlite:///{db}")
    monkeypatch.delenv("QUERY_STRING", raising=False)
    now = [1000.0]  # the logger waits retry_after seconds between tries: a clock we move
    monkeypatch.setattr("widgets.log.time.monotonic", lambda: now[0])
    view = guide(lang="en")
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    assert view.engine.node.id == "reach"
    assert view.sink.wait_idle(10)  # the log's writer thread tried, and failed
    assert view.notice.layout.display != "none" and "can’t be saved" in view.notice.value
    assert view.sink.pending >= 5

    blocker.unlink()
    blocker.mkdir()
    now[0] += view.sink.retry_after + 1
    view.step_view.option_buttons[0].click()
    assert view.sink.wait_idle(10)
    assert view.sink.healthy and view.sink.pending == 0
    assert view.notice.layout.display == "none"
    with sqlite3.connect(db) as conn:
        got = conn.execute("SELECT node, action, option FROM events ORDER BY id").fetchall()
    assert got == [("problem", "enter", None), ("problem", "choose", "return"),
                   ("ready", "enter", None), ("ready", "next", None), ("reach", "enter", None),
                   ("reach", "choose", "call"), ("talk", "enter", None)]
