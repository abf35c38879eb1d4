"""The ipywidgets view of an :class:`~widgets.engine.Engine`: the only module importing ipywidgets.

One :class:`GuideView` (a ``VBox``) builds its widgets once and updates them in place after each
action. Callbacks are named methods (``on_option_click``, ``on_continue_click``, ``on_next_click``,
``on_back_click``, ``on_restart_click``, ``on_language_change``), so tests drive the guide by
setting ``.value`` and calling ``.click()``, without a browser.

A failing callback never shows a traceback: the visitor sees a short message in the current
language, and the details go to the server's log.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from typing import Any, Callable, Protocol

import ipywidgets as w

from urllib.parse import quote

from . import casenotes, messages
from .engine import OUTCOME_QUESTION, OUTCOME_THANKS, OUTCOMES, Engine, Interaction
from .flow import Flow, Text

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = (("한국어", "ko"), ("English", "en"))
#: The dropdown's value while no option is selected (its placeholder entry).
NOTHING = ""

_PHONE = re.compile(r"\+\d[\d ]{6,}\d")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

CSS = """
<style>
.guide { max-width: 46rem; margin: 0 auto; padding: 0.5rem; box-sizing: border-box;
  font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK KR", "Noto Sans KR",
  "Apple SD Gothic Neo", "Malgun Gothic", sans-serif; color: #1b1b1b; line-height: 1.6;
  font-size: 1rem; }
.guide, .guide * { box-sizing: border-box; }
.guide .widget-html-content, .guide .widget-label { white-space: normal; overflow-wrap: anywhere;
  word-break: keep-all; font-size: 1rem; line-height: 1.6; color: #1b1b1b; }
.guide h1 { font-size: 1.5rem; margin: 0.2rem 0; line-height: 1.3; }
.guide h2 { font-size: 1.25rem; margin: 0.6rem 0 0.4rem; line-height: 1.35; }
.guide .guide-subtitle { margin: 0; color: #404040; }
.guide .guide-body p { margin: 0.5rem 0; }
.guide .guide-body ul { margin: 0.4rem 0; padding-left: 1.4rem; }
.guide .guide-body blockquote { margin: 0.4rem 0; padding: 0.4rem 0.8rem;
  border-left: 4px solid #146eb4; background: #eef5fb; }
.guide a { color: #0b5394; text-decoration: underline; }
.guide .widget-button, .guide .widget-toggle-button, .guide .widget-dropdown select {
  height: auto; min-height: 44px; font-size: 1rem; }
.guide .widget-button, .guide .widget-toggle-button { white-space: normal; text-align: left;
  padding: 0.5rem 0.9rem; line-height: 1.4; }
.guide .guide-option { width: 100%; max-width: 100%; margin: 0.25rem 0; }
/* The option chosen before ("info" style): white on a dark cyan (7:1, the widgets' 3.5:1
   cyan is too light for text). */
.guide .jupyter-button.mod-info { background-color: #006064; color: #ffffff; }
.guide .widget-dropdown { width: 100%; max-width: 100%; flex-direction: column;
  align-items: stretch; height: auto; }
.guide .widget-dropdown select { width: 100%; flex: none; }
.guide .widget-dropdown > label { width: auto; max-width: 100%; text-align: left;
  font-weight: 600; line-height: 1.5; white-space: normal; margin: 0.25rem 0; }
.guide .guide-action { width: auto; max-width: 100%; margin: 0.5rem 0; }
body[data-voila] .jp-Cell { max-width: 46rem; margin-left: auto; margin-right: auto; }
.guide .guide-progress { display: block; width: 100%; height: 0.6rem; margin: 0.2rem 0 0;
  accent-color: #146eb4; }
.guide .guide-progress-label { margin: 0; }
/* Full-width widgets without side margins, else they stick out of their box by 4 px and the
   box scrolls sideways on a phone. */
.guide .widget-dropdown, .guide .widget-text, .guide .widget-checkbox { margin-left: 0;
  margin-right: 0; }
.guide .guide-notice .widget-html-content { color: #7a2e00; font-size: 0.9rem; }
.guide .guide-recap ul { list-style: none; padding-left: 0; }
.guide .guide-recap li { margin: 0.1rem 0; }
.guide .guide-recap label { display: flex; gap: 0.5rem; align-items: flex-start; cursor: pointer;
  min-height: 44px; padding: 0.45rem 0; }
.guide .guide-recap input { width: 1.2rem; height: 1.2rem; margin-top: 0.25rem; flex: none; }
/* The focus ring: 3 px, 5:1 against the white page; !important because the widgets' own
   styles remove it (select) or draw a faint 1 px one (buttons). */
.guide :focus-visible, .guide .jupyter-button:focus-visible,
.guide .widget-dropdown > select:focus-visible, .guide input:focus-visible,
.guide textarea:focus-visible { outline: 3px solid #b45309 !important; outline-offset: 2px; }
.guide .guide-panel { border: 1px solid #c8c8c8; border-radius: 6px; padding: 0.6rem;
  margin: 0.8rem 0; width: 100%; }
.guide .guide-panel h3 { font-size: 1.1rem; margin: 0.2rem 0 0.4rem; }
.guide .widget-text, .guide .widget-checkbox { width: 100%; max-width: 100%;
  flex-direction: column; align-items: stretch; height: auto; }
.guide .widget-text > label, .guide .widget-checkbox > label { width: auto; text-align: left;
  white-space: normal; line-height: 1.5; }
.guide .widget-text input { min-height: 44px; font-size: 1rem; }
.guide .widget-checkbox .widget-label-basic { display: flex; align-items: center; gap: 0.5rem;
  min-height: 44px; cursor: pointer; }
.guide .widget-checkbox input { width: 1.2rem; height: 1.2rem; flex: none; margin: 0; }
.guide .guide-messages { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.guide .guide-message { flex: 1 1 18rem; min-width: 0; }
.guide .guide-message textarea { width: 100%; min-height: 14rem; font: inherit;
  font-size: 0.95rem; padding: 0.4rem; resize: vertical; }
.guide .guide-message-actions { display: flex; flex-wrap: wrap; gap: 0.6rem;
  align-items: center; margin-top: 0.3rem; }
.guide .guide-message-actions button, .guide .guide-message-actions a,
.guide .guide-links a { min-height: 44px; padding: 0.5rem 0.9rem; font-size: 1rem; }
.guide .guide-links { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: center; }
.guide .guide-links a, .guide .guide-message-actions a { display: inline-flex;
  align-items: center; }
.guide .guide-notes-table { width: auto; max-width: 100%; overflow-x: auto; }
.guide .guide-notes-table table { border-collapse: collapse; font-size: 0.9rem; }
.guide .guide-notes-table th, .guide .guide-notes-table td { border: 1px solid #c8c8c8;
  padding: 0.25rem 0.4rem; text-align: left; vertical-align: top; }
.guide .widget-upload { min-height: 44px; height: auto; width: auto; }
</style>
"""


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
    """Where interactions go (the interaction log). ``log`` must never raise."""

    def log(self, node: str, action: str, option: str | None = None, lang: str = "ko") -> Any:
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


def _inline(text: str) -> str:
    text = html.escape(text, quote=True)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _PHONE.sub(
        lambda m: f'<a href="tel:{m.group(0).replace(" ", "")}">{m.group(0)}</a>', text)


def _guarded(method: Callable) -> Callable:
    """Run a callback; on any error log it server-side and show a friendly message."""

    @functools.wraps(method)
    def wrapper(self: "GuideView", *args: Any, **kwargs: Any) -> None:
        outermost = self._held is None
        if outermost:
            self._held = []  # interactions wait until the page has its update
        try:
            method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - a visitor must never see a traceback
            logger.exception("guide callback %s failed at node %r", method.__name__,
                             self.engine.node.id)
            self._error = True
            try:
                self.render()
            except Exception:  # noqa: BLE001
                logger.exception("re-rendering after an error failed")
        finally:
            if outermost:
                held, self._held = self._held, None
                for interaction in held:
                    self._deliver(interaction)

    return wrapper


class GuideView(w.VBox):
    """The guide as widgets. ``sink`` receives every interaction (ids only)."""

    def __init__(self, flow: Flow | None = None, lang: str = "ko", sink: EventSink | None = None,
                 **kwargs: Any):
        self.sink = sink
        #: interactions of the callback running now, sent to the sink once it has updated
        #: the widgets (so the page's update never waits for the log); None between callbacks
        self._held: list[Interaction] | None = None
        self.engine = Engine(flow, lang=lang, on_event=self._record)
        self._error = False
        self._log_ok = True
        self._note = ""
        self._syncing = False
        self._escalate_touched = False
        self._rendered_step: tuple[int, str] | None = None
        flow = self.engine.flow
        most_options = max((len(node.options) for node in flow), default=0)

        self.heading = w.HTML()
        self.language = w.ToggleButtons(options=LANGUAGE_NAMES, value=lang,
                                        tooltips=["한국어로 보기", "Show in English"],
                                        style={"button_width": "auto"})
        self.notice = w.HTML(layout=w.Layout(display="none"))
        self.step = w.HTML()
        self.dropdown = w.Dropdown(options=[("", NOTHING)], value=NOTHING,
                                   style={"description_width": "initial"},
                                   layout=w.Layout(width="100%"))
        self.continue_button = w.Button(button_style="primary", disabled=True)
        self.option_buttons = [w.Button(layout=w.Layout(width="100%", height="auto"))
                               for _ in range(most_options)]
        self.next_button = w.Button(button_style="primary")
        self.recap = w.HTML()
        self.back_button = w.Button()
        self.restart_button = w.Button()
        for button in (self.continue_button, self.next_button, self.back_button,
                       self.restart_button):
            button.layout = w.Layout(width="auto", height="auto")
            button.add_class("guide-action")

        for button in self.option_buttons:
            button.add_class("guide-option")
            button.on_click(self.on_option_click)
        self.continue_button.on_click(self.on_continue_click)
        self.next_button.on_click(self.on_next_click)
        self.back_button.on_click(self.on_back_click)
        self.restart_button.on_click(self.on_restart_click)
        self.dropdown.observe(self.on_dropdown_change, names="value")
        self.language.observe(self.on_language_change, names="value")
        self.notice.add_class("guide-notice")
        self.step.add_class("guide-body")
        self.recap.add_class("guide-recap")

        # The panels' contents are built the first time they are shown (most visits never
        # open some of them): a lighter first page and kernel.
        self._built: set[str] = set()
        self.message_panel = self._panel()
        self.outcome_panel = self._panel()
        self.notes_panel = self._panel()
        self._outcome_touched = False
        self.notes: list[casenotes.Note] = []
        #: The case-notes status line (in every language: it follows a language switch).
        self._notes_message: Text | None = None
        self.notes_toggle = w.ToggleButton(value=False, layout=w.Layout(width="auto",
                                                                        height="auto"))
        self.notes_toggle.add_class("guide-action")
        self.notes_toggle.observe(self.on_notes_toggle, names="value")

        self.dropdown_box = w.VBox([self.dropdown, self.continue_button])
        self.buttons_box = w.VBox(self.option_buttons, layout=w.Layout(width="100%"))
        wrap = w.Layout(flex_flow="row wrap", justify_content="space-between",
                        align_items="center", width="100%")
        header = w.Box([self.heading, self.language], layout=wrap)
        nav = w.Box([self.back_button, self.restart_button], layout=w.Layout(
            flex_flow="row wrap", justify_content="space-between", width="100%",
            margin="1rem 0 0 0"))
        super().__init__(
            [w.HTML(CSS), header, self.notice, self.step,
             self.dropdown_box, self.buttons_box, self.next_button, self.recap,
             self.outcome_panel, self.message_panel, nav, self.notes_toggle, self.notes_panel],
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
    def on_option_click(self, button: w.Button) -> None:
        """A choice button: take the option it stands for."""
        self._clear_error()
        self.engine.choose(button._option_id)  # type: ignore[attr-defined]
        self.render()

    @_guarded
    def on_continue_click(self, _button: w.Button | None = None) -> None:
        """The dropdown's Continue button: take the selected option."""
        if self.dropdown.value == NOTHING:
            return
        self._clear_error()
        self.engine.choose(self.dropdown.value)
        self.render()

    @_guarded
    def on_dropdown_change(self, change: dict) -> None:
        self.continue_button.disabled = change["new"] == NOTHING

    @_guarded
    def on_next_click(self, _button: w.Button | None = None) -> None:
        self._clear_error()
        self.engine.advance()
        self.render()

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

    def set_note(self, text: str) -> None:
        """A short plain-text note shown above the step (e.g. an unknown link parameter)."""
        self._note = text
        self._render_notice()

    # ---------------------------------------------------------------- rendering

    def render(self) -> None:
        """Bring every widget in line with the engine's state (in place, nothing rebuilt)."""
        engine, node = self.engine, self.engine.node
        if self.language.value != engine.lang:
            self.language.value = engine.lang
        self.heading.value = f"<p class='guide-subtitle'>{html.escape(engine.ui('subtitle'))}</p>"

        # One widget carries the progress, the title and the text, so a step change reaches
        # the page as one update. data-step changes with every step change (not with a
        # language switch): the page script moves focus to the new heading then;
        # data-guide-lang sets <html lang>.
        progress = engine.progress()
        label = html.escape(engine.ui("progress", step=progress.step, total=progress.total))
        self.step.value = (f"<div lang='{engine.lang}' data-guide-lang='{engine.lang}' "
                           f"data-step='{len(engine.path)}-{node.id}'>"
                           f"<progress class='guide-progress' max='{progress.total}' "
                           f"value='{progress.step}' aria-label='{label}'></progress>"
                           f"<p class='guide-progress-label'>{label}</p>"
                           f"<h2>{html.escape(engine.text(node.title))}</h2>"
                           f"{render_body(engine.text(node.body))}</div>")

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
                    self._show(button, True)
                else:
                    self._show(button, False)
        if node.kind == "info":
            self.next_button.description = engine.ui("next")
            self.next_button.tooltip = engine.ui("next")
        if node.kind == "end":
            items = "".join(
                f"<li><label><input type='checkbox'> <span>{html.escape(line)}</span></label></li>"
                for line in engine.recap())
            self.recap.value = (f"<h3>{html.escape(engine.ui('recap_title'))}</h3>"
                                f"<ul>{items}</ul>")

        # Containers are shown after their contents are up to date, so the page never flashes
        # the previous step's (or empty) controls.
        self._show(self.dropdown_box, is_choice and node.widget == "dropdown")
        self._show(self.buttons_box, is_choice and node.widget == "buttons")
        self._show(self.next_button, node.kind == "info")
        self._show(self.recap, node.kind == "end")
        show_message = node.id == "channel" or node.kind == "end"
        if show_message:
            self._ensure("message")
        if node.kind == "end":
            self._ensure("outcome")
        self._show(self.message_panel, show_message)
        self._show(self.outcome_panel, node.kind == "end")
        self._render_message_panel()
        self._render_notes_panel()
        self._render_outcome_panel()

        with self.back_button.hold_sync():
            self.back_button.description = engine.ui("back")
            self.back_button.tooltip = engine.ui("back_hint")
            self.back_button.disabled = not engine.can_go_back
        with self.restart_button.hold_sync():
            self.restart_button.description = engine.ui("restart")
            self.restart_button.tooltip = engine.ui("restart_hint")
        self._render_notice()

    # ---------------------------------------------------------------- panels

    @staticmethod
    def _panel() -> w.VBox:
        panel = w.VBox([], layout=w.Layout(display="none"))
        panel.add_class("guide-panel")
        return panel

    def _ensure(self, name: str) -> None:
        """Build the contents of panel ``name`` (message, notes, outcome) unless built."""
        if name not in self._built:
            self._built.add(name)
            getattr(self, f"_build_{name}_panel")()

    # ---------------------------------------------------------------- message builder

    def _build_message_panel(self) -> None:
        text = lambda: w.Text(continuous_update=False,  # noqa: E731
                              style={"description_width": "initial"},
                              layout=w.Layout(width="100%"))
        self.message_title = w.HTML()
        self.message_outcome = w.Dropdown(options=[(k, k) for k in messages.OUTCOMES],
                                          style={"description_width": "initial"},
                                          layout=w.Layout(width="100%"))
        self.message_order = text()
        self.message_date = text()
        self.message_detail = text()
        self.message_escalate = w.Checkbox(indent=False, layout=w.Layout(width="100%"))
        self.message_output = w.HTML()
        for field in (self.message_order, self.message_date, self.message_detail,
                      self.message_escalate):
            field.observe(self.on_message_change, names="value")
        self.message_outcome.observe(self.on_message_outcome_change, names="value")
        self.message_panel.children = [
            self.message_title, self.message_outcome, self.message_order, self.message_date,
            self.message_detail, self.message_escalate, self.message_output]

    @_guarded
    def on_message_change(self, change: dict | None = None) -> None:
        """A message field changed: rebuild the message (nothing is logged)."""
        if change is not None and change.get("owner") is self.message_escalate \
                and not self._syncing:
            self._escalate_touched = True
        self._render_message_output()

    @_guarded
    def on_message_outcome_change(self, change: dict) -> None:
        if not self._syncing:
            self._outcome_touched = True
        self._render_message_output()

    def message_input(self) -> messages.MessageInput:
        """What the message is built from: the path plus the optional fields."""
        self._ensure("message")
        return messages.from_choices(
            self.engine.choices, outcome=self.message_outcome.value,
            order=self.message_order.value, date=self.message_date.value,
            detail=self.message_detail.value, escalate=self.message_escalate.value)

    def _render_message_panel(self) -> None:
        if self.message_panel.layout.display == "none":
            return
        t = self._t
        L = messages.LABELS
        self.message_title.value = (f"<h3>{html.escape(t(L['title']))}</h3>"
                                    f"<p>{html.escape(t(L['intro']))}</p>")
        self._syncing = True
        try:
            current = self.message_outcome.value
            if not self._outcome_touched:
                current = messages.from_choices(self.engine.choices).outcome
            options = [(t(label), key) for key, label in messages.OUTCOMES.items()]
            if list(self.message_outcome.options) != options:
                self.message_outcome.options = options
            self.message_outcome.value = current
            if not self._escalate_touched:
                self.message_escalate.value = self.engine.choices.get("helped") == "no"
        finally:
            self._syncing = False
        self.message_outcome.description = t(L["outcome"])
        for field, key in ((self.message_order, "order"), (self.message_date, "date"),
                           (self.message_detail, "detail")):
            field.description = t(L[key])
            field.placeholder = t(L[f"{key}_hint"])
        self.message_escalate.description = t(L["escalate"])
        self._render_message_output()

    def _render_message_output(self) -> None:
        t = self._t
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
        self.message_output.value = f"<div class='guide-messages'>{''.join(columns)}</div>"

    # ---------------------------------------------------------------- case notes

    def _build_notes_panel(self) -> None:
        text = lambda: w.Text(style={"description_width": "initial"},  # noqa: E731
                              layout=w.Layout(width="100%"))
        self.notes_intro = w.HTML()
        self.note_when = text()
        self.note_channel = w.Dropdown(options=[("—", "")], value="",
                                       style={"description_width": "initial"},
                                       layout=w.Layout(width="100%"))
        self.note_agent = text()
        self.note_reference = text()
        self.note_promised = text()
        self.note_add = w.Button(layout=w.Layout(width="auto", height="auto"))
        self.note_add.add_class("guide-action")
        self.note_add.on_click(self.on_note_add_click)
        self.notes_status = w.HTML()
        self.notes_status.add_class("guide-notes-status")
        self.notes_table = w.HTML()
        self.notes_table.add_class("guide-notes-table")
        self.notes_links = w.HTML()
        self.notes_upload = w.FileUpload(accept=".md,.csv,.txt", multiple=False)
        self.notes_upload.observe(self.on_notes_upload, names="value")
        self.notes_panel.children = [
            self.notes_intro, self.note_when, self.note_channel, self.note_agent,
            self.note_reference, self.note_promised, self.note_add, self.notes_status,
            self.notes_table, self.notes_links, self.notes_upload]

    @_guarded
    def on_notes_toggle(self, change: dict) -> None:
        if change["new"]:
            self._ensure("notes")
        self._show(self.notes_panel, bool(change["new"]))
        self._render_notes_panel()

    @_guarded
    def on_note_add_click(self, _button: w.Button | None = None) -> None:
        """Add the form's values as a note and clear the form (nothing is logged)."""
        values = dict(when=self.note_when.value, channel=self.note_channel.value,
                      agent=self.note_agent.value, reference=self.note_reference.value,
                      promised=self.note_promised.value)
        try:
            note = casenotes.make_note(**values)
        except casenotes.CaseNotesError:
            self._notes_message = casenotes.LABELS["need_something"]
        else:
            if len(self.notes) >= casenotes.MAX_ROWS:
                self._notes_message = casenotes.LABELS["full"]
            else:
                self.notes.append(note)
                self._notes_message = None
                for field in (self.note_when, self.note_agent, self.note_reference,
                              self.note_promised):
                    field.value = ""
                self.note_channel.value = ""
        self._render_notes_panel()

    @_guarded
    def on_notes_upload(self, change: dict) -> None:
        """Load notes from a file downloaded earlier; they are added to the notes shown. A file
        that cannot be loaded (too large, not case notes) leaves the notes as they were and
        says why, in the guide's language."""
        files = change["new"]
        if not files:
            return
        upload = files[0]
        try:
            content = memoryview(upload["content"])
            casenotes.check_size(content.nbytes)
            loaded = casenotes.parse(content.tobytes())
            if len(self.notes) + len(loaded) > casenotes.MAX_ROWS:
                raise casenotes.CaseNotesError(casenotes.REASONS["too_many"],
                                               limit=casenotes.MAX_ROWS)
        except casenotes.CaseNotesError as exc:
            self._notes_message = casenotes.error_message(exc)
        else:
            self.notes.extend(loaded)
            self._notes_message = casenotes.loaded_message(len(loaded))
        self._render_notes_panel()

    def _render_notes_panel(self) -> None:
        t = self._t
        L = casenotes.LABELS
        self.notes_toggle.description = t(L["toggle_close" if self.notes_toggle.value
                                             else "toggle"])
        if self.notes_panel.layout.display == "none":
            return
        # The page's script refuses a file over the size limit before sending it (the server
        # would drop the connection for a message that large) and shows this message in the
        # status line below: both come from here, in the guide's language.
        too_large = t(casenotes.error_message(casenotes.too_large()))
        self.notes_intro.value = (
            f"<div class='guide-notes-intro' data-upload-limit='{casenotes.MAX_BYTES}' "
            f"data-upload-too-large='{html.escape(too_large, quote=True)}'>"
            f"<h3>{html.escape(t(casenotes.TITLE))}</h3>"
            f"<p>{html.escape(t(L['intro']))}</p></div>")
        for field, key in ((self.note_when, "when"), (self.note_agent, "agent"),
                           (self.note_reference, "reference"),
                           (self.note_promised, "promised")):
            field.description = t(casenotes.HEADERS[key])
        self.note_when.placeholder = t(L["when_hint"])
        channel = self.note_channel.value
        options = [("—", "")] + [(t(label), key) for key, label in casenotes.CHANNELS.items()]
        if list(self.note_channel.options) != options:
            self.note_channel.options = options
        self.note_channel.value = channel
        self.note_channel.description = t(casenotes.HEADERS["channel"])
        self.note_add.description = t(L["add"])
        self.notes_upload.description = t(L["load"])
        message = t(self._notes_message) if self._notes_message is not None else ""
        self.notes_status.value = (f"<p role='status'>{html.escape(message)}</p>"
                                   if message else "")
        if self.notes:
            head = "".join(f"<th scope='col'>{html.escape(t(casenotes.HEADERS[c]))}</th>"
                           for c in casenotes.COLUMNS)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(self._note_cell(n, c))}</td>"
                                 for c in casenotes.COLUMNS) + "</tr>" for n in self.notes)
            self.notes_table.value = f"<table><tr>{head}</tr>{rows}</table>"
            md = casenotes.to_markdown(self.notes, self.engine.lang)
            csv_text = casenotes.to_csv(self.notes)
            self.notes_links.value = (
                "<div class='guide-links'>"
                f"<a download='amazon-contact-notes.md' "
                f"href='data:text/markdown;charset=utf-8,{quote(md)}'>"
                f"{html.escape(t(L['download_md']))}</a>"
                f"<a download='amazon-contact-notes.csv' "
                f"href='data:text/csv;charset=utf-8,{quote(csv_text)}'>"
                f"{html.escape(t(L['download_csv']))}</a></div>")
        else:
            self.notes_table.value = f"<p>{html.escape(t(L['empty']))}</p>"
            self.notes_links.value = ""

    def _note_cell(self, note: casenotes.Note, column: str) -> str:
        """A note's cell as the table shows it: a known channel by its name in the guide's
        language (the files keep the id, so they load the same in either language)."""
        value = getattr(note, column)
        return casenotes.channel_name(value, self.engine.lang) if column == "channel" else value

    # ---------------------------------------------------------------- outcome

    def _build_outcome_panel(self) -> None:
        self.outcome_label = w.HTML()
        self.outcome_buttons = []
        for key in OUTCOMES:
            button = w.Button(layout=w.Layout(width="auto", height="auto"))
            button._outcome = key  # type: ignore[attr-defined]
            button.add_class("guide-action")
            button.on_click(self.on_outcome_click)
            self.outcome_buttons.append(button)
        self.outcome_panel.children = [
            self.outcome_label,
            w.Box(self.outcome_buttons, layout=w.Layout(flex_flow="row wrap", width="100%"))]

    @_guarded
    def on_outcome_click(self, button: w.Button) -> None:
        """One click at the end: how it went (logged as an id, never text)."""
        self.engine.record_outcome(button._outcome)  # type: ignore[attr-defined]
        self._render_outcome_panel()

    def _render_outcome_panel(self) -> None:
        if self.outcome_panel.layout.display == "none":
            return
        question = html.escape(self._t(OUTCOME_QUESTION))
        thanks = (f" <span role='status'>{html.escape(self._t(OUTCOME_THANKS))}</span>"
                  if self.engine.outcome else "")
        self.outcome_label.value = f"<p><strong>{question}</strong>{thanks}</p>"
        for button in self.outcome_buttons:
            button.description = self._t(OUTCOMES[button._outcome])
            button.button_style = "info" if button._outcome == self.engine.outcome else ""

    def _t(self, text: Text) -> str:
        return text(self.engine.lang)

    def _render_notice(self) -> None:
        parts = []
        if self._note:
            parts.append(html.escape(self._note))
        if self._error:
            parts.append(html.escape(self.engine.ui("error")))
        if not self._log_ok:
            parts.append(html.escape(self.engine.ui("log_notice")))
        self.notice.value = "<br>".join(f"<span role='status'>{p}</span>" for p in parts)
        self._show(self.notice, bool(parts))

    def _clear_error(self) -> None:
        self._error = False
        self._note = ""

    @staticmethod
    def _show(widget: w.DOMWidget, visible: bool) -> None:
        display = None if visible else "none"
        if widget.layout.display != display:
            widget.layout.display = display

    def _record(self, interaction: Interaction) -> None:
        if self._held is not None:
            self._held.append(interaction)
        else:
            self._deliver(interaction)

    def _deliver(self, interaction: Interaction) -> None:
        if self.sink is None:
            return
        try:
            self.sink.log(interaction.node, interaction.action, interaction.option,
                          interaction.lang)
        except Exception:  # noqa: BLE001 - logging must never break the guide
            logger.exception("the interaction log failed")
