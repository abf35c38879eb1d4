"""The guide's panels and roles, each drawn from the visit's state (widgets/state.py):

* :class:`NoticeLine`     the notices above the step (a link not followed, a failed action, a
  log that cannot save);
* :class:`MessagePanel`   the ready-to-send message, on the steps whose node has the role
  ``message`` (``on_field_change``, ``on_outcome_change``);
* :class:`NotesPanel`     the case notes, opened with its toggle (``on_toggle``,
  ``on_add_click``, ``on_upload``);
* :class:`OutcomePanel`   the one-click how-did-it-go question, only on a visit that came back
  with the return link after contacting Amazon (``on_outcome_click``);
* :class:`CallSheetPanel` the call sheet (widgets/callsheet.py), opened with its toggle on the
  steps whose node has the role ``callsheet`` (``on_toggle``);
* :class:`ReturnPanel`    the link to come back after contacting Amazon, on the steps whose
  node has the role ``followup``.

Nothing typed in a panel is logged.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import quote

import ipywidgets as w

from .. import callsheet, casenotes, followup, messages
from ..vocabulary import OUTCOMES
from ..markup import COPY_JS
from .base import (OutcomeButton, Panel, Part, action_button, action_toggle, guarded, muted, show,
                   visible)

if TYPE_CHECKING:
    from .guide import GuideView


class NoticeLine(Part):
    """The notices above the step, each a flow text in the guide's language."""

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.notice = w.HTML(layout=w.Layout(display="none"))
        self.notice.add_class("guide-notice")

    def render(self) -> None:
        lines = self.state.notice_texts()
        self.notice.value = "<br>".join(f"<span role='status'>{html.escape(line)}</span>"
                                        for line in lines)
        show(self.notice, bool(lines))


class MessagePanel(Panel):
    """The ready-to-send message, in Korean and English, built from the visitor's answers and
    the optional fields. The suggested outcome and the supervisor request (an answer marked
    ``escalate`` in the flow) follow the path until the visitor changes them (the state keeps
    the visitor's own values)."""

    def wanted(self) -> bool:
        return self.state.shows_message

    def build(self) -> None:
        text = lambda: w.Text(continuous_update=False,  # noqa: E731
                              style={"description_width": "initial"},
                              layout=w.Layout(width="100%"))
        self.heading = w.HTML()
        self.outcome = w.Dropdown(options=[(k, k) for k in messages.texts(self.engine.flow).wants],
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="100%"))
        self.order_number = text()
        self.date = text()
        self.detail = text()
        self.escalate = w.Checkbox(indent=False, layout=w.Layout(width="100%"))
        self.output = w.HTML()
        for field in (self.order_number, self.date, self.detail, self.escalate):
            field.observe(self.on_field_change, names="value")
        self.outcome.observe(self.on_outcome_change, names="value")
        self.children = [self.heading, self.outcome, self.order_number, self.date, self.detail,
                         self.escalate, self.output]

    @guarded
    def on_field_change(self, change: dict | None = None) -> None:
        """A message field changed: rebuild the message (nothing is logged). Drawing the panel
        does not call it (the values the path suggests are not the visitor's)."""
        fields = self.state.message
        if change is not None and change.get("owner") is self.escalate:
            fields.escalate = bool(change["new"])
        else:
            fields.order_number = self.order_number.value
            fields.date = self.date.value
            fields.detail = self.detail.value
        self.draw_output()

    @guarded
    def on_outcome_change(self, change: dict) -> None:
        """The visitor chose what the message asks for (drawing the panel does not call it)."""
        self.state.message.want = change["new"]
        self.draw_output()

    def message_input(self) -> messages.MessageInput:
        """What the message is built from: the path plus the optional fields."""
        return self.state.message_input()

    def draw(self) -> None:
        t = self.t
        words = messages.texts(self.engine.flow)
        L = words.labels
        state = self.state
        self.heading.value = (f"<h3>{html.escape(t(L['title']))}</h3>"
                              f"<p>{html.escape(t(L['intro']))}</p>"
                              f"<p class='guide-message-which'>{html.escape(t(L['which']))}</p>")
        options = [(t(want.label), key) for key, want in words.wants.items()]
        data = state.message_input()
        with muted(self.outcome, self.on_outcome_change):
            if list(self.outcome.options) != options:
                self.outcome.options = options
            self.outcome.value = data.want
        with muted(self.escalate, self.on_field_change):
            self.escalate.value = data.escalate
        self.outcome.description = t(L["outcome"])
        for field, key in ((self.order_number, "order_number"), (self.date, "date"),
                           (self.detail, "detail")):
            field.description = t(L[key])
            field.placeholder = t(L[f"{key}_hint"])
        self.escalate.description = t(L["supervisor"])
        self.draw_output(data)

    def draw_output(self, data: messages.MessageInput | None = None) -> None:
        t = self.t
        flow = self.engine.flow
        L = messages.texts(flow).labels
        texts = messages.build_both(data if data is not None else self.state.message_input(),
                                    flow=flow)
        columns = []
        for lang in ("ko", "en"):
            body = texts[lang]
            name = t(L[lang])
            copy = html.escape(t(L["copy"]))
            copied = html.escape(t(L["copied"]))
            columns.append(
                f"<div class='guide-message' lang='{lang}'>"
                f"<h4>{html.escape(name)}</h4>"
                f"<textarea readonly rows='14' aria-label='{html.escape(name)}'>"
                f"{html.escape(body)}</textarea>"
                f"<div class='guide-message-actions'>"
                f"<button type='button' class='guide-copy' data-done='{copied}' "
                f"onclick=\"{COPY_JS}\">{copy} ({html.escape(name)})</button>"
                f"<a download='amazon-message-{lang}.txt' "
                f"href='data:text/plain;charset=utf-8,{quote(body)}'>"
                f"{html.escape(t(L['download']))} ({html.escape(name)})</a>"
                f"</div></div>")
        self.output.value = f"<div class='guide-messages'>{''.join(columns)}</div>"


class NotesPanel(Panel):
    """Case notes: the visitor's own record of each contact, added with a form, shown as a
    table, downloaded as Markdown or CSV and loaded back. Opened and closed with
    :attr:`toggle` (which the guide places below Back / Start over). Nothing is logged."""

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.toggle = action_toggle()
        self.toggle.observe(self.on_toggle, names="value")

    @property
    def notes(self) -> list[casenotes.Note]:
        """The visit's notes (the state's)."""
        return self.state.notes

    def wanted(self) -> bool:
        return self.state.notes_open

    def build(self) -> None:
        text = lambda: w.Text(style={"description_width": "initial"},  # noqa: E731
                              layout=w.Layout(width="100%"))
        self.intro = w.HTML()
        self.when = text()
        self.channel = w.Dropdown(options=[("—", "")], value="",
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="100%"))
        self.agent = text()
        self.reference = text()
        self.promised = text()
        self.add_button = action_button()
        self.add_button.on_click(self.on_add_click)
        self.status = w.HTML()
        self.status.add_class("guide-notes-status")
        self.table = w.HTML()
        self.table.add_class("guide-notes-table")
        self.links = w.HTML()
        self.upload = w.FileUpload(accept=".md,.csv,.txt", multiple=False)
        self.upload.observe(self.on_upload, names="value")
        self.children = [self.intro, self.when, self.channel, self.agent, self.reference,
                         self.promised, self.add_button, self.status, self.table, self.links,
                         self.upload]

    @guarded
    def on_toggle(self, change: dict) -> None:
        self.state.notes_open = bool(change["new"])
        self.guide.render()

    @guarded
    def on_add_click(self, _button: w.Button | None = None) -> None:
        """Add the form's values as a note and clear the form (nothing is logged)."""
        values = dict(when=self.when.value, channel=self.channel.value,
                      agent=self.agent.value, reference=self.reference.value,
                      promised=self.promised.value)
        if self.state.add_note(values):
            for field in (self.when, self.agent, self.reference, self.promised):
                field.value = ""
            self.channel.value = ""
        self.guide.render()

    @guarded
    def on_upload(self, change: dict) -> None:
        """Load notes from a file downloaded earlier (see :meth:`VisitState.load_notes`)."""
        files = change["new"]
        if not files:
            return
        upload = files[0]
        # the widget would keep the file (up to the message size bound) and send it again
        # with every request for its state: what is read, or refused, is dropped at once
        self.upload.value = ()
        self.state.load_notes(upload["content"])
        self.guide.render()

    def render(self) -> None:
        opened = self.state.notes_open
        self.toggle.value = opened
        label = casenotes.labels(self.engine.flow)["toggle_close" if opened else "toggle"]
        self.toggle.description = self.t(label)
        super().render()

    def draw(self) -> None:
        t = self.t
        flow = self.engine.flow
        words = casenotes.texts(flow)
        L = casenotes.labels(flow)
        # The page's script refuses a file over the size limit before sending it (the server
        # would drop the connection for a message that large) and shows this message in the
        # status line below: both come from here, in the guide's language.
        too_large = t(casenotes.error_message(casenotes.too_large(flow), flow))
        self.intro.value = (
            f"<div class='guide-notes-intro' data-upload-limit='{casenotes.MAX_BYTES}' "
            f"data-upload-too-large='{html.escape(too_large, quote=True)}'>"
            f"<h3>{html.escape(t(words.title))}</h3>"
            f"<p>{html.escape(t(L['intro']))}</p></div>")
        for field, column in ((self.when, "when"), (self.agent, "agent"),
                              (self.reference, "reference"), (self.promised, "promised")):
            field.description = t(words.headers[column])
        self.when.placeholder = t(L["when_hint"])
        channel = self.channel.value
        options = [("—", "")] + [(t(label), key) for key, label in words.channels.items()]
        if list(self.channel.options) != options:
            self.channel.options = options
        self.channel.value = channel
        self.channel.description = t(words.headers[casenotes.CHANNEL])
        self.add_button.description = t(L["add"])
        self.upload.description = t(L["load"])
        status = self.state.notes_status
        message = t(status) if status is not None else ""
        self.status.value = (f"<p role='status'>{html.escape(message)}</p>"
                             if message else "")
        notes = self.state.notes
        if notes:
            lang = self.engine.lang
            head = "".join(f"<th scope='col'>{html.escape(t(words.headers[c]))}</th>"
                           for c in casenotes.COLUMNS)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(casenotes.cell(n, c, lang, flow))}</td>"
                                 for c in casenotes.COLUMNS) + "</tr>" for n in notes)
            self.table.value = f"<table><tr>{head}</tr>{rows}</table>"
            code = self.engine.followup_code()
            md = casenotes.to_markdown(notes, lang, followup=code,
                                       followup_label=self.engine.ui("followup_file"), flow=flow)
            csv_text = casenotes.to_csv(notes)
            self.links.value = (
                "<div class='guide-links'>"
                f"<a download='amazon-contact-notes.md' "
                f"href='data:text/markdown;charset=utf-8,{quote(md)}'>"
                f"{html.escape(t(L['download_md']))}</a>"
                f"<a download='amazon-contact-notes.csv' "
                f"href='data:text/csv;charset=utf-8,{quote(csv_text)}'>"
                f"{html.escape(t(L['download_csv']))}</a></div>")
        else:
            self.table.value = f"<p>{html.escape(t(L['empty']))}</p>"
            self.links.value = ""


class OutcomePanel(Panel):
    """How it went, asked with one click (logged as an id, never text), only on a visit that
    came back with the return link, after the visitor contacted Amazon: above the step, with
    the earlier answers the link carried (the flow's own labels). The answer given is
    highlighted; "not solved" leads to the advice for when the agent could not help."""

    def wanted(self) -> bool:
        return self.state.shows_outcome

    def build(self) -> None:
        self.label = w.HTML()
        self.buttons = []
        for key in OUTCOMES:
            button = action_button(OutcomeButton, outcome=key)
            button.on_click(self.on_outcome_click)
            self.buttons.append(button)
        self.children = [
            self.label,
            w.Box(self.buttons, layout=w.Layout(flex_flow="row wrap", width="100%"))]

    @guarded
    def on_outcome_click(self, button: OutcomeButton) -> None:
        """One click: how it went (may move the guide to the escalation advice)."""
        self.state.record_followup(button.outcome)
        self.guide.render()

    def draw(self) -> None:
        engine = self.engine
        flow = engine.flow
        question = html.escape(engine.ui("followup_question"))
        earlier = " · ".join(html.escape(flow[node].option(option).label(engine.lang))
                             for node, option in (engine.recalled or {}).items())
        thanks = ""
        if engine.outcome:
            thanks = f"<p role='status'>{html.escape(engine.ui('followup_thanks'))}"
            if engine.unsolved:
                thanks += f" {html.escape(engine.ui('followup_unsolved'))}"
            thanks += "</p>"
        self.label.value = (f"<div class='guide-followup'><p><strong>{question}</strong></p>"
                            f"<p>{html.escape(engine.ui('followup_earlier'))}: {earlier}</p>"
                            f"{thanks}</div>")
        for button in self.buttons:
            button.description = engine.outcome_label(button.outcome)
            button.button_style = "info" if button.outcome == engine.outcome else ""


class CallSheetPanel(Panel):
    """The call sheet (widgets/callsheet.py): the number and the way online, what the call is
    about, the case notes' agent names and reference numbers, and the lines to say in call
    order. Shown on the steps whose node has the role ``callsheet``: its :attr:`toggle`
    opens and closes the sheet. The sheet's print button is wired by the page script
    (guide.js). Built the first time such a step is shown."""

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.remove_class("guide-panel")  # the sheet below the toggle has the frame
        self.add_class("guide-callsheet-panel")

    def wanted(self) -> bool:
        return self.state.shows_callsheet

    def build(self) -> None:
        self.toggle = action_toggle()
        self.toggle.add_class("guide-callsheet-toggle")
        self.toggle.observe(self.on_toggle, names="value")
        self.sheet = w.HTML(layout=w.Layout(display="none"))
        self.sheet.add_class("guide-panel")
        self.children = [self.toggle, self.sheet]

    @guarded
    def on_toggle(self, change: dict) -> None:
        self.state.callsheet_open = bool(change["new"])
        self.render()

    @property
    def is_open(self) -> bool:
        """Whether the sheet is open (shown, with its toggle on)."""
        return self.shown and self.toggle.value and visible(self.sheet)

    def draw(self) -> None:
        engine = self.engine
        opened = self.state.callsheet_open
        self.toggle.value = opened
        self.toggle.description = engine.ui("callsheet_close" if opened else "callsheet_open")
        if opened:
            self.sheet.value = callsheet.sheet_html(engine.flow, engine.lang, engine.choices,
                                                    self.state.notes)
        show(self.sheet, opened)


class ReturnPanel(Panel):
    """The link to come back after contacting Amazon, on the steps whose node has the role
    ``followup`` (once the path has what the link carries: ids only, widgets/followup.py).
    The link is relative (the page's own address, with its query string replaced)."""

    _code: str | None = None

    def wanted(self) -> bool:
        self._code = self.state.return_code
        return self._code is not None

    def build(self) -> None:
        self.text = w.HTML()
        self.children = [self.text]

    def code(self) -> str | None:
        return self.state.return_code

    def draw(self) -> None:
        engine = self.engine
        code = self._code
        href = html.escape(f"?{quote(followup.PARAM)}={quote(code, safe=':,')}"
                           f"&lang={engine.lang}", quote=True)
        self.text.value = (f"<div class='guide-return'><p>{html.escape(engine.ui('followup_intro'))}"
                           f"</p><p><a class='guide-return-link' href='{href}'>"
                           f"{html.escape(engine.ui('followup_link'))}</a></p></div>")
