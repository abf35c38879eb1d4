"""The guide as widgets: :class:`GuideView` lays out the parts and navigates.

The visit's state is a :class:`~widgets.state.VisitState` (plain data: the engine and the
panels' state); every part draws its widgets from it, in place (nothing is rebuilt per click),
and turns the visitor's actions into calls on it. GuideView keeps the header (language), Back
and Start over (``on_back_click``, ``on_restart_click``, ``on_language_change``). Tests drive
the guide by setting ``.value`` and calling ``.click()``, without a browser. Which step shows
which panel comes from the flow's roles (flow.yaml), never from a step's id. The stylesheet is
widgets/guide.css.

Each of the visitor's actions is one interaction: its transitions go to the interaction log
together (widgets/eventlog.py), after the page has its update. A failing callback never shows
a traceback: the visitor sees a short message in the current language, and the details go to
the server's log. Host-neutral: nothing here reads the environment or knows the server; a host
that wants to know when the visitor acts sets :attr:`GuideView.on_activity`.
"""

from __future__ import annotations

import html
from typing import Any, Callable

import ipywidgets as w

from .. import messages
from ..engine import Engine
from ..eventlog import EventRelay, EventSink
from ..flow import LANGUAGES, Flow, Text
from ..markup import CSS, offline_markup
from ..state import VisitState
from .base import action_button, guarded
from .panels import (CallSheetPanel, MessagePanel, NoticeLine, NotesPanel, OutcomePanel,
                     ReturnPanel)
from .steps import StepView



def language_names(flow: Flow) -> tuple[tuple[str, str], ...]:
    """The language switch's (name, code) pairs: each language's name in that language (the
    flow's ``language_name`` text; the packaged flow's when a flow file has none)."""
    text = flow.ui["language_name"]
    return tuple((text(code), code) for code in LANGUAGES)


def language_tooltips(flow: Flow) -> list[str]:
    """The language switch's tooltips, each in its own language (``language_show``)."""
    text = flow.ui["language_show"]
    return [text(code) for code in LANGUAGES]


class Interaction:
    """The interaction under way (``with view.interaction:`` around each callback, nested or
    not): when the outermost one ends, the transitions it made go to the log together."""

    def __init__(self, view: GuideView) -> None:
        self._view = view
        self._depth = 0

    def __enter__(self) -> None:
        self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._view.deliver()


class GuideView(w.VBox):
    """The guide as widgets. ``sink`` receives the events of each interaction together
    (``record_many``; ids only); ``on_activity``, when set (by the host), is called with no
    argument on every action of the visitor's (the Voilà host culls idle kernels by it).

    Its parts: :attr:`step_view` (:class:`~widgets.view.steps.StepView`),
    :attr:`message_panel`, :attr:`notes_panel`, :attr:`outcome_panel`,
    :attr:`callsheet_panel`, :attr:`return_panel` and the notice line; the header and
    Back / Start over are its own."""

    def __init__(self, flow: Flow | None = None, lang: str = "ko", sink: EventSink | None = None,
                 on_activity: Callable[[], None] | None = None, **kwargs: Any):
        #: called on every action of the visitor's (None: nothing); it must not block
        self.on_activity = on_activity
        self.state = VisitState(flow, lang)
        #: the visit's engine (the state's)
        self.engine: Engine = self.state.engine
        engine = self.engine
        #: the visit's events on their way to the log (it draws the visit's session id)
        self.relay = EventRelay(sink=sink)
        self.interaction = Interaction(self)

        self.heading = w.HTML()
        self.language = w.ToggleButtons(options=language_names(engine.flow), value=lang,
                                        tooltips=language_tooltips(engine.flow),
                                        style={"button_width": "auto"})
        self.back_button = action_button()
        self.restart_button = action_button()
        self.back_button.on_click(self.on_back_click)
        self.restart_button.on_click(self.on_restart_click)
        self.language.observe(self.on_language_change, names="value")

        self.notice_line = NoticeLine(self)
        self.notice = self.notice_line.notice
        self.step_view = StepView(self)
        self.message_panel = MessagePanel(self)
        self.outcome_panel = OutcomePanel(self)
        self.notes_panel = NotesPanel(self)
        self.callsheet_panel = CallSheetPanel(self)
        self.return_panel = ReturnPanel(self)
        #: the parts, in the order they are drawn
        self.parts = (self.step_view, self.message_panel, self.notes_panel, self.outcome_panel,
                      self.callsheet_panel, self.return_panel)

        wrap = w.Layout(flex_flow="row wrap", justify_content="space-between",
                        align_items="center", width="100%")
        header = w.Box([self.heading, self.language], layout=wrap)
        nav = w.Box([self.back_button, self.restart_button], layout=w.Layout(
            flex_flow="row wrap", justify_content="space-between", width="100%",
            margin="1rem 0 0 0"))
        super().__init__(
            [w.HTML(CSS + offline_markup(engine.flow)), header, self.notice,
             self.outcome_panel, *self.step_view.widgets,
             self.callsheet_panel, self.return_panel,
             self.message_panel, nav, self.notes_panel.toggle, self.notes_panel],
            layout=w.Layout(width="100%", max_width="46rem", margin="0 auto"),
            **kwargs,
        )
        self.add_class("guide")
        self.render()

    @property
    def guide(self) -> GuideView:
        return self

    @property
    def session(self) -> str:
        """The visit's anonymous session id (drawn when first asked for or logged: a guide built
        ahead of its visit, in a preheated kernel, draws it when the visit begins)."""
        return self.relay.session

    @property
    def sink(self) -> EventSink | None:
        """Where the events go (the interaction log); None: nowhere."""
        return self.relay.sink

    @sink.setter
    def sink(self, sink: EventSink | None) -> None:
        self.relay.sink = sink

    # ---------------------------------------------------------------- start

    def start(self, step: str | None = None) -> GuideView:
        """Report the first screen to the log (optionally opening at node ``step``)."""
        with self.interaction:
            if step is not None:
                self.engine.go_to(step)
            else:
                self.engine.start()
            self.render()
        return self

    def follow_up(self, value: object) -> bool:
        """Come back after contacting Amazon: ``value`` is the return link's (or a case-notes
        file's) record of the earlier visit's answers. When the flow could have produced it,
        the guide logs those answers (ids) and asks how it went; else nothing happens and
        False is returned (the caller shows a fixed notice; the value is never shown)."""
        with self.interaction:
            if not self.state.follow_up(value):
                return False
            self.render()
        return True

    # ---------------------------------------------------------------- callbacks

    @guarded
    def on_back_click(self, _button: w.Button | None = None) -> None:
        if self.state.back():
            self.render()

    @guarded
    def on_restart_click(self, _button: w.Button | None = None) -> None:
        self.state.restart()
        self.render()

    @guarded
    def on_language_change(self, change: dict) -> None:
        self.state.set_language(change["new"])
        self.render()

    # ---------------------------------------------------------------- notices

    def set_log_health(self, healthy: bool) -> None:
        """Called by the interaction log when saving events stops or starts working again."""
        self.state.log_ok = healthy
        self.notice_line.render()

    def set_note(self, *texts: Text) -> None:
        """Short notes shown above the step until the visitor's next action (e.g. that a link
        could not be followed), in the guide's language (they follow a language switch). Only
        the flow's own texts: nothing from outside (a link) is ever shown."""
        self.state.notices = texts
        self.notice_line.render()

    # ---------------------------------------------------------------- drawing

    def render(self) -> None:
        """Bring every widget in line with the visit's state (in place, nothing rebuilt)."""
        engine = self.engine
        if self.language.value != engine.lang:
            self.language.value = engine.lang
        self.heading.value = f"<p class='guide-subtitle'>{html.escape(engine.ui('subtitle'))}</p>"
        for part in self.parts:
            part.render()
        with self.back_button.hold_sync():
            self.back_button.description = engine.ui("back")
            self.back_button.tooltip = engine.ui("back_hint")
            self.back_button.disabled = not engine.can_go_back
        with self.restart_button.hold_sync():
            self.restart_button.description = engine.ui("restart")
            self.restart_button.tooltip = engine.ui("restart_hint")
        self.notice_line.render()

    def message_input(self) -> messages.MessageInput:
        """What the message panel builds its message from."""
        return self.state.message_input()

    def deliver(self) -> None:
        """Hand what happened since the last delivery to the log, together (never raises)."""
        if not self.state.transitions:
            return
        for transition in self.state.take_transitions():
            self.relay(transition)
        self.relay.flush()
