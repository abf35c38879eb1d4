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


def test_order_with_sign_in_goes_through_contact_us_to_the_order():
    engine = walk(Engine(), "refund", "yes", "yes", "email", "yes")
    assert engine.path == ("problem", "order", "sign-in", "help", "need-more-help",
                           "select-order", "channel", "goal", "records", "fair", "kind",
                           "helped", "patience", "done")
    assert engine.finished


def test_not_a_specific_order_is_described_instead():
    engine = walk(Engine(), "late", "no", "yes", "chat")
    assert "describe" in engine.path and "select-order" not in engine.path


def test_service_problem_skips_the_order_question():
    engine = walk(Engine(), "service", "yes", "phone")
    assert engine.path[:3] == ("problem", "sign-in", "help")
    assert "describe" in engine.path


def test_no_sign_in_leads_to_the_phone_number():
    engine = walk(Engine(), "damaged", "yes", "no")
    assert engine.node.id == "phone"
    walk(engine, "call", "no")
    assert "channel" not in engine.path and "escalate" in engine.path and engine.finished


def test_call_back_continues_through_contact_us():
    engine = walk(Engine(), "return", "yes", "no", "callback")
    assert engine.node.id == "channel"
    assert engine.path[3:6] == ("phone", "help", "need-more-help")


def test_prepare_first_goes_straight_to_preparation():
    engine = walk(Engine(), "prepare")
    assert engine.path == ("problem", "goal", "records", "fair", "kind", "helped")


def test_where_tells_the_target_without_moving():
    engine = Engine()
    assert engine.where("service") == "sign-in"
    assert engine.where("prepare") == "goal"
    assert engine.node.id == "problem"


def test_unknown_option_is_an_error_and_changes_nothing():
    engine = Engine()
    with pytest.raises(EngineError, match="no option 'teleport'"):
        engine.choose("teleport")
    assert engine.path == ("problem",)


def test_advance_on_a_decision_and_choose_on_info_are_errors():
    engine = Engine()
    with pytest.raises(EngineError):
        engine.advance()
    engine.choose("prepare")
    assert engine.node.kind == "info"
    with pytest.raises(EngineError):
        engine.choose("yes")


def test_back_restores_the_previous_choice():
    engine = walk(Engine(), "refund", "no")
    assert engine.node.id == "sign-in"
    engine.back()
    assert engine.node.id == "order" and engine.selected == "no"
    assert "order" not in engine.choices
    engine.back()
    assert engine.node.id == "problem" and engine.selected == "refund"
    with pytest.raises(EngineError):
        engine.back()


def test_changing_an_answer_after_back_changes_the_route():
    engine = walk(Engine(), "refund", "yes", "yes")
    assert engine.node.id == "channel" and "select-order" in engine.path
    while engine.node.id != "order":
        engine.back()
    walk(engine, "no", "yes")
    assert engine.node.id == "channel"
    assert "describe" in engine.path and "select-order" not in engine.path


def test_restart_clears_path_and_memory_but_keeps_language():
    engine = walk(Engine(lang="en"), "refund", "yes")
    engine.restart()
    assert engine.path == ("problem",) and engine.selected is None and engine.lang == "en"


def test_language_switch_keeps_step_and_path():
    engine = walk(Engine(), "refund", "yes", "no")
    before = (engine.path, dict(engine.choices))
    title_ko = engine.text(engine.node.title)
    engine.set_language("en")
    assert (engine.path, dict(engine.choices)) == before
    assert engine.text(engine.node.title) != title_ko
    assert engine.options() == [("call", "I’ll call them now"),
                                ("callback", "I’d rather Amazon called me (needs signing in)")]
    with pytest.raises(EngineError):
        engine.set_language("fr")


def test_progress_counts_the_shortest_way_to_the_end():
    engine = Engine()
    first = engine.progress()
    assert first.step == 1
    assert first.total == min(len(p) for p in default_flow().paths)
    engine.choose("refund")
    progress = engine.progress()
    assert progress.step == 2 and progress.total > first.total  # the order route is longer
    walk(engine, "yes", "yes", "email", "yes")
    end = engine.progress()
    assert end.step == end.total == len(engine.path) and end.fraction == 1.0


def test_recap_lists_the_path_as_a_checklist():
    engine = walk(Engine(lang="en"), "refund", "yes", "yes", "email", "no")
    recap = engine.recap()
    assert recap[0] == "What it is about: a refund"
    assert any("e-mail" in line for line in recap)
    assert any("manager" in line for line in recap)
    assert not any("+1 206" in line for line in recap)  # they never chose to call
    engine.set_language("ko")
    assert engine.recap()[0] == "문의할 내용: 환불"


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
    engine = Engine(lang="en", on_event=events.append)
    engine.start()
    engine.choose("prepare")
    engine.advance()
    engine.set_language("ko")
    engine.back()
    engine.restart()
    got = [(e.node, e.action, e.option, e.lang) for e in events]
    assert got == [
        ("problem", "enter", None, "en"),
        ("problem", "choose", "prepare", "en"),
        ("goal", "enter", None, "en"),
        ("goal", "next", None, "en"),
        ("records", "enter", None, "en"),
        ("records", "language", None, "ko"),
        ("records", "back", None, "ko"),
        ("goal", "enter", None, "ko"),
        ("goal", "restart", None, "ko"),
        ("problem", "enter", None, "ko"),
    ]
    assert {e.action for e in events} <= set(ACTIONS)


def test_events_are_the_logs_events_of_one_visit():
    """The engine makes the log's own Event (validated when made): one session id, its clock's
    time, the milliseconds since the previous event (None for the first). A language set before
    the first screen is the one the visit starts in, not a switch."""
    import datetime as dt

    from widgets.log.events import Event

    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    ticks = iter(t0 + dt.timedelta(seconds=2 * i) for i in range(100))
    events = []
    engine = Engine(on_event=events.append, session="visit-1", clock=lambda: next(ticks))
    engine.set_language("en")
    assert events == []
    engine.start()
    engine.choose("prepare")
    assert all(type(e) is Event for e in events) and engine.session == "visit-1"
    assert [(e.ts, e.session, e.action, e.lang, e.elapsed_ms) for e in events] == [
        (t0, "visit-1", "enter", "en", None),
        (t0 + dt.timedelta(seconds=2), "visit-1", "choose", "en", 2000),
        (t0 + dt.timedelta(seconds=4), "visit-1", "enter", "en", 2000),
    ]
    assert len({Engine().session, Engine().session}) == 2  # random by default
    with pytest.raises(ValueError):
        Engine(session="Not an id")


def test_vocabulary_has_one_home():
    from widgets import demo, engine, flow, summary, vocabulary
    from widgets.log import events

    assert engine.ACTIONS is vocabulary.ACTIONS is events.ACTIONS
    assert flow.LANGUAGES is vocabulary.LANGUAGES is events.LANGUAGES is summary.LANGUAGES
    assert tuple(engine.OUTCOMES) == vocabulary.OUTCOMES is demo.OUTCOMES is summary.OUTCOMES
    assert flow.ID_PATTERN is vocabulary.ID_PATTERN


def test_reaching_the_end_reports_finish():
    events = []
    engine = walk(Engine(on_event=events.append), "prepare", "yes")
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
