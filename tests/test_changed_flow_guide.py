"""Content changes need no code change: the guide and the demo run unchanged on a copy of
flow.yaml with a step renamed, a step added, the contact decision moved, a path dimension
added and the supervisor request moved to another answer (see tests/changed_flow.py).

These tests fail if the guide's code names a step, or decides by a step's id, where the flow's
roles (contact, path, message, outcome) and option flags (escalate, weight) should decide.
"""

from __future__ import annotations

from collections import Counter

import pytest

from changed_flow import ADDED, ADDED_OPTIONS, RENAMED, write_changed_flow
from widgets import demo, messages
from widgets.app import guide
from widgets.flow import FLOW_ENV, default_flow, load_flow
from widgets.view import GuideView


class Sink:
    def __init__(self):
        self.events = []

    def record(self, event):
        self.events.append((event.node, event.action, event.option, event.lang))


@pytest.fixture()
def flow_path(tmp_path):
    return write_changed_flow(tmp_path)


@pytest.fixture()
def flow(flow_path):
    return load_flow(flow_path)


def visible(widget) -> bool:
    return widget.layout.display != "none"


def press(view, label):
    buttons = {b.description: b for b in view.step_view.option_buttons if visible(b)}
    assert label in buttons, (label, sorted(buttons))
    buttons[label].click()


def walk_to(view, node_id):
    while view.engine.node.id != node_id:
        assert view.engine.node.kind == "info", view.engine.node.id
        view.step_view.next_button.click()


def test_the_copy_declares_the_changes(flow):
    assert "channel" not in flow.nodes and RENAMED in flow.nodes and ADDED in flow.nodes
    assert flow.role_nodes("contact") == (ADDED,)
    assert flow.role_nodes("path") == ("problem", "order", "sign-in")
    assert flow.role_nodes("message") == (ADDED, "done")
    assert [o.id for o in flow["helped"].options if o.escalate] == ["not-yet"]
    assert {o.id: o.weight for o in flow[ADDED].options} == ADDED_OPTIONS


def walk_the_copy(flow, helped_label):
    """refund, a specific order, signed in, then the renamed step and the added one, on to
    the end; returns the view (English) and its sink."""
    sink = Sink()
    view = GuideView(flow=flow, lang="en", sink=sink).start()
    view.step_view.dropdown.value = "refund"
    view.step_view.continue_button.click()
    press(view, "Yes, a specific order")
    press(view, "Yes, I can sign in")
    walk_to(view, RENAMED)
    # the message builder left the renamed step with its role
    assert not visible(view.message_panel)
    press(view, "Chat — a live online conversation")
    assert view.engine.node.id == ADDED
    assert visible(view.message_panel) and "Write your message" in view.message_panel.heading.value
    assert not visible(view.outcome_panel)
    press(view, "By letter")
    assert not visible(view.message_panel)
    walk_to(view, "helped")
    press(view, helped_label)
    walk_to(view, "done")
    return view, sink


def test_the_guide_follows_the_roles_of_the_copy(flow):
    view, sink = walk_the_copy(flow, "I haven’t been in touch yet — help me be ready")
    # the copy keeps the older `outcome` role on its last step: not asked before contact
    assert visible(view.message_panel) and not visible(view.outcome_panel)
    # `escalate` now marks "not yet": the supervisor request is pre-ticked
    assert view.message_panel.escalate.value is True
    assert messages.texts(flow).lines["supervisor"]("en") in view.message_panel.output.value.replace("&#x27;", "'")
    # events carry the renamed and the added steps' ids, never the old one
    assert (RENAMED, "choose", "chat", "en") in sink.events
    assert (ADDED, "enter", None, "en") in sink.events
    assert (ADDED, "choose", "letter", "en") in sink.events
    assert not any(node == "channel" for node, *_ in sink.events)


def test_the_supervisor_request_follows_escalate_in_the_copy(flow):
    view, _ = walk_the_copy(flow, "No, the agent can’t help")  # escalate in the packaged flow
    assert visible(view.message_panel)
    assert view.message_panel.escalate.value is False
    assert not messages.from_choices(view.engine.choices, flow=flow).escalate


def test_an_older_outcome_role_asks_nothing_before_contact(flow_path):
    """A flow file of before the return link may still give a step the role ``outcome``: it
    loads, and the guide asks how it went nowhere on the way to contacting Amazon."""
    text = flow_path.read_text(encoding="utf-8")
    moved = load_flow(_write(flow_path, text.replace(
        "  - message\n  - outcome\n", "  - message\n").replace(
        "  - contact\n  - message\n", "  - contact\n  - message\n  - outcome\n")))
    assert moved.role_nodes("outcome") == (ADDED,)
    view = GuideView(flow=moved, lang="en").start(step=ADDED)
    assert not visible(view.outcome_panel)
    press(view, "By chat")
    assert not visible(view.outcome_panel)
    view.start(step="done")
    assert not visible(view.outcome_panel) and visible(view.message_panel)
    # that flow has no step giving the return link, so a link cannot ask either
    assert not view.follow_up("problem:refund") and not visible(view.outcome_panel)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_walks_the_copy(flow):
    events = list(demo.generate(4000, seed=1, flow=flow))
    nodes = Counter(e.node for e in events)
    assert nodes[RENAMED] and nodes[ADDED] and "channel" not in nodes
    answers = Counter(e.option for e in events if e.node == ADDED and e.action == "choose")
    # weights 5:3:2 in the copy
    assert answers["chat"] > answers["email"] > answers["letter"] > 0
    assert any(e.action == "outcome" and e.node == "done" for e in events)


@pytest.fixture()
def guide_flow_env(flow_path, monkeypatch):
    monkeypatch.setenv(FLOW_ENV, str(flow_path))
    default_flow.cache_clear()
    yield flow_path
    monkeypatch.delenv(FLOW_ENV)
    default_flow.cache_clear()


def test_the_app_runs_on_the_copy_named_by_the_environment(guide_flow_env, monkeypatch):
    monkeypatch.setenv("QUERY_STRING", f"lang=en&step={ADDED}")
    view = guide(log=False)
    assert view.engine.node.id == ADDED and visible(view.message_panel)
    assert not visible(view.notice)
    assert default_flow().role_nodes("contact") == (ADDED,)
