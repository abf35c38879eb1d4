"""The call sheet and the outcome when it is known: never asked before contact, asked on the
visit that comes back with the return link (or a case-notes file carrying it), logged with the
earlier visit's problem and channel as ids, "not yet" leading to the escalation advice; the
summary and the dashboard keep those outcomes apart from the older ones (asked before
contact)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from widgets import callsheet, casenotes, dashboard, followup
from widgets.app import guide
from widgets.engine import Engine, EngineError
from widgets.eventlog import EventStamper
from widgets.flow import default_flow
from widgets.log import Event, open_store
from widgets.summary import summarize
from widgets.view import GuideView

FLOW = default_flow()
HOSTILE = [
    "<script>alert(1)</script>",
    "problem:refund,reach:online,channel:chat,<img src=x onerror=alert(1)>",
    "problem:refund,reach:call,channel:chat",          # not a path of the flow
    "problem:refund,reach:online",                     # a path cut short
    "problem:refund,problem:late,reach:call",          # a decision twice
    "problem:CALL+1-800-555-0100,reach:call",          # a fake number for an option
    "ready:x,reach:call,problem:refund",               # a step that is no decision
    "problem:refund,reach:call" + ",x:y" * 200,        # too long
    "\u202eproblem:refund,reach:call",                 # a right-to-left override
]


class Sink:
    def __init__(self):
        self.events = []

    def record(self, event):
        self.events.append((event.node, event.action, event.option, event.lang))


def subject_and_contact(path) -> dict[str, str]:
    kept = set(FLOW.role_nodes("subject")) | set(FLOW.role_nodes("contact"))
    return {n: o for n, o in path if n in kept and o is not None}


# ------------------------------------------------------------------ never before contact


def test_no_outcome_question_on_any_path_before_contact():
    """Walk every path of the flow with the engine, and the view at every step of it: how it
    went is asked nowhere (the visitor has not contacted Amazon yet)."""
    assert FLOW.role_nodes("outcome") == ()
    view = GuideView(lang="ko")
    for path in FLOW.paths:
        engine = Engine(lang="ko")
        engine.start()
        for node, option in path:
            assert engine.node.id == node and not engine.asks_followup
            with pytest.raises(EngineError):
                engine.record_followup("solved")
            with pytest.raises(EngineError):
                engine.record_outcome("solved")
            view.start(step=node)
            assert view.outcome_panel.layout.display == "none"
            if option is not None:
                engine.choose(option)
            elif engine.node.kind == "info":
                engine.advance()
        assert engine.finished and engine.outcome is None


# ------------------------------------------------------------------ the return link


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(o for _, o in p if o))
def test_every_path_gives_a_return_link_that_decodes_to_its_answers(path):
    engine = Engine(lang="en")
    engine.go_to(path[-1][0], along=subject_and_contact(path))
    code = engine.followup_code()
    assert code is not None and re.fullmatch(r"[a-z0-9._:,-]+", code)
    assert followup.decode(FLOW, code) == subject_and_contact(path)


def test_the_last_screen_gives_the_return_link_with_ids_only():
    view = GuideView(lang="en").start()
    view.engine.go_to("done", along={"problem": "refund", "reach": "online", "channel": "chat"})
    view.render()
    html = view.return_panel.text.value
    assert view.return_panel.layout.display != "none"
    assert "href='?followup=problem:refund,reach:online,channel:chat&amp;lang=en'" in html


def test_link_round_trip_asks_once_and_logs_the_earlier_problem_and_channel(monkeypatch):
    monkeypatch.setenv("QUERY_STRING",
                       "lang=en&followup=problem:refund,reach:online,channel:chat")
    view = guide(log=False)
    view.sink = sink = Sink()
    assert view.notice.layout.display == "none"
    assert view.outcome_panel.layout.display != "none"
    label = view.outcome_panel.label.value
    assert "How did it go" in label and "I want a refund" in label and "Chat" in label
    next(b for b in view.outcome_panel.buttons if b.description == "Solved").click()
    assert sink.events == [("problem", "followup", "solved", "en")]
    assert "Thank you" in view.outcome_panel.label.value
    assert view.engine.node.id == FLOW.start  # solved: nothing more to do


def test_the_recalled_answers_are_logged_as_ids_before_the_outcome():
    events = []
    engine = Engine(lang="ko", on_transition=events.append)
    engine.start()
    engine.recall({"problem": "late", "reach": "call"})
    engine.record_followup("partly")
    assert [(e.node, e.action, e.option) for e in events] == [
        ("problem", "enter", None), ("problem", "recall", "late"), ("reach", "recall", "call"),
        ("problem", "followup", "partly")]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_or_unknown_link_is_ignored_with_the_fixed_notice(monkeypatch, value):
    from urllib.parse import quote

    monkeypatch.setenv("QUERY_STRING", "lang=en&followup=" + quote(value))
    view = guide(log=False)
    assert view.engine.recalled is None
    assert view.outcome_panel.layout.display == "none"
    assert FLOW.ui["link_followup"]("en") in view.notice.value
    shown = "".join(str(getattr(w, "value", "")) + str(getattr(w, "description", ""))
                    for w in _widgets(view))
    for piece in ("<script>", "<img", "800-555", "CALL", "\u202e", "x:y"):
        assert piece not in shown


def _widgets(root):
    yield root
    for child in getattr(root, "children", ()):
        yield from _widgets(child)


def test_not_solved_leads_to_the_escalation_advice_with_the_supervisor_ticked(monkeypatch):
    monkeypatch.setenv("QUERY_STRING", "lang=ko&followup=problem:late,reach:call")
    view = guide(log=False)
    next(b for b in view.outcome_panel.buttons if b.outcome == "not-yet").click()
    escalation = FLOW.role_nodes("escalation")
    assert view.engine.node.id == escalation[0]
    assert "m2.escalate" in FLOW[escalation[0]].covers
    assert view.engine.choices["problem"] == "late" and view.engine.choices["reach"] == "call"
    assert view.message_panel.layout.display != "none"
    assert view.message_panel.escalate.value is True
    assert view.message_input().escalate
    # and on to the last screen, the supervisor request still ticked
    view.step_view.next_button.click()
    assert view.engine.finished and view.message_panel.escalate.value is True


def test_case_notes_carry_the_return_link_and_loading_them_asks_the_outcome():
    first = GuideView(lang="en").start()
    first.engine.go_to("done", along={"problem": "damaged", "reach": "online", "channel": "phone"})
    first.notes_panel.toggle.value = True
    notes = first.notes_panel
    notes.agent.value, notes.reference.value = "Kim", "R-12"
    notes.add_button.click()
    href = re.search(r"href='data:text/markdown;charset=utf-8,([^']+)'", notes.links.value)[1]
    from urllib.parse import unquote

    md = unquote(href)
    assert "?followup=problem:damaged,reach:online,channel:phone" in md
    assert casenotes.parse(md)[0].reference == "R-12"

    later = GuideView(lang="en").start()
    later.sink = sink = Sink()
    later.notes_panel.toggle.value = True
    later.notes_panel.upload.value = ({"name": "notes.md", "content": md.encode()},)
    assert later.outcome_panel.layout.display != "none"
    assert [e[1:3] for e in sink.events] == [
        ("recall", "damaged"), ("recall", "online"), ("recall", "phone")]


def test_a_notes_file_with_a_forged_return_link_loads_its_notes_and_asks_nothing():
    md = casenotes.to_markdown([casenotes.make_note(agent="Kim")], "en",
                               followup="problem:refund,reach:call,channel:chat")
    view = GuideView(lang="en").start()
    view.notes_panel.toggle.value = True
    view.notes_panel.upload.value = ({"name": "notes.md", "content": md.encode()},)
    assert len(view.notes_panel.notes) == 1 and view.engine.recalled is None
    assert view.outcome_panel.layout.display == "none"


# ------------------------------------------------------------------ the call sheet


def test_the_call_sheet_is_offered_on_the_last_screen_and_holds_what_a_call_needs():
    view = GuideView(lang="ko").start()
    assert view.callsheet_panel.layout.display == "none"
    view.engine.go_to("done", along={"problem": "refund", "reach": "call"})
    view.notes_panel.toggle.value = True
    view.notes_panel.agent.value, view.notes_panel.reference.value = "Sarah", "123-ABC"
    view.notes_panel.add_button.click()
    view.render()
    assert view.callsheet_panel.layout.display != "none"
    view.callsheet_panel.toggle.value = True
    sheet = view.callsheet_panel.sheet.value
    assert "+1 206 266 2992" in sheet and "Need more help?" in sheet and "Contact us" in sheet
    assert "환불받고 싶어요" in sheet and "Sarah" in sheet and "123-ABC" in sheet
    lines = FLOW.phrases_for(view.engine.choices)
    assert lines
    positions = [sheet.index(f"<span class='guide-say-en' lang='en'>{_e(p.en)}</span>"
                             f"<span class='guide-say-ko' lang='ko'>{_e(p.ko)}</span>")
                 for p in lines]
    assert positions == sorted(positions)  # in the order of a call
    assert "class='guide-print'" in sheet and "onclick" not in sheet


def _e(text):
    import html

    return html.escape(text)


def test_the_english_call_sheet_has_no_korean_meanings():
    sheet = callsheet.sheet_html(FLOW, "en", {"problem": "late", "reach": "call"})
    assert "guide-say-ko" not in sheet and "guide-say-en" in sheet
    assert not re.search(r"[\uac00-\ud7a3]", sheet)


def test_print_stylesheet_shows_only_the_call_sheet_black_on_white():
    css = open("widgets/guide.css", encoding="utf-8").read()
    media = css[css.index("@media print"):]
    assert ".guide-print-sheet" in media and "display: none" in media
    assert "#000" in media and "#fff" in media and "break-inside: avoid" in media
    js = open("share/jupyter/voila/templates/guide/static/guide.js", encoding="utf-8").read()
    assert "guide-print" in js and "window.print()" in js


# ------------------------------------------------------------------ the summary and dashboard


def _old_and_new_log(url: str) -> None:
    """An older session that answered on the last screen (``outcome``), and return visits."""
    clock = itertools.count()
    start = dt.datetime(2026, 1, 5, 10, tzinfo=dt.timezone.utc)

    def at():
        return start + dt.timedelta(seconds=next(clock))

    events = []
    old = [("problem", "enter", None), ("problem", "choose", "refund"),
           ("reach", "enter", None), ("reach", "choose", "call"), ("done", "enter", None),
           ("done", "outcome", "solved")]
    for i, (node, action, option) in enumerate(old):
        events.append(Event(at(), "old1", node, action, option, "ko", None if i == 0 else 5))
    for session, code, outcome in (("new1", "problem:refund,reach:call", "not-yet"),
                                   ("new2", "problem:late,reach:online,channel:chat", "solved"),
                                   ("new3", "problem:late,reach:online,channel:chat", "solved")):
        engine = Engine(lang="en", on_transition=EventStamper(session, clock=at,
                                                               on_event=events.append))
        engine.start()
        engine.recall(followup.decode(FLOW, code))
        engine.record_followup(outcome)
    with open_store(url) as store:
        store.write(events)


def test_the_summary_keeps_outcomes_before_and_after_contact_apart(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    _old_and_new_log(url)
    s = summarize(url, flow=FLOW)
    assert list(zip(s.outcomes["channel"], s.outcomes["outcome"], s.outcomes["sessions"])) == [
        ("call", "solved", 1)]
    assert list(zip(s.followups["channel"], s.followups["outcome"], s.followups["sessions"],
                    s.followups["share"])) == [("call", "not-yet", 1, 1.0),
                                              ("chat", "solved", 2, 1.0)]
    paths = s.followup_paths
    assert list(paths.columns) == ["problem", "reach", "outcome", "sessions", "share"]
    assert list(paths.itertuples(index=False, name=None)) == [
        ("refund", "call", "not-yet", 1, 1.0), ("late", "online", "solved", 2, 1.0)]
    # the recalled answers are not choices made on the return visit
    assert s.choices["count"].sum() == 2
    # filters select return visits like any session
    assert summarize(url, flow=FLOW, lang="ko").followups.empty


def test_the_dashboard_labels_the_change():
    tables = dashboard.TABLE_STYLES
    assert "Before contact" in tables["outcomes"][0] and "guesses" in tables["outcomes"][0]
    assert "After contact" in tables["followups"][0] and "return link" in tables["followups"][0]


def test_the_dashboard_shows_the_after_contact_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    _old_and_new_log(url)
    s = dashboard.labelled(summarize(url, flow=FLOW), FLOW, "en")
    tables = dashboard.styled_tables(s)
    assert list(tables)[-2:] == ["followups", "followup_paths"] or "followups" in tables
    assert "After contact" in tables["followups"] and "Not yet" in tables["followups"]
    assert "Before contact" in tables["outcomes"]


def test_the_demo_comes_back_after_contact_and_never_asks_before(tmp_path):
    """Demo data for the packaged flow: return visits say how it went (recall + followup), and
    no outcome is asked on the way to contacting Amazon, so the dashboard's tables fill as a
    live log would fill them."""
    from widgets import demo
    from widgets.log import SQLiteStore
    from widgets.summary import summarize

    with SQLiteStore(tmp_path / "events.sqlite3") as store:
        demo.fill(store, 6000, seed=5)
        actions = {row[0] for row in store.query("SELECT DISTINCT action FROM events")[1]}
        summary = summarize(store)
    assert {"recall", "followup"} <= actions and "outcome" not in actions
    assert summary.followups is not None and summary.followups["sessions"].sum() > 0
    flow = default_flow()
    channels = {option for node in flow.role_nodes("contact") for option in flow[node].option_ids}
    assert 3 <= len(set(summary.followups["channel"])) and set(summary.followups["channel"]) <= channels
