"""The widget view, driven without a browser: set ``.value`` and call ``.click()``."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from urllib.parse import urlencode

import ipywidgets as w
import pytest

from widgets.app import guide
from widgets.flow import default_flow
from widgets.log.events import Event
from widgets.view import GuideView, render_body


FLOW = default_flow()


class Sink:
    """Records what the view sends: the engine's Events, checked to be one visit's, in order."""

    def __init__(self):
        self.events = []
        self.made = []

    def record(self, event):
        assert type(event) is Event  # the log's own type, as the engine made it
        assert not self.made or (event.session == self.made[-1].session
                                 and event.ts >= self.made[-1].ts and event.elapsed_ms is not None)
        self.made.append(event)
        self.events.append((event.node, event.action, event.option, event.lang))


def visible(widget) -> bool:
    return widget.layout.display != "none"


def buttons(view):
    return {b.description: b for b in view.step_view.option_buttons if visible(b)}


def press(view, label):
    buttons(view)[label].click()


@pytest.fixture()
def view():
    return GuideView(lang="en", sink=Sink()).start()


def test_first_screen(view):
    assert view.engine.node.id == "problem"
    assert "What do you need help with?" in view.step_view.text.value
    text = view.step_view.text.value
    assert "+1 206 266 2992" in text and 'href="tel:+12062662992"' in text
    assert visible(view.step_view.dropdown_box) and not visible(view.step_view.buttons_box)
    assert not visible(view.step_view.next_button) and not visible(view.step_view.recap)
    assert view.step_view.continue_button.disabled and view.back_button.disabled
    assert view.step_view.dropdown.value == ""
    assert [label for label, _ in view.step_view.dropdown.options][0] == "— Choose one —"


def test_dropdown_then_continue(view):
    view.step_view.dropdown.value = "refund"
    assert not view.step_view.continue_button.disabled
    view.step_view.continue_button.click()
    assert view.engine.node.id == "ready"
    assert visible(view.step_view.next_button) and not visible(view.step_view.dropdown_box)
    view.step_view.next_button.click()
    assert visible(view.step_view.buttons_box) and not visible(view.step_view.next_button)
    assert set(buttons(view)) == {"I’ll call now", "I’ll sign in and get in touch online"}


def test_full_path_to_the_recap(view):
    view.step_view.dropdown.value = "damaged"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    press(view, "I’ll sign in and get in touch online")
    while view.engine.node.kind == "info":
        assert visible(view.step_view.next_button)
        assert view.step_view.next_button.description == "Next step →"
        view.step_view.next_button.click()
    assert view.engine.node.id == "channel"
    press(view, "Chat — a live conversation")
    while view.engine.node.kind == "info":
        view.step_view.next_button.click()
    assert view.engine.finished
    assert visible(view.step_view.recap) and not visible(view.step_view.next_button)
    assert "Your checklist" in view.step_view.recap.value
    assert "a damaged item" in view.step_view.recap.value
    assert "+1 206 266 2992" in view.step_view.recap.value
    assert "chat (live, with an agent)" in view.step_view.recap.value
    assert view.step_view.recap.value.count("type='checkbox'") == len(view.engine.recap())
    steps = len(view.engine.path)
    label = f"<p class='guide-progress-label'>Step {steps} of {steps}</p>"
    assert label in view.step_view.text.value
    assert f"max='{steps}' value='{steps}'" in view.step_view.text.value


def test_back_restores_the_choice_in_the_widgets(view):
    view.step_view.dropdown.value = "late"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    press(view, "I’ll call now")
    view.back_button.click()
    assert view.engine.node.id == "reach"
    chosen = [b for b in view.step_view.option_buttons if b.button_style == "info"]
    assert [b.description for b in chosen] == ["I’ll call now"]
    view.back_button.click()
    view.back_button.click()
    assert view.engine.node.id == "problem" and view.step_view.dropdown.value == "late"
    assert not view.step_view.continue_button.disabled and view.back_button.disabled


def test_start_over(view):
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    view.restart_button.click()
    assert view.engine.path == ("problem",) and view.step_view.dropdown.value == ""


def test_language_switch_mid_flow_keeps_step_and_path(view):
    view.step_view.dropdown.value = "refund"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    path = view.engine.path
    view.language.value = "ko"
    assert view.engine.path == path and view.engine.node.id == "reach"
    assert "상담원과 연결되는 두 가지 방법" in view.step_view.text.value
    assert set(buttons(view)) == {"지금 전화할게요", "로그인해서 온라인으로 문의할게요"}
    assert view.back_button.description == "← 이전 단계로"
    assert re.search(r"guide-progress-label'>\d+단계 중 3단계<", view.step_view.text.value)
    view.back_button.click()
    assert view.engine.node.id == "ready"
    view.back_button.click()
    # the dropdown's labels follow the language and keep the earlier choice
    assert view.step_view.dropdown.value == "refund"
    assert dict(view.step_view.dropdown.options)["환불받고 싶어요"] == "refund"


def test_widgets_are_updated_in_place(view):
    part = view.step_view
    before = [id(w) for w in (part.text, part.dropdown, part.next_button, *part.option_buttons)]
    children = [id(c) for c in view.children]
    view.step_view.dropdown.value = "service"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    press(view, "I’ll sign in and get in touch online")
    view.language.value = "ko"
    after = [id(w) for w in (part.text, part.dropdown, part.next_button, *part.option_buttons)]
    assert after == before and [id(c) for c in view.children] == children


def test_every_interaction_reaches_the_sink(view):
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    view.language.value = "ko"
    view.back_button.click()
    assert view.sink.events == [
        ("problem", "enter", None, "en"),
        ("problem", "choose", "return", "en"),
        ("ready", "enter", None, "en"),
        ("ready", "language", None, "ko"),
        ("ready", "back", None, "ko"),
        ("problem", "enter", None, "ko"),
    ]


def test_the_events_of_one_interaction_reach_the_sink_together():
    """A sink with ``record_many`` gets each interaction's events in one call, as Events of
    one visit, in order; the view holds nothing back between interactions."""
    batches = []

    class Many:
        def record_many(self, events):
            batches.append([(e.node, e.action, e.option) for e in events])
            assert all(type(e) is Event for e in events)
            return True

    view = GuideView(lang="en", sink=Many()).start()
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()
    view.language.value = "ko"
    assert batches == [
        [("problem", "enter", None)],
        [("problem", "choose", "return"), ("ready", "enter", None)],
        [("ready", "next", None), ("reach", "enter", None)],
        [("reach", "language", None)],
    ]
    assert view.state.transitions == []


def test_the_page_is_updated_before_the_interaction_is_logged():
    """A click's log write (a disk write) must not delay what the visitor sees."""
    seen = []

    class Watching:
        def record(self, event):
            node = event.node
            seen.append((node, event.action, "data-step='%d-%s'" % (len(view.engine.path), node)
                         in view.step_view.text.value))

    view = GuideView(lang="en", sink=Watching()).start()
    view.step_view.dropdown.value = "return"
    seen.clear()
    view.step_view.continue_button.click()
    assert seen == [("problem", "choose", False), ("ready", "enter", True)]
    assert view.engine.node.id == "ready"
    seen.clear()
    view.back_button.click()
    assert [(node, action) for node, action, _ in seen] == [("ready", "back"), ("problem", "enter")]
    assert "data-step='1-problem'" in view.step_view.text.value


def test_a_failing_callback_shows_a_friendly_message(view, monkeypatch, caplog):
    def broken(*_args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(view.engine, "advance", broken)
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    view.step_view.next_button.click()  # raises inside; must not escape
    assert visible(view.notice)
    assert "Sorry, something went wrong" in view.notice.value
    assert "disk on fire" not in view.notice.value and "Traceback" not in view.notice.value
    assert "disk on fire" in caplog.text
    view.language.value = "ko"
    assert "죄송해요" in view.notice.value
    engine = view.engine
    monkeypatch.setattr(engine, "advance", type(engine).advance.__get__(engine))  # mended
    view.step_view.next_button.click()
    assert not visible(view.notice) and view.engine.node.id == "reach"


def test_a_failing_sink_does_not_break_the_guide(caplog):
    class Broken:
        def record(self, *args):
            raise OSError("store gone")

    view = GuideView(lang="en", sink=Broken()).start()
    view.step_view.dropdown.value = "return"
    view.step_view.continue_button.click()
    assert view.engine.node.id == "ready" and not visible(view.notice)
    assert "store gone" in caplog.text


def test_log_health_notice(view):
    view.set_log_health(False)
    assert visible(view.notice) and "can’t be saved" in view.notice.value
    view.set_log_health(True)
    assert not visible(view.notice)


def test_two_guides_in_one_kernel_are_independent():
    a, b = GuideView(lang="ko").start(), GuideView(lang="en").start()
    a.step_view.dropdown.value = "refund"
    a.step_view.continue_button.click()
    a.language.value = "en"
    assert b.engine.path == ("problem",) and b.step_view.dropdown.value == ""
    b.language.value = "ko"
    assert a.engine.lang == "en" and a.engine.node.id == "ready"


def test_body_markup_is_escaped():
    out = render_body("<img src=x onerror=alert(1)> **Help**\n\n- a & b\n\n> say <this>")
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "<strong>Help</strong>" in out and "<li>a &amp; b</li>" in out
    assert "<blockquote>say &lt;this&gt;</blockquote>" in out


def test_guide_reads_language_and_step_from_the_query_string(monkeypatch):
    monkeypatch.setenv("QUERY_STRING", "lang=en&step=channel")
    view = guide(log=False)
    assert view.engine.lang == "en" and view.engine.node.id == "channel"
    assert not visible(view.notice)


#: Link values that would mislead a visitor if the page repeated them: a fake support number
#: (a known scam), and text turned around by a right-to-left override (U+202E).
HOSTILE_VALUES = ["Call +1 888 555 0199", "<script>alert(1)</script>",
                  "\u202eCall 0199 555 888 1+", "zz\u202e", "\u202e"]
#: The parts of those values that must appear nowhere on the page.
HOSTILE_PARTS = ["888", "555", "0199", "<script", "alert(1)", "zz", "\u202e"]


def widget_texts(widget) -> list[str]:
    """Every text the page shows for ``widget`` and the widgets inside it: each synced string
    (or strings in a list) of their states, hidden panels included."""
    found, seen, todo = [], set(), [widget]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for value in current.get_state().values():
            values = value if isinstance(value, (list, tuple)) else [value]
            found += [v for v in values if isinstance(v, str) and not v.startswith("IPY_MODEL_")]
        todo += [child for child in getattr(current, "children", ())]
        todo += [part for part in vars(current).values() if isinstance(part, w.Widget)]
    return found


def notice_lines(view) -> list[str]:
    return [html.unescape(line) for line in re.findall(r"<span role='status'>(.*?)</span>",
                                                        view.notice.value)]


def test_guide_ignores_unknown_query_values_with_a_note(monkeypatch):
    monkeypatch.setenv("QUERY_STRING", "lang=fr&step=<script>")
    view = guide(log=False)
    assert view.engine.lang == "ko" and view.engine.node.id == "problem"
    assert visible(view.notice)
    assert notice_lines(view) == [FLOW.ui["link_language"]("ko"), FLOW.ui["link_step"]("ko")]
    assert "script" not in view.notice.value


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("where", ["step", "lang", "query-step", "query-lang"])
def test_a_link_value_the_guide_ignores_is_never_shown(monkeypatch, value, where):
    """The notice says that the link's step or language was ignored, in the guide's language,
    and repeats nothing of it: not in the notice, nor anywhere else on the page."""
    monkeypatch.setenv("QUERY_STRING", "lang=en")
    if where == "step":
        view = guide(step=value, lang="en", log=False)
    elif where == "lang":
        view = guide(lang=value, step="reach", log=False)
    else:
        key = where.removeprefix("query-")
        monkeypatch.setenv("QUERY_STRING", urlencode({"lang": "en", key: value} if key == "step"
                                                     else {key: value, "step": "reach"}))
        view = guide(log=False)
    key = "link_step" if where.endswith("step") else "link_language"
    lang = "en" if key == "link_step" else "ko"
    assert view.engine.lang == lang
    assert view.engine.node.id == ("problem" if key == "link_step" else "reach")
    assert visible(view.notice) and notice_lines(view) == [FLOW.ui[key](lang)]
    shown = widget_texts(view)
    assert view.notice.value in shown
    for part in HOSTILE_PARTS:
        if part in value:
            assert not [text for text in shown if part in text], part
    # the note follows a language switch, and goes with the visitor's next action
    view.language.value = "ko" if lang == "en" else "en"
    assert notice_lines(view) == [FLOW.ui[key](view.engine.lang)]
    view.restart_button.click()
    assert not visible(view.notice)


def test_guide_kernel_imports_no_pandas_or_database_client():
    code = ("import sys, widgets.app; widgets.app.guide(log=False); "
            "bad = {'pandas', 'psycopg', 'matplotlib'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_language_switch_keeps_a_dropdown_choice_not_yet_confirmed():
    view = GuideView(lang="ko").start()
    view.step_view.dropdown.value = "refund"
    view.language.value = "en"
    assert view.step_view.dropdown.value == "refund" and not view.step_view.continue_button.disabled
    assert dict(view.step_view.dropdown.options)["I want a refund"] == "refund"
    view.step_view.continue_button.click()
    assert view.engine.node.id == "ready"


def test_the_page_script_takes_its_texts_from_the_step(view):
    """guide.js names the language group and titles the page with these attributes."""
    flow = view.engine.flow
    assert f"data-guide-language='{flow.ui['language']('en')}'" in view.step_view.text.value
    assert (f"data-guide-site-title='{flow.ui['site_title']('en')}'"
            in view.step_view.text.value)
    view.language.value = "ko"
    assert "data-guide-language='언어'" in view.step_view.text.value
    assert "data-guide-site-title='아마존 고객 서비스 문의 안내'" in view.step_view.text.value


def test_the_stylesheet_is_guide_css(view):
    from widgets.view import CSS_PATH

    css = CSS_PATH.read_text(encoding="utf-8")
    assert ".guide .guide-panel {" in css
    assert view.children[0].value.startswith(f"\n<style>\n{css}</style>\n")


def test_the_parts_own_their_widgets_and_panels_are_built_when_first_shown(view):
    from widgets.view import MessagePanel, NotesPanel, OutcomePanel

    assert isinstance(view.message_panel, MessagePanel)
    assert isinstance(view.notes_panel, NotesPanel) and isinstance(view.outcome_panel,
                                                                   OutcomePanel)
    assert not any(p.built for p in (view.message_panel, view.notes_panel, view.outcome_panel))
    assert view.children[3] is view.outcome_panel
    assert list(view.children[4:4 + len(view.step_view.widgets)]) == list(view.step_view.widgets)
    view.start(step="channel")
    assert view.message_panel.built and not view.outcome_panel.built
    view.notes_panel.toggle.value = True
    assert view.notes_panel.built and visible(view.notes_panel)


#: Widget models the first page creates (74 before the view was split into parts; 70 after;
#: 61 once option buttons were made only for the decisions shown as buttons; 65 with the
#: call sheet's and the return link's panels, empty until a step offers them).
FIRST_PAGE_MODELS = 65


def test_the_first_page_creates_no_more_widget_models():
    import ipywidgets.widgets.widget as ww

    before = set(ww._instances)
    GuideView(lang="ko").start()
    assert len(set(ww._instances) - before) <= FIRST_PAGE_MODELS


def test_the_notice_of_a_stopped_guide_is_on_the_page_ready_for_its_script():
    """guide.js shows it when the kernel is gone (tests/test_kernel_gone.py): an empty alert
    region, and the flow's texts in every language, inert in a template, with Amazon's phone
    number as a tel: link and the Help route; nothing of the visit or of the link."""
    view = guide(step="Call +1 888 555 0199", log=False)
    first = view.children[0].value
    region, template = first.split("</style>\n")[1].split("<template", 1)
    assert region == "<div class='guide-offline' role='alert' tabindex='-1'></div>"
    for lang in ("ko", "en"):
        for key in ("offline", "reload"):
            assert html.escape(FLOW.ui[key](lang)) in template
        assert f"<div lang='{lang}'>" in template
    assert template.count('href="tel:+12062662992"') == 2
    assert template.count("<strong>Need more help?</strong>") == 2
    assert "888" not in first and "href='" not in template.replace("href='tel", "")
    assert first == GuideView(lang="en").children[0].value  # the same for every visitor


def test_the_message_follows_the_path_until_the_visitor_sets_it():
    """The outcome the message asks for is the path's suggestion (a language switch and a new
    answer keep it so) until the visitor picks one; then the visitor's stays."""
    view = GuideView(lang="en").start()
    along = {"problem": "damaged", "reach": "online"}
    view.engine.go_to("channel", along=along)
    view.render()
    panel = view.message_panel
    suggested = panel.outcome.value
    assert view.state.message.want is None and suggested == view.state.message_want()
    view.language.value = "ko"  # new labels, the same suggestion, still the path's
    assert panel.outcome.value == suggested and view.state.message.want is None
    other = next(key for key, _ in [(v, k) for k, v in panel.outcome.options] if key != suggested)
    panel.outcome.value = other
    assert view.state.message.want == other
    view.language.value = "en"
    assert panel.outcome.value == other
    assert panel.escalate.value is view.state.message_escalate()
    panel.escalate.value = not panel.escalate.value
    assert view.state.message.escalate is panel.escalate.value
