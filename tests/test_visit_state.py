"""One visit's state (widgets/state.py), the engine's transitions, and the adapter that hands
them to the log (widgets/eventlog.py): plain Python, no widgets."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from widgets import casenotes, messages
from widgets.engine import Engine, Transition
from widgets.eventlog import EventRelay, EventStamper, deliver
from widgets.flow import default_flow
from widgets.log.events import Event
from widgets.state import VisitState

FLOW = default_flow()
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def ticks(step_s: float = 1.5):
    moments = (T0 + dt.timedelta(seconds=step_s * i) for i in range(1000))
    return lambda: next(moments)


class Many:
    """A sink of the new kind: the events of one interaction together."""

    def __init__(self, accept: bool = True):
        self.batches: list[tuple[Event, ...]] = []
        self.accept = accept

    def record_many(self, events):
        self.batches.append(events)
        return self.accept


class One:
    """A sink that takes one event at a time."""

    def __init__(self):
        self.events: list[Event] = []

    def record(self, event):
        self.events.append(event)
        return True


# ------------------------------------------------------------------ the engine's transitions


def test_the_engine_reports_plain_transitions():
    seen: list[Transition] = []
    engine = Engine(lang="en", on_transition=seen.append)
    engine.start()
    engine.choose("refund")
    engine.set_language("ko")
    assert seen == [Transition("enter", "problem", None, "en"),
                    Transition("choose", "problem", "refund", "en"),
                    Transition("enter", "ready", None, "en"),
                    Transition("language", "ready", None, "ko")]
    with pytest.raises(AttributeError):
        seen[0].node = "elsewhere"  # frozen: what happened stays as it happened


def test_importing_the_engine_imports_nothing_of_the_log():
    code = ("import sys, widgets.engine, widgets.state; "
            "bad = sorted(m for m in sys.modules if m.startswith('widgets.log') "
            "or m in ('widgets.eventlog', 'ipywidgets')); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_engine_without_listeners_makes_no_transitions(monkeypatch):
    made = []
    monkeypatch.setattr("widgets.engine.Transition", lambda *a: made.append(a))
    engine = Engine()
    engine.start()
    engine.choose("late")
    assert made == [] and engine.node.id == "ready"


# ------------------------------------------------------------------ the adapter


def test_the_stamper_makes_the_logs_events_of_one_visit():
    asked = []

    def session():
        asked.append(True)
        return "visit-7"

    stamp = EventStamper(session, ticks(2))
    assert asked == []  # the id is asked for when the first event is made (the visit begins)
    first = stamp(Transition("enter", "problem", None, "ko"))
    second = stamp(Transition("choose", "problem", "late", "ko"))
    assert type(first) is Event and asked == [True]
    assert first == Event(T0, "visit-7", "problem", "enter", None, "ko", None)
    assert second == Event(T0 + dt.timedelta(seconds=2), "visit-7", "problem", "choose", "late",
                           "ko", 2000)
    with pytest.raises(ValueError):
        stamp(Transition("typed", "problem", None, "ko"))  # not an action of the vocabulary


def test_the_relay_hands_one_interaction_to_the_sink_together():
    sink = Many()
    relay = EventRelay("visit-1", sink, ticks())
    relay(Transition("choose", "problem", "late", "en"))
    relay(Transition("enter", "ready", None, "en"))
    assert sink.batches == [] and len(relay.held) == 2
    assert relay.flush() is True
    assert [[(e.node, e.action) for e in batch] for batch in sink.batches] == [
        [("problem", "choose"), ("ready", "enter")]]
    assert relay.held == () and relay.flush() is False  # nothing held: nothing handed


def test_a_sink_with_only_record_gets_the_events_one_by_one():
    sink = One()
    relay = EventRelay("visit-1", sink, ticks())
    relay(Transition("enter", "problem", None, "ko"))
    relay(Transition("choose", "problem", "late", "ko"))
    relay.flush()
    assert [e.action for e in sink.events] == ["enter", "choose"]


def test_delivering_never_raises(caplog):
    class Broken:
        def record_many(self, events):
            raise OSError("store gone")

    event = EventStamper("visit-1", ticks())(Transition("enter", "problem", None, "ko"))
    assert deliver(Broken(), [event]) is False
    assert "store gone" in caplog.text
    assert deliver(None, [event]) is False and deliver(Many(), []) is False
    assert deliver(Many(accept=False), [event]) is False


# ------------------------------------------------------------------ the visit's state


def test_the_state_collects_the_transitions_of_the_visit():
    state = VisitState(lang="en")
    state.engine.start()
    state.choose("refund")
    assert [(t.action, t.node) for t in state.take_transitions()] == [
        ("enter", "problem"), ("choose", "problem"), ("enter", "ready")]
    assert state.take_transitions() == []


def test_a_dropdown_pick_waits_for_continue_and_a_step_change_forgets_it():
    state = VisitState(lang="ko")
    state.engine.start()
    assert state.selected is None and state.confirm() is False
    state.pick("late")
    state.set_language("en")  # a language switch keeps it
    assert state.selected == "late"
    state.pick(None)
    assert state.selected is None
    state.pick("refund")
    assert state.confirm() and state.engine.node.id == "ready"
    assert state.pending is None  # the step changed
    state.back()
    assert state.selected == "refund"  # the answer given there, from the engine


def test_an_action_clears_the_notices_of_the_previous_one():
    state = VisitState(lang="en")
    state.engine.start()
    state.notices = (FLOW.ui["link_step"],)
    state.error = True
    state.log_ok = False
    assert state.notice_texts() == [FLOW.ui["link_step"]("en"), FLOW.ui["error"]("en"),
                                    FLOW.ui["log_notice"]("en")]
    state.choose("late")
    assert state.notice_texts() == [FLOW.ui["log_notice"]("en")]  # the log's health stays


def test_the_message_follows_the_path_until_the_visitor_sets_it():
    state = VisitState(lang="en")
    state.engine.start()
    state.choose("refund")
    suggested = state.message_want()
    assert state.message_input().want == suggested
    other = next(key for key in messages.texts().wants if key != suggested)
    state.message.want = other
    state.message.order_number = "123-456"
    assert state.message_input().want == other and state.message_input().order_number == "123-456"
    assert state.message_escalate() is bool(FLOW.escalates(state.engine.choices))
    state.message.escalate = True
    assert state.message_input().escalate is True


def test_notes_are_added_and_loaded_with_a_status_line():
    state = VisitState(lang="en")
    assert state.add_note({"agent": "", "reference": ""}) is False
    assert state.notes_status is casenotes.labels()["need_something"]
    assert state.add_note({"agent": "Kim", "reference": "R-1"}) is True
    assert state.notes_status is None and len(state.notes) == 1
    state.load_notes(casenotes.to_markdown(state.notes, "en").encode())
    assert len(state.notes) == 2 and state.notes_status is not None
    state.load_notes(b"not case notes at all")
    assert len(state.notes) == 2


def test_a_notes_file_with_the_return_link_starts_the_visit_that_comes_back():
    state = VisitState(lang="en")
    state.engine.start()
    md = casenotes.to_markdown([casenotes.make_note(agent="Kim")], "en",
                               followup="problem:late,reach:call")
    state.load_notes(md.encode())
    assert state.shows_outcome and state.engine.recalled == {"problem": "late", "reach": "call"}
    assert [t.action for t in state.take_transitions()][-2:] == ["recall", "recall"]


def test_which_panels_show_comes_from_the_roles():
    state = VisitState(lang="en")
    for node in FLOW:
        state.engine.go_to(node.id)
        assert state.shows_message == ("message" in node.roles)
        assert state.shows_callsheet == ("callsheet" in node.roles)
        assert (state.return_code is not None) <= ("followup" in node.roles)
        assert not state.shows_outcome
