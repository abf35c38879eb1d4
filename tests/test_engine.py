"""The pure engine: choices, routes, Back, Start over, language, progress, recap, events."""

from __future__ import annotations

import subprocess
import sys

import pytest

from widgets.engine import ACTIONS, Engine, EngineError
from widgets.flow import default_flow


def walk(engine: Engine, *choices: str) -> Engine:
    """Answer decisions with ``choices`` in order, pressing Next on information steps."""
    pending = list(choices)
    while not engine.finished:
        if engine.node.kind == "info":
            engine.advance()
        elif pending:
            engine.choose(pending.pop(0))
        else:
            break
    return engine


def test_engine_imports_no_widgets_or_pandas():
    code = ("import sys, widgets.engine, widgets.flow; "
            "bad = {'ipywidgets', 'pandas', 'psycopg', 'sqlite3', 'widgets.log.sqlite'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_starts_at_the_problem_question():
    engine = Engine()
    assert engine.node.id == "problem" and engine.lang == "ko"
    assert not engine.can_go_back and not engine.finished


def test_online_goes_through_contact_us_to_the_order():
    engine = walk(Engine(), "refund", "online", "email")
    assert engine.path == ("problem", "ready", "reach", "help", "select-order", "channel",
                           "talk", "escalate", "done")
    assert engine.finished


def test_a_service_problem_is_described_instead():
    engine = walk(Engine(), "service", "online", "chat")
    assert "describe" in engine.path and "select-order" not in engine.path


def test_preparation_comes_before_the_ways_to_reach_a_person():
    engine = walk(Engine(), "late")
    assert engine.path == ("problem", "ready", "reach")


def test_calling_goes_straight_to_the_conversation():
    engine = walk(Engine(), "damaged", "call")
    assert engine.path == ("problem", "ready", "reach", "talk", "escalate", "done")
    assert "channel" not in engine.path and engine.finished


def test_where_tells_the_target_without_moving():
    engine = walk(Engine(), "service")
    assert engine.where("online") == "help" and engine.where("call") == "talk"
    assert engine.node.id == "reach"


def test_unknown_option_is_an_error_and_changes_nothing():
    engine = Engine()
    with pytest.raises(EngineError, match="no option 'teleport'"):
        engine.choose("teleport")
    assert engine.path == ("problem",)


def test_advance_on_a_decision_and_choose_on_info_are_errors():
    engine = Engine()
    with pytest.raises(EngineError):
        engine.advance()
    engine.choose("refund")
    assert engine.node.kind == "info"
    with pytest.raises(EngineError):
        engine.choose("call")


def test_back_restores_the_previous_choice():
    engine = walk(Engine(), "refund", "online")
    assert engine.node.id == "channel"
    engine.back()
    engine.back()
    assert engine.node.id == "help"
    engine.back()
    assert engine.node.id == "reach" and engine.selected == "online"
    assert "reach" not in engine.choices
    engine.back()
    engine.back()
    assert engine.node.id == "problem" and engine.selected == "refund"
    with pytest.raises(EngineError):
        engine.back()


def test_changing_an_answer_after_back_changes_the_route():
    engine = walk(Engine(), "refund", "online")
    assert engine.node.id == "channel" and "select-order" in engine.path
    while engine.node.id != "problem":
        engine.back()
    walk(engine, "service", "online")
    assert engine.node.id == "channel"
    assert "describe" in engine.path and "select-order" not in engine.path


def test_restart_clears_path_and_memory_but_keeps_language():
    engine = walk(Engine(lang="en"), "refund", "online")
    engine.restart()
    assert engine.path == ("problem",) and engine.selected is None and engine.lang == "en"


def test_language_switch_keeps_step_and_path():
    engine = walk(Engine(), "refund")
    before = (engine.path, dict(engine.choices))
    title_ko = engine.text(engine.node.title)
    engine.set_language("en")
    assert (engine.path, dict(engine.choices)) == before
    assert engine.text(engine.node.title) != title_ko
    assert engine.options() == [("call", "I’ll call now"),
                                ("online", "I’ll sign in and get in touch online")]
    with pytest.raises(EngineError):
        engine.set_language("fr")


def test_progress_total_never_grows_on_any_path():
    flow = default_flow()
    for path in flow.paths:
        engine = Engine(flow)
        totals = []
        for node_id, choice in path[:-1]:
            progress = engine.progress()
            assert progress.step == len(engine.path)
            totals.append(progress.total)
            engine.choose(choice) if choice else engine.advance()
        end = engine.progress()
        totals.append(end.total)
        assert end.step == end.total == len(path) and end.fraction == 1.0, path
        assert all(a >= b for a, b in zip(totals, totals[1:])), (path, totals)
    assert Engine(flow).progress().total == max(len(p) for p in flow.paths)


def test_progress_shortens_when_an_answer_skips_steps():
    engine = walk(Engine(), "refund")
    longest = engine.progress().total
    engine.choose("call")
    assert engine.progress().total < longest


def test_recap_lists_the_path_as_a_checklist():
    engine = walk(Engine(lang="en"), "refund", "online", "email")
    recap = engine.recap()
    assert recap[0] == "What it’s about: a refund (large refunds usually need a supervisor)"
    assert "Phone: +1 206 266 2992 (in English; an international call from Korea)" in recap
    assert any("e-mail" in line for line in recap)
    assert any("supervisor" in line for line in recap[1:])
    engine.set_language("ko")
    assert engine.recap()[0].startswith("문의할 내용: 환불")


def test_every_outline_id_is_shown_on_some_walk():
    flow = default_flow()
    seen = set()
    for path in flow.paths:
        engine = Engine(flow)
        for node_id, choice in path[:-1]:
            assert engine.node.id == node_id
            engine.choose(choice) if choice else engine.advance()
        assert engine.finished
        seen |= engine.covered()
    assert seen == set(flow.outline)


def test_events_are_ids_only_and_in_order():
    events = []
    engine = Engine(lang="en", on_transition=events.append)
    engine.start()
    engine.choose("return")
    engine.advance()
    engine.set_language("ko")
    engine.back()
    engine.restart()
    got = [(e.node, e.action, e.option, e.lang) for e in events]
    assert got == [
        ("problem", "enter", None, "en"),
        ("problem", "choose", "return", "en"),
        ("ready", "enter", None, "en"),
        ("ready", "next", None, "en"),
        ("reach", "enter", None, "en"),
        ("reach", "language", None, "ko"),
        ("reach", "back", None, "ko"),
        ("ready", "enter", None, "ko"),
        ("ready", "restart", None, "ko"),
        ("problem", "enter", None, "ko"),
    ]
    assert {e.action for e in events} <= set(ACTIONS)


def test_events_are_the_logs_events_of_one_visit():
    """The engine's transitions, stamped by the log's adapter, are the log's own Events
    (validated when made): one session id, its clock's time, the milliseconds since the
    previous event (None for the first). A language set before the first screen is the one the
    visit starts in, not a switch."""
    import datetime as dt

    from widgets.eventlog import EventStamper
    from widgets.log.events import Event
    from widgets.vocabulary import is_id

    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    ticks = iter(t0 + dt.timedelta(seconds=2 * i) for i in range(100))
    events = []
    stamp = EventStamper("visit-1", clock=lambda: next(ticks), on_event=events.append)
    engine = Engine(on_transition=stamp)
    engine.set_language("en")
    assert events == []
    engine.start()
    engine.choose("return")
    assert all(type(e) is Event for e in events) and stamp.session == "visit-1"
    assert [(e.ts, e.session, e.action, e.lang, e.elapsed_ms) for e in events] == [
        (t0, "visit-1", "enter", "en", None),
        (t0 + dt.timedelta(seconds=2), "visit-1", "choose", "en", 2000),
        (t0 + dt.timedelta(seconds=4), "visit-1", "enter", "en", 2000),
    ]
    assert len({EventStamper().session, EventStamper().session}) == 2  # random by default
    assert all(is_id(EventStamper().session) for _ in range(3))
    with pytest.raises(ValueError):
        EventStamper("Not an id")
    with pytest.raises(ValueError):
        assert EventStamper(lambda: "Not an id").session


def test_vocabulary_has_one_home():
    from widgets import demo, engine, flow, summary, vocabulary
    from widgets.log import events

    assert engine.ACTIONS is vocabulary.ACTIONS is events.ACTIONS
    assert flow.LANGUAGES is vocabulary.LANGUAGES is events.LANGUAGES is summary.LANGUAGES
    assert tuple(engine.OUTCOME_KEYS) == vocabulary.OUTCOMES is demo.OUTCOMES is summary.OUTCOMES
    assert flow.ID_PATTERN is vocabulary.ID_PATTERN


def test_reaching_the_end_reports_finish():
    events = []
    engine = walk(Engine(on_transition=events.append), "late", "call")
    assert engine.finished
    assert [(e.node, e.action) for e in events[-2:]] == [("done", "enter"), ("done", "finish")]


def test_go_to_opens_a_step_with_a_valid_path():
    engine = Engine()
    engine.go_to("channel")
    assert engine.node.id == "channel"
    flow = default_flow()
    for step in engine.steps[:-1]:
        assert step.choice is None or step.choice in flow[step.node].option_ids
    engine.back()
    assert engine.node.id in ("select-order", "describe")
    with pytest.raises(EngineError):
        engine.go_to("nowhere")


def test_two_engines_are_independent():
    a, b = Engine(), Engine(lang="en")
    a.choose("refund")
    assert b.path == ("problem",) and b.lang == "en" and a.lang == "ko"


def test_the_outcome_texts_are_the_flows():
    """How it went is asked in the flow's words (ui: outcome_*), in the visit's language."""
    from widgets import engine as engine_module
    from widgets.vocabulary import OUTCOMES as IDS

    flow = default_flow()
    engine = Engine(lang="en")
    for key in IDS:
        text = flow.ui[engine_module.OUTCOME_KEYS[key]]
        assert engine.outcome_label(key) == text("en")
    assert not hasattr(engine_module, "OUTCOMES"), "outcome ids live in widgets.vocabulary only"
