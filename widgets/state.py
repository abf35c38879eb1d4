"""One visit's state: the engine (where the visitor is) and the state of the guide's panels.

Plain data, no ipywidgets: the view (widgets/view/) draws its widgets from a :class:`VisitState`
and turns each of the visitor's actions into one call here. What the panels hold:

* the ready-to-send message's fields (:class:`MessageFields`): the optional texts, and the
  outcome and supervisor request, which follow the path until the visitor sets them;
* the case notes, and the line saying what became of the last note or file;
* the notices above the step (a link that could not be followed, a failed action, a log that
  cannot save), each a flow text, so that they follow a language switch;
* which of the panels that open with a toggle are open;
* the dropdown's selection not yet confirmed with Continue (kept across a language switch);
* the transitions of the interaction under way, for widgets/eventlog.py to hand to the log.

Which step shows which panel is the flow's to say (the nodes' roles), never a step id.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Any, Mapping

from . import casenotes, followup, messages
from .engine import Engine, Transition
from .flow import Flow, Text

__all__ = ["MessageFields", "VisitState"]


@dataclass
class MessageFields:
    """The message panel's fields. ``want`` and ``escalate`` are None while they follow the
    path (the answers suggest them); a value once the visitor set one."""

    order_number: str = ""
    date: str = ""
    detail: str = ""
    want: str | None = None
    escalate: bool | None = None


@dataclass
class VisitState:
    """The state of one visit. Its actions are the visitor's; each clears the notices of the
    previous action, as the guide always did (a failed action's notice stays until the next)."""

    flow: InitVar[Flow | None] = None
    lang: InitVar[str] = "ko"
    engine: Engine = field(init=False)
    message: MessageFields = field(default_factory=MessageFields)
    notes: list[casenotes.Note] = field(default_factory=list)
    #: the case notes' status line (a text of the flow's ``casenotes:``), or None
    notes_status: Text | None = None
    #: notes shown above the step until the next action (only the flow's own texts)
    notices: tuple[Text, ...] = ()
    #: True after an action failed (the notice says sorry until the next action)
    error: bool = False
    #: False while the interaction log cannot save
    log_ok: bool = True
    notes_open: bool = False
    callsheet_open: bool = False
    #: the dropdown's selection not yet confirmed ("" for none; None: nothing picked at this
    #: step, the one chosen there last time is shown); a step change forgets it
    pending: str | None = None
    #: what happened since the view last handed it to the log
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self, flow: Flow | None, lang: str) -> None:
        self.engine = Engine(flow, lang=lang, on_transition=self._happened)

    def _happened(self, transition: Transition) -> None:
        self.transitions.append(transition)
        if transition.action == "enter":
            self.pending = None

    # ---------------------------------------------------------------- what is shown

    @property
    def step(self) -> tuple[int, str]:
        """The step shown: its number on the path and its node (a language switch keeps it)."""
        return len(self.engine.path), self.engine.node.id

    @property
    def selected(self) -> str | None:
        """The option to show selected at the current decision: one picked and not yet
        confirmed at this step, else the one chosen there last time."""
        if self.pending is not None:
            return self.pending or None
        return self.engine.selected

    @property
    def shows_message(self) -> bool:
        """The message, on the steps with the role ``message``; and with the escalation advice
        on a visit that came back not solved."""
        roles = self.engine.node.roles
        return "message" in roles or (self.engine.unsolved and "escalation" in roles)

    @property
    def shows_outcome(self) -> bool:
        """How it went is asked only on a visit that came back after contact."""
        return self.engine.asks_followup

    @property
    def shows_callsheet(self) -> bool:
        return "callsheet" in self.engine.node.roles

    @property
    def return_code(self) -> str | None:
        """The return link's value, on the steps with the role ``followup`` (None elsewhere, or
        while the path does not hold what the link carries)."""
        if "followup" not in self.engine.node.roles:
            return None
        return self.engine.followup_code()

    def notice_texts(self) -> list[str]:
        """The notice lines, in the current language (empty: no notice)."""
        engine = self.engine
        lines = [engine.text(note) for note in self.notices]
        if self.error:
            lines.append(engine.ui("error"))
        if not self.log_ok:
            lines.append(engine.ui("log_notice"))
        return lines

    def message_want(self) -> str:
        """The outcome the message asks for: the visitor's, else the one the path suggests."""
        if self.message.want is not None:
            return self.message.want
        return messages.from_choices(self.engine.choices, flow=self.engine.flow).want

    def message_escalate(self) -> bool:
        """Whether the message asks for a supervisor: the visitor's choice, else an answer
        marked ``escalate``, or a visit that came back not solved."""
        if self.message.escalate is not None:
            return self.message.escalate
        return bool(self.engine.flow.escalates(self.engine.choices) or self.engine.unsolved)

    def message_input(self) -> messages.MessageInput:
        """What the message is built from: the path plus the fields (the outcome and the
        supervisor request as :meth:`message_want` and :meth:`message_escalate` say)."""
        fields = self.message
        escalate = fields.escalate
        if escalate is None and self.engine.unsolved:
            escalate = True
        return messages.from_choices(
            self.engine.choices, flow=self.engine.flow, want=fields.want, escalate=escalate,
            order_number=fields.order_number, date=fields.date, detail=fields.detail)

    # ---------------------------------------------------------------- the visitor's actions

    def act(self) -> None:
        """A new action begins: the notices of the previous one go."""
        self.error = False
        self.notices = ()

    def choose(self, option_id: str) -> None:
        self.act()
        self.engine.choose(option_id)

    def pick(self, option_id: str | None) -> None:
        """Select an option in the dropdown, not yet confirmed (None or "": nothing)."""
        self.pending = option_id or ""

    def confirm(self) -> bool:
        """Continue with the dropdown's selection; False when nothing is selected."""
        option = self.selected
        if option is None:
            return False
        self.choose(option)
        return True

    def advance(self) -> None:
        self.act()
        self.engine.advance()

    def back(self) -> bool:
        if not self.engine.can_go_back:
            return False
        self.act()
        self.engine.back()
        return True

    def restart(self) -> None:
        self.act()
        self.engine.restart()

    def set_language(self, lang: str) -> None:
        self.engine.set_language(lang)

    def record_followup(self, outcome: str) -> None:
        self.act()
        self.engine.record_followup(outcome)

    def follow_up(self, value: object) -> bool:
        """Come back after contacting Amazon with ``value``, the earlier visit's answers (the
        return link's, or a case-notes file's); False, and nothing happens, when the flow could
        not have produced it."""
        answers = followup.decode(self.engine.flow, value)
        if answers is None or not self.engine.flow.role_nodes("followup"):
            return False
        self.engine.recall(answers)
        return True

    def add_note(self, values: Mapping[str, Any]) -> bool:
        """Add a case note made of the form's ``values``; False (and the status line says why)
        when it holds nothing or the notes are full."""
        flow = self.engine.flow
        try:
            note = casenotes.make_note(flow, **values)
        except casenotes.CaseNotesError:
            self.notes_status = casenotes.labels(flow)["need_something"]
            return False
        if len(self.notes) >= casenotes.MAX_ROWS:
            self.notes_status = casenotes.labels(flow)["full"]
            return False
        self.notes.append(note)
        self.notes_status = None
        return True

    def load_notes(self, content: bytes | memoryview) -> None:
        """Add the notes of a file downloaded earlier; one that cannot be loaded (too large,
        not case notes, too many) leaves the notes as they were and the status line says why.
        A file that carries the return link starts the visit that comes back with it (a value
        the flow cannot have produced is ignored)."""
        content = memoryview(content)
        flow = self.engine.flow
        try:
            casenotes.check_size(content.nbytes, flow)
            loaded = casenotes.parse(content.tobytes(), flow)
            if len(self.notes) + len(loaded) > casenotes.MAX_ROWS:
                raise casenotes.CaseNotesError(casenotes.reason("too_many", flow),
                                               limit=casenotes.MAX_ROWS)
        except casenotes.CaseNotesError as exc:
            self.notes_status = casenotes.error_message(exc, flow)
            return
        self.notes.extend(loaded)
        self.notes_status = casenotes.loaded_message(len(loaded), flow)
        carried = casenotes.followup_in(content.tobytes())
        if carried is not None and not self.engine.asks_followup:
            self.follow_up(carried)

    def take_transitions(self) -> list[Transition]:
        """What happened since the last call (for the log), in order."""
        taken = list(self.transitions)
        self.transitions.clear()
        return taken
