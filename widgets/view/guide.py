"""The ipywidgets view of an :class:`~widgets.engine.Engine`: the only module importing ipywidgets.

:class:`GuideView` (a ``VBox``) composes its parts, each owning its widgets, its state and its
named callbacks, and each updating its widgets in place after every action:

* :class:`StepView`      the current step: progress, title and text, and its controls
  (``on_option_click``, ``on_continue_click``, ``on_dropdown_change``, ``on_next_click``);
* :class:`MessagePanel`  the ready-to-send message, on the steps whose node has the role
  ``message`` (``on_field_change``, ``on_outcome_change``);
* :class:`NotesPanel`    the case notes, opened with its toggle (``on_toggle``,
  ``on_add_click``, ``on_upload``);
* :class:`OutcomePanel`  the one-click how-did-it-go question, only on a visit that came back
  with the return link after contacting Amazon (``on_outcome_click``);
* :class:`CallSheetPanel` the call sheet (widgets/callsheet.py), opened with its toggle on the
  steps whose node has the role ``callsheet`` (``on_toggle``);
* :class:`ReturnPanel`   the link to come back after contacting Amazon, on the steps whose
  node has the role ``followup``.

GuideView itself keeps the header (language), the notice line and Back / Start over
(``on_back_click``, ``on_restart_click``, ``on_language_change``). Tests drive the guide by
setting ``.value`` and calling ``.click()``, without a browser. Which step shows which panel
comes from the flow's roles (flow.yaml), never from a step's id. The stylesheet is
widgets/guide.css.

A failing callback never shows a traceback: the visitor sees a short message in the current
language, and the details go to the server's log.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from pathlib import Path
from typing import Any, Callable, Protocol

import ipywidgets as w

from urllib.parse import quote

from . import activity, callsheet, casenotes, followup, messages
from .engine import OUTCOMES, Engine, Interaction
from .flow import LANGUAGES, Flow, Text

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = (("한국어", "ko"), ("English", "en"))
#: The dropdown's value while no option is selected (its placeholder entry).
NOTHING = ""
#: Interface texts the page script uses (guide.js reads them from the step's
#: ``data-guide-*`` attributes, in the guide's language).
PAGE_TEXTS: tuple[str, ...] = ("language", "site_title")

_PHONE = re.compile(r"\+\d[\d ]{6,}\d")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

#: The guide's stylesheet (widgets/guide.css), as the first widget of the guide shows it.
CSS_PATH = Path(__file__).with_name("guide.css")
CSS = "\n<style>\n" + CSS_PATH.read_text(encoding="utf-8") + "</style>\n"


#: The copy button's click handler: the Clipboard API where the page is a secure context,
#: else select the text and copy it the old way; then say "Copied" on the button.
COPY_JS = (
    "(function(b){var t=b.closest('.guide-message').querySelector('textarea');"
    "var done=function(){b.textContent=b.dataset.done;};"
    "var old=function(){t.focus();t.select();try{document.execCommand('copy');}catch(e){}done();};"
    "if(navigator.clipboard&&window.isSecureContext){"
    "navigator.clipboard.writeText(t.value).then(done,old);}else{old();}})(this)"
)


class EventSink(Protocol):
    """Where interactions go (the interaction log): each as the Event the engine made, unchanged.
    ``record`` must never raise."""

    def record(self, event: Interaction) -> Any:
        ...


def render_body(text: str) -> str:
    """Flow body markup → HTML. Escapes everything first; then paragraphs (blank lines),
    bullets ("- "), example phrases ("> "), **bold** and tel: links for phone numbers."""
    blocks: list[str] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        elif all(line.startswith("> ") for line in lines):
            blocks.extend(f"<blockquote>{_inline(line[2:])}</blockquote>" for line in lines)
        else:
            blocks.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "".join(blocks)


def phrases_markup(engine: Engine) -> str:
    """The phrases to say at the current step (its node's ``say:`` stages, for the answers
    given so far), in call order: each English line large and selectable, in its own element
    with ``lang="en"``; on a Korean screen its Korean meaning under it, smaller. Empty when the
    step shows none."""
    node = engine.node
    if not node.say:
        return ""
    phrases = engine.flow.phrases_for(engine.choices, node.say)
    if not phrases:
        return ""
    items = []
    for phrase in phrases:
        meaning = ("" if engine.lang == "en" else
                   f"<span class='guide-phrase-meaning' lang='{engine.lang}'>"
                   f"{html.escape(phrase.text(engine.lang))}</span>")
        items.append(f"<li class='guide-phrase'><span class='guide-phrase-en' lang='en'>"
                     f"{html.escape(phrase.en)}</span>{meaning}</li>")
    title = engine.flow.ui.get("say_title")
    heading = "" if title is None else f"<h3>{html.escape(title(engine.lang))}</h3>"
    return (f"<section class='guide-say'>{heading}"
            f"<ul class='guide-phrases'>{''.join(items)}</ul></section>")


def offline_markup(flow: Flow) -> str:
    """What the page shows when the guide has stopped on the server (guide.js): an empty alert
    region, and in a ``<template>`` (inert, not shown) the flow's ``offline``,
    ``offline_reach`` and ``reload`` texts in every language, for the page script to put in it.
    The same for every visitor: nothing of the visit, nothing of the link."""
    ui = flow.ui
    texts = "".join(
        f"<div lang='{code}'><p><strong>{html.escape(ui['offline'](code))}</strong></p>"
        f"{render_body(ui['offline_reach'](code))}</div>" for code in LANGUAGES)
    label = " · ".join(f"<span lang='{code}'>{html.escape(ui['reload'](code))}</span>"
                       for code in LANGUAGES)
    return ("<div class='guide-offline' role='alert' tabindex='-1'></div>"
            f"<template class='guide-offline-texts'>{texts}"
            f"<p><a class='guide-offline-reload'>{label}</a></p></template>")


def _inline(text: str) -> str:
    text = html.escape(text, quote=True)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _PHONE.sub(
        lambda m: f'<a href="tel:{m.group(0).replace(" ", "")}">{m.group(0)}</a>', text)


def _guarded(method: Callable) -> Callable:
    """Run a callback; on any error log it server-side and show a friendly message."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        view: GuideView = self if isinstance(self, GuideView) else self.guide
        activity.touch()
        outermost = view._held is None
        if outermost:
            view._held = []  # interactions wait until the page has its update
        try:
            method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - a visitor must never see a traceback
            logger.exception("guide callback %s failed at node %r", method.__qualname__,
                             view.engine.node.id)
            view._error = True
            try:
                view.render()
            except Exception:  # noqa: BLE001
                logger.exception("re-rendering after an error failed")
        finally:
            if outermost:
                held, view._held = view._held, None
                for interaction in held:
                    view._deliver(interaction)

    return wrapper


def _show(widget: w.DOMWidget, visible: bool) -> None:
    """Show or hide ``widget`` (no message to the page when nothing changes)."""
    display = None if visible else "none"
    if widget.layout.display != display:
        widget.layout.display = display


def _visible(widget: w.DOMWidget) -> bool:
    return widget.layout.display != "none"


def _action_button(**kwargs: Any) -> w.Button:
    button = w.Button(layout=w.Layout(width="auto", height="auto"), **kwargs)
    button.add_class("guide-action")
    return button


# ==================================================================== the step


class StepView:
    """The current step: one HTML widget with the progress, title and text (so a step change
    reaches the page as one update), then its controls: a dropdown with Continue or option
    buttons (a decision), Next (advice), or the checklist (the end).

    Its widgets (:attr:`widgets`) take their place in the guide's layout; it owns them, the
    dropdown's not yet confirmed selection, and their callbacks."""

    def __init__(self, guide: "GuideView") -> None:
        self.guide = guide
        most_options = max((len(node.options) for node in guide.engine.flow
                            if node.widget == "buttons"), default=0)
        self.text = w.HTML()
        self.text.add_class("guide-body")
        self.dropdown = w.Dropdown(options=[("", NOTHING)], value=NOTHING,
                                   style={"description_width": "initial"},
                                   layout=w.Layout(width="100%"))
        self.continue_button = _action_button(button_style="primary", disabled=True)
        self.option_buttons = [w.Button(layout=w.Layout(width="100%", height="auto"))
                               for _ in range(most_options)]
        self.next_button = _action_button(button_style="primary")
        self.recap = w.HTML()
        self.recap.add_class("guide-recap")
        for button in self.option_buttons:
            button.add_class("guide-option")
            button.on_click(self.on_option_click)
        self.continue_button.on_click(self.on_continue_click)
        self.next_button.on_click(self.on_next_click)
        self.dropdown.observe(self.on_dropdown_change, names="value")
        self.dropdown_box = w.VBox([self.dropdown, self.continue_button])
        self.buttons_box = w.VBox(self.option_buttons, layout=w.Layout(width="100%"))
        #: the guide's layout slots this part fills, in order
        self.widgets: tuple[w.DOMWidget, ...] = (
            self.text, self.dropdown_box, self.buttons_box, self.next_button, self.recap)
        self._rendered_step: tuple[int, str] | None = None

    @property
    def engine(self) -> Engine:
        return self.guide.engine

    # ---------------------------------------------------------------- callbacks

    @_guarded
    def on_option_click(self, button: w.Button) -> None:
        """A choice button: take the option it stands for."""
        self.guide._clear_error()
        self.engine.choose(button._option_id)  # type: ignore[attr-defined]
        self.guide.render()

    @_guarded
    def on_continue_click(self, _button: w.Button | None = None) -> None:
        """The dropdown's Continue button: take the selected option."""
        if self.dropdown.value == NOTHING:
            return
        self.guide._clear_error()
        self.engine.choose(self.dropdown.value)
        self.guide.render()

    @_guarded
    def on_dropdown_change(self, change: dict) -> None:
        self.continue_button.disabled = change["new"] == NOTHING

    @_guarded
    def on_next_click(self, _button: w.Button | None = None) -> None:
        self.guide._clear_error()
        self.engine.advance()
        self.guide.render()

    # ---------------------------------------------------------------- rendering

    def render(self) -> None:
        engine, node = self.engine, self.engine.node
        # data-step changes with every step change (not with a language switch): the page
        # script moves focus to the new heading then; data-guide-lang sets <html lang>, and
        # the page script takes the page's texts in that language from the data-guide-*
        # attributes (the flow's interface texts).
        progress = engine.progress()
        fine_print = ("" if node.fine_print is None else
                      f"<p class='guide-fine-print'><small>"
                      f"{_inline(engine.text(node.fine_print))}</small></p>")
        label = html.escape(engine.ui("progress", step=progress.step, total=progress.total))
        attrs = "".join(f" data-guide-{key.replace('_', '-')}="
                        f"'{html.escape(engine.ui(key), quote=True)}'"
                        for key in PAGE_TEXTS)
        self.text.value = (f"<div lang='{engine.lang}' data-guide-lang='{engine.lang}' "
                           f"data-step='{len(engine.path)}-{node.id}'{attrs}>"
                           f"<progress class='guide-progress' max='{progress.total}' "
                           f"value='{progress.step}' aria-label='{label}'></progress>"
                           f"<p class='guide-progress-label'>{label}</p>"
                           f"<h2>{html.escape(engine.text(node.title))}</h2>"
                           f"{render_body(engine.text(node.body))}"
                           f"{'' if node.kind == 'end' else phrases_markup(engine)}"
                           f"{fine_print}</div>")

        step = (len(engine.path), node.id)
        same_step = step == self._rendered_step
        self._rendered_step = step
        is_choice = node.kind == "choice"
        if is_choice and node.widget == "dropdown":
            options = [(engine.ui("placeholder"), NOTHING)] + [
                (label, oid) for oid, label in engine.options()]
            selected = engine.selected or NOTHING
            if same_step and self.dropdown.value in {oid for _, oid in options}:
                selected = self.dropdown.value  # a choice not yet confirmed with Continue
            if list(self.dropdown.options) != options:
                self.dropdown.options = options
            self.dropdown.value = selected
            self.dropdown.description = engine.text(node.prompt)
            self.continue_button.description = engine.ui("continue")
            self.continue_button.tooltip = engine.ui("continue")
            self.continue_button.disabled = selected == NOTHING
        if is_choice and node.widget == "buttons":
            options = engine.options()
            for i, button in enumerate(self.option_buttons):
                if i < len(options):
                    oid, label = options[i]
                    button._option_id = oid  # type: ignore[attr-defined]
                    with button.hold_sync():  # one message per button
                        button.description = label
                        button.tooltip = label
                        button.button_style = "info" if oid == engine.selected else ""
                    _show(button, True)
                else:
                    _show(button, False)
        if node.kind == "info":
            self.next_button.description = engine.ui("next")
            self.next_button.tooltip = engine.ui("next")
        if node.kind == "end":
            items = "".join(
                f"<li><label><input type='checkbox'> <span>{html.escape(line)}</span></label></li>"
                for line in engine.recap())
            self.recap.value = (f"<h3>{html.escape(engine.ui('recap_title'))}</h3>"
                                f"<ul>{items}</ul>{phrases_markup(engine)}")

        # Containers are shown after their contents are up to date, so the page never flashes
        # the previous step's (or empty) controls.
        _show(self.dropdown_box, is_choice and node.widget == "dropdown")
        _show(self.buttons_box, is_choice and node.widget == "buttons")
        _show(self.next_button, node.kind == "info")
        _show(self.recap, node.kind == "end")


# ==================================================================== panels


class Panel(w.VBox):
    """A framed part of the guide, hidden until shown; its contents are built the first time
    it is shown (most visits never open some panels: a lighter first page and kernel)."""

    def __init__(self, guide: "GuideView") -> None:
        super().__init__([], layout=w.Layout(display="none"))
        self.add_class("guide-panel")
        self.guide = guide
        self.built = False

    @property
    def engine(self) -> Engine:
        return self.guide.engine

    @property
    def shown(self) -> bool:
        return _visible(self)

    def t(self, text: Text) -> str:
        """``text`` in the guide's language."""
        return text(self.guide.engine.lang)

    def ensure_built(self) -> None:
        if not self.built:
            self.built = True
            self.build()

    def show(self, visible: bool) -> None:
        if visible:
            self.ensure_built()
        _show(self, visible)

    def build(self) -> None:
        raise NotImplementedError

    def render(self) -> None:
        """Bring the panel's widgets in line with the guide (nothing while hidden)."""
        raise NotImplementedError


class MessagePanel(Panel):
    """The ready-to-send message, in Korean and English, built from the visitor's answers and
    the optional fields. Shown on the steps whose node has the role ``message``. The suggested
    outcome and the supervisor request (an answer marked ``escalate`` in the flow) follow the
    path until the visitor changes them. Nothing typed here is logged."""

    def __init__(self, guide: "GuideView") -> None:
        super().__init__(guide)
        self._syncing = False
        self._outcome_touched = False
        self._escalate_touched = False

    def build(self) -> None:
        text = lambda: w.Text(continuous_update=False,  # noqa: E731
                              style={"description_width": "initial"},
                              layout=w.Layout(width="100%"))
        self.heading = w.HTML()
        self.outcome = w.Dropdown(options=[(k, k) for k in messages.WANTS],
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

    @_guarded
    def on_field_change(self, change: dict | None = None) -> None:
        """A message field changed: rebuild the message (nothing is logged)."""
        if change is not None and change.get("owner") is self.escalate and not self._syncing:
            self._escalate_touched = True
        self.render_output()

    @_guarded
    def on_outcome_change(self, change: dict) -> None:
        if not self._syncing:
            self._outcome_touched = True
        self.render_output()

    def message_input(self) -> messages.MessageInput:
        """What the message is built from: the path plus the optional fields."""
        self.ensure_built()
        return messages.from_choices(
            self.engine.choices, flow=self.engine.flow, want=self.outcome.value,
            order_number=self.order_number.value, date=self.date.value, detail=self.detail.value,
            escalate=self.escalate.value)

    def render(self) -> None:
        if not self.shown:
            return
        t = self.t
        L = messages.LABELS
        self.heading.value = (f"<h3>{html.escape(t(L['title']))}</h3>"
                              f"<p>{html.escape(t(L['intro']))}</p>"
                              f"<p class='guide-message-which'>{html.escape(t(L['which']))}</p>")
        choices = self.engine.choices
        self._syncing = True
        try:
            current = self.outcome.value
            if not self._outcome_touched:
                current = messages.from_choices(choices, flow=self.engine.flow).want
            options = [(t(label), key) for key, label in messages.WANTS.items()]
            if list(self.outcome.options) != options:
                self.outcome.options = options
            self.outcome.value = current
            if not self._escalate_touched:
                # an answer marked `escalate`, or a visit that came back not solved
                self.escalate.value = (self.engine.flow.escalates(choices)
                                       or self.engine.unsolved)
        finally:
            self._syncing = False
        self.outcome.description = t(L["outcome"])
        for field, key in ((self.order_number, "order_number"), (self.date, "date"),
                           (self.detail, "detail")):
            field.description = t(L[key])
            field.placeholder = t(L[f"{key}_hint"])
        self.escalate.description = t(L["supervisor"])
        self.render_output()

    def render_output(self) -> None:
        t = self.t
        L = messages.LABELS
        texts = messages.build_both(self.message_input())
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

    def __init__(self, guide: "GuideView") -> None:
        super().__init__(guide)
        self.notes: list[casenotes.Note] = []
        #: the status line (in every language: it follows a language switch)
        self._message: Text | None = None
        self.toggle = _action_button_toggle()
        self.toggle.observe(self.on_toggle, names="value")

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
        self.add_button = _action_button()
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

    @_guarded
    def on_toggle(self, change: dict) -> None:
        self.show(bool(change["new"]))
        self.render()

    @_guarded
    def on_add_click(self, _button: w.Button | None = None) -> None:
        """Add the form's values as a note and clear the form (nothing is logged)."""
        values = dict(when=self.when.value, channel=self.channel.value,
                      agent=self.agent.value, reference=self.reference.value,
                      promised=self.promised.value)
        try:
            note = casenotes.make_note(**values)
        except casenotes.CaseNotesError:
            self._message = casenotes.LABELS["need_something"]
        else:
            if len(self.notes) >= casenotes.MAX_ROWS:
                self._message = casenotes.LABELS["full"]
            else:
                self.notes.append(note)
                self._message = None
                for field in (self.when, self.agent, self.reference, self.promised):
                    field.value = ""
                self.channel.value = ""
        self.render()
        self.guide.callsheet_panel.render()

    @_guarded
    def on_upload(self, change: dict) -> None:
        """Load notes from a file downloaded earlier; they are added to the notes shown. A file
        that cannot be loaded (too large, not case notes) leaves the notes as they were and
        says why, in the guide's language."""
        files = change["new"]
        if not files:
            return
        upload = files[0]
        # the widget would keep the file (up to the message size bound) and send it again
        # with every request for its state: what is read, or refused, is dropped at once
        self.upload.value = ()
        try:
            content = memoryview(upload["content"])
            casenotes.check_size(content.nbytes)
            loaded = casenotes.parse(content.tobytes())
            if len(self.notes) + len(loaded) > casenotes.MAX_ROWS:
                raise casenotes.CaseNotesError(casenotes.REASONS["too_many"],
                                               limit=casenotes.MAX_ROWS)
        except casenotes.CaseNotesError as exc:
            self._message = casenotes.error_message(exc)
        else:
            self.notes.extend(loaded)
            self._message = casenotes.loaded_message(len(loaded))
            # a file downloaded from the last screen carries the return link: coming back
            # with it asks how it went (a value the flow cannot have produced is ignored)
            carried = casenotes.followup_in(content.tobytes())
            if carried is not None and not self.engine.asks_followup:
                self.guide.follow_up(carried)
        self.render()
        self.guide.callsheet_panel.render()

    def render(self) -> None:
        t = self.t
        L = casenotes.LABELS
        self.toggle.description = t(L["toggle_close" if self.toggle.value else "toggle"])
        if not self.shown:
            return
        # The page's script refuses a file over the size limit before sending it (the server
        # would drop the connection for a message that large) and shows this message in the
        # status line below: both come from here, in the guide's language.
        too_large = t(casenotes.error_message(casenotes.too_large()))
        self.intro.value = (
            f"<div class='guide-notes-intro' data-upload-limit='{casenotes.MAX_BYTES}' "
            f"data-upload-too-large='{html.escape(too_large, quote=True)}'>"
            f"<h3>{html.escape(t(casenotes.TITLE))}</h3>"
            f"<p>{html.escape(t(L['intro']))}</p></div>")
        for field, column in ((self.when, "when"), (self.agent, "agent"),
                              (self.reference, "reference"), (self.promised, "promised")):
            field.description = t(casenotes.HEADERS[column])
        self.when.placeholder = t(L["when_hint"])
        channel = self.channel.value
        options = [("—", "")] + [(t(label), key) for key, label in casenotes.CHANNELS.items()]
        if list(self.channel.options) != options:
            self.channel.options = options
        self.channel.value = channel
        self.channel.description = t(casenotes.HEADERS[casenotes.CHANNEL])
        self.add_button.description = t(L["add"])
        self.upload.description = t(L["load"])
        message = t(self._message) if self._message is not None else ""
        self.status.value = (f"<p role='status'>{html.escape(message)}</p>"
                             if message else "")
        if self.notes:
            lang = self.engine.lang
            head = "".join(f"<th scope='col'>{html.escape(t(casenotes.HEADERS[c]))}</th>"
                           for c in casenotes.COLUMNS)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(casenotes.cell(n, c, lang))}</td>"
                                 for c in casenotes.COLUMNS) + "</tr>" for n in self.notes)
            self.table.value = f"<table><tr>{head}</tr>{rows}</table>"
            code = self.engine.followup_code()
            md = casenotes.to_markdown(self.notes, lang, followup=code,
                                       followup_label=self.engine.ui("followup_file"))
            csv_text = casenotes.to_csv(self.notes)
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


def _action_button_toggle() -> w.ToggleButton:
    toggle = w.ToggleButton(value=False, layout=w.Layout(width="auto", height="auto"))
    toggle.add_class("guide-action")
    return toggle


class OutcomePanel(Panel):
    """How it went, asked with one click (logged as an id, never text), only on a visit that
    came back with the return link, after the visitor contacted Amazon: above the step, with
    the earlier answers the link carried (the flow's own labels). The answer given is
    highlighted; "not solved" leads to the advice for when the agent could not help."""

    def build(self) -> None:
        self.label = w.HTML()
        self.buttons = []
        for key in OUTCOMES:
            button = _action_button()
            button._outcome = key  # type: ignore[attr-defined]
            button.on_click(self.on_outcome_click)
            self.buttons.append(button)
        self.children = [
            self.label,
            w.Box(self.buttons, layout=w.Layout(flex_flow="row wrap", width="100%"))]

    @_guarded
    def on_outcome_click(self, button: w.Button) -> None:
        """One click: how it went (may move the guide to the escalation advice)."""
        self.guide._clear_error()
        self.engine.record_followup(button._outcome)  # type: ignore[attr-defined]
        self.guide.render()

    def render(self) -> None:
        if not self.shown:
            return
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
            button.description = self.t(OUTCOMES[button._outcome])
            button.button_style = "info" if button._outcome == engine.outcome else ""


class CallSheetPanel(Panel):
    """The call sheet (widgets/callsheet.py): the number and the way online, what the call is
    about, the case notes' agent names and reference numbers, and the lines to say in call
    order. Shown on the steps whose node has the role ``callsheet``: its :attr:`toggle`
    opens and closes the sheet. The sheet's print button is wired by the page script
    (guide.js). Built the first time such a step is shown."""

    def __init__(self, guide: "GuideView") -> None:
        super().__init__(guide)
        self.remove_class("guide-panel")  # the sheet below the toggle has the frame
        self.add_class("guide-callsheet-panel")

    def build(self) -> None:
        self.toggle = _action_button_toggle()
        self.toggle.add_class("guide-callsheet-toggle")
        self.toggle.observe(self.on_toggle, names="value")
        self.sheet = w.HTML(layout=w.Layout(display="none"))
        self.sheet.add_class("guide-panel")
        self.children = [self.toggle, self.sheet]

    @_guarded
    def on_toggle(self, _change: dict) -> None:
        self.render()

    @property
    def is_open(self) -> bool:
        """Whether the sheet is open (shown, with its toggle on)."""
        return self.shown and self.toggle.value and _visible(self.sheet)

    def render(self) -> None:
        engine = self.engine
        self.show("callsheet" in engine.node.roles)
        if not self.shown:
            return
        opened = bool(self.toggle.value)
        self.toggle.description = engine.ui("callsheet_close" if opened else "callsheet_open")
        if opened:
            self.sheet.value = callsheet.sheet_html(engine.flow, engine.lang, engine.choices,
                                                    self.guide.notes_panel.notes)
        _show(self.sheet, opened)


class ReturnPanel(Panel):
    """The link to come back after contacting Amazon, on the steps whose node has the role
    ``followup`` (once the path has what the link carries: ids only, widgets/followup.py).
    The link is relative (the page's own address, with its query string replaced)."""

    def build(self) -> None:
        self.text = w.HTML()
        self.children = [self.text]

    def code(self) -> str | None:
        if "followup" not in self.engine.node.roles:
            return None
        return self.engine.followup_code()

    def render(self) -> None:
        code = self.code()
        self.show(code is not None)
        if not self.shown:
            return
        engine = self.engine
        href = html.escape(f"?{quote(followup.PARAM)}={quote(code, safe=':,')}"
                           f"&lang={engine.lang}", quote=True)
        self.text.value = (f"<div class='guide-return'><p>{html.escape(engine.ui('followup_intro'))}"
                           f"</p><p><a class='guide-return-link' href='{href}'>"
                           f"{html.escape(engine.ui('followup_link'))}</a></p></div>")


# ==================================================================== the guide


class GuideView(w.VBox):
    """The guide as widgets. ``sink`` receives every interaction (ids only).

    Its parts: :attr:`step_view` (:class:`StepView`), :attr:`message_panel`,
    :attr:`notes_panel`, :attr:`outcome_panel`, :attr:`callsheet_panel` and
    :attr:`return_panel`; the header, the notice line and Back /
    Start over are its own."""

    def __init__(self, flow: Flow | None = None, lang: str = "ko", sink: EventSink | None = None,
                 **kwargs: Any):
        self.sink = sink
        #: interactions of the callback running now, sent to the sink once it has updated
        #: the widgets (so the page's update never waits for the log); None between callbacks
        self._held: list[Interaction] | None = None
        self.engine = Engine(flow, lang=lang, on_event=self._record)
        self._error = False
        self._log_ok = True
        self._notes: tuple[Text, ...] = ()

        self.heading = w.HTML()
        self.language = w.ToggleButtons(options=LANGUAGE_NAMES, value=lang,
                                        tooltips=["한국어로 보기", "Show in English"],
                                        style={"button_width": "auto"})
        self.notice = w.HTML(layout=w.Layout(display="none"))
        self.notice.add_class("guide-notice")
        self.back_button = _action_button()
        self.restart_button = _action_button()
        self.back_button.on_click(self.on_back_click)
        self.restart_button.on_click(self.on_restart_click)
        self.language.observe(self.on_language_change, names="value")

        self.step_view = StepView(self)
        self.message_panel = MessagePanel(self)
        self.outcome_panel = OutcomePanel(self)
        self.notes_panel = NotesPanel(self)
        self.callsheet_panel = CallSheetPanel(self)
        self.return_panel = ReturnPanel(self)

        wrap = w.Layout(flex_flow="row wrap", justify_content="space-between",
                        align_items="center", width="100%")
        header = w.Box([self.heading, self.language], layout=wrap)
        nav = w.Box([self.back_button, self.restart_button], layout=w.Layout(
            flex_flow="row wrap", justify_content="space-between", width="100%",
            margin="1rem 0 0 0"))
        super().__init__(
            [w.HTML(CSS + offline_markup(self.engine.flow)), header, self.notice,
             self.outcome_panel, *self.step_view.widgets,
             self.callsheet_panel, self.return_panel,
             self.message_panel, nav, self.notes_panel.toggle, self.notes_panel],
            layout=w.Layout(width="100%", max_width="46rem", margin="0 auto"),
            **kwargs,
        )
        self.add_class("guide")
        self.render()

    # ---------------------------------------------------------------- start

    def start(self, step: str | None = None) -> "GuideView":
        """Report the first screen to the log (optionally opening at node ``step``)."""
        if step is not None:
            self.engine.go_to(step)
        else:
            self.engine.start()
        self.render()
        return self

    # ---------------------------------------------------------------- callbacks

    @_guarded
    def on_back_click(self, _button: w.Button | None = None) -> None:
        if not self.engine.can_go_back:
            return
        self._clear_error()
        self.engine.back()
        self.render()

    @_guarded
    def on_restart_click(self, _button: w.Button | None = None) -> None:
        self._clear_error()
        self.engine.restart()
        self.render()

    @_guarded
    def on_language_change(self, change: dict) -> None:
        self.engine.set_language(change["new"])
        self.render()

    # ---------------------------------------------------------------- log status

    def set_log_health(self, healthy: bool) -> None:
        """Called by the interaction log when saving events stops or starts working again."""
        self._log_ok = healthy
        self._render_notice()

    def set_note(self, *texts: Text) -> None:
        """Short notes shown above the step until the visitor's next action (e.g. that a link
        could not be followed), in the guide's language (they follow a language switch). Only
        the flow's own texts: nothing from outside (a link) is ever shown."""
        self._notes = texts
        self._render_notice()

    # ---------------------------------------------------------------- rendering

    def render(self) -> None:
        """Bring every widget in line with the engine's state (in place, nothing rebuilt)."""
        engine, node = self.engine, self.engine.node
        if self.language.value != engine.lang:
            self.language.value = engine.lang
        self.heading.value = f"<p class='guide-subtitle'>{html.escape(engine.ui('subtitle'))}</p>"
        self.step_view.render()
        # Which steps show a panel is the flow's to say (the nodes' roles).
        # The message also comes with the escalation advice on a visit that came back not
        # solved; how it went is asked only on a visit that came back after contact.
        self.message_panel.show("message" in node.roles or (
            engine.unsolved and "escalation" in node.roles))
        self.outcome_panel.show(engine.asks_followup)
        self.message_panel.render()
        self.notes_panel.render()
        self.outcome_panel.render()
        self.callsheet_panel.render()
        self.return_panel.render()
        with self.back_button.hold_sync():
            self.back_button.description = engine.ui("back")
            self.back_button.tooltip = engine.ui("back_hint")
            self.back_button.disabled = not engine.can_go_back
        with self.restart_button.hold_sync():
            self.restart_button.description = engine.ui("restart")
            self.restart_button.tooltip = engine.ui("restart_hint")
        self._render_notice()

    def follow_up(self, value: object) -> bool:
        """Come back after contacting Amazon: ``value`` is the return link's (or a case-notes
        file's) record of the earlier visit's answers. When the flow could have produced it,
        the guide logs those answers (ids) and asks how it went; else nothing happens and
        False is returned (the caller shows a fixed notice; the value is never shown)."""
        answers = followup.decode(self.engine.flow, value)
        if answers is None or not self.engine.flow.role_nodes("followup"):
            return False
        self.engine.recall(answers)
        self.render()
        return True

    def message_input(self) -> messages.MessageInput:
        """What the message panel builds its message from."""
        return self.message_panel.message_input()

    def _render_notice(self) -> None:
        parts = [html.escape(self.engine.text(note)) for note in self._notes]
        if self._error:
            parts.append(html.escape(self.engine.ui("error")))
        if not self._log_ok:
            parts.append(html.escape(self.engine.ui("log_notice")))
        self.notice.value = "<br>".join(f"<span role='status'>{p}</span>" for p in parts)
        _show(self.notice, bool(parts))

    def _clear_error(self) -> None:
        self._error = False
        self._notes = ()

    def _record(self, interaction: Interaction) -> None:
        if self._held is not None:
            self._held.append(interaction)
        else:
            self._deliver(interaction)

    def _deliver(self, interaction: Interaction) -> None:
        if self.sink is None:
            return
        try:
            self.sink.record(interaction)
        except Exception:  # noqa: BLE001 - logging must never break the guide
            logger.exception("the interaction log failed")
