"""The current step: its text, and the controls of its kind, one renderer per kind of step.

:class:`StepView` shows the progress, title and text in one HTML widget (so a step change
reaches the page as one update) and hands the controls to the renderer of the step's kind:

* :class:`DropdownChoice` a decision shown as a dropdown with Continue
  (``on_dropdown_change``, ``on_continue_click``);
* :class:`ButtonsChoice`  a decision shown as one button per option (``on_option_click``);
* :class:`InfoNext`       advice, with Next (``on_next_click``);
* :class:`EndRecap`       the last screen: the checklist of the path taken.

Each renderer owns its widgets and callbacks and draws them from the visit's state. The kind
and the widget come from the flow (a node's ``kind`` and ``widget``), never from a step id.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w

from ..flow import Node
from ..markup import inline, phrases_markup, render_body
from .base import OptionButton, Part, action_button, guarded, muted, show

if TYPE_CHECKING:
    from .guide import GuideView

#: The dropdown's value while no option is selected (its placeholder entry).
NOTHING = ""
#: Interface texts the page script uses (guide.js reads them from the step's
#: ``data-guide-*`` attributes, in the guide's language).
PAGE_TEXTS: tuple[str, ...] = ("language", "site_title")


class StepRenderer(Part):
    """The controls of one kind of step: :attr:`box` is shown while the step is of that kind
    (:attr:`kind`: a node's kind, and for a decision the widget it is shown with)."""

    box: w.DOMWidget
    kind: tuple[str, str | None]

    def applies(self, node: Node) -> bool:
        return kind_of(node) == self.kind

    def draw(self) -> None:
        raise NotImplementedError


class DropdownChoice(StepRenderer):
    """A decision as a dropdown, confirmed with Continue. A selection not yet confirmed stays
    through a language switch (the visit's state keeps it until the step changes)."""

    kind = ("choice", "dropdown")

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.dropdown = w.Dropdown(options=[("", NOTHING)], value=NOTHING,
                                   style={"description_width": "initial"},
                                   layout=w.Layout(width="100%"))
        self.continue_button = action_button(button_style="primary", disabled=True)
        self.continue_button.on_click(self.on_continue_click)
        self.dropdown.observe(self.on_dropdown_change, names="value")
        self.box = w.VBox([self.dropdown, self.continue_button])

    @guarded
    def on_dropdown_change(self, change: dict) -> None:
        self.state.pick(change["new"])
        self.continue_button.disabled = self.state.selected is None

    @guarded
    def on_continue_click(self, _button: w.Button | None = None) -> None:
        """Take the selected option."""
        if self.state.confirm():
            self.guide.render()

    def draw(self) -> None:
        engine, state = self.engine, self.state
        options = [(engine.ui("placeholder"), NOTHING)] + [
            (label, oid) for oid, label in engine.options()]
        selected = state.selected or NOTHING
        with muted(self.dropdown, self.on_dropdown_change):
            if list(self.dropdown.options) != options:
                self.dropdown.options = options
            self.dropdown.value = selected
        self.dropdown.description = engine.text(engine.node.prompt)
        self.continue_button.description = engine.ui("continue")
        self.continue_button.tooltip = engine.ui("continue")
        self.continue_button.disabled = selected == NOTHING


class ButtonsChoice(StepRenderer):
    """A decision as one button per option; the option chosen there last time is highlighted.
    As many buttons as the flow's largest such decision, each carrying its option's id."""

    kind = ("choice", "buttons")

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        most_options = max((len(node.options) for node in guide.state.engine.flow
                            if node.widget == "buttons"), default=0)
        self.option_buttons = [OptionButton(layout=w.Layout(width="100%", height="auto"))
                               for _ in range(most_options)]
        for button in self.option_buttons:
            button.add_class("guide-option")
            button.on_click(self.on_option_click)
        self.box = w.VBox(self.option_buttons, layout=w.Layout(width="100%"))

    @guarded
    def on_option_click(self, button: OptionButton) -> None:
        """Take the option the button stands for."""
        self.state.choose(button.option_id)
        self.guide.render()

    def draw(self) -> None:
        engine = self.engine
        options = engine.options()
        for i, button in enumerate(self.option_buttons):
            if i < len(options):
                oid, label = options[i]
                button.option_id = oid
                with button.hold_sync():  # one message per button
                    button.description = label
                    button.tooltip = label
                    button.button_style = "info" if oid == engine.selected else ""
                show(button, True)
            else:
                show(button, False)


class InfoNext(StepRenderer):
    """Advice: Next goes on."""

    kind = ("info", None)

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.next_button = action_button(button_style="primary")
        self.next_button.on_click(self.on_next_click)
        self.box = self.next_button

    @guarded
    def on_next_click(self, _button: w.Button | None = None) -> None:
        self.state.advance()
        self.guide.render()

    def draw(self) -> None:
        self.next_button.description = self.engine.ui("next")
        self.next_button.tooltip = self.engine.ui("next")


class EndRecap(StepRenderer):
    """The last screen: the checklist of the path taken, then the phrases to say."""

    kind = ("end", None)

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.recap = w.HTML()
        self.recap.add_class("guide-recap")
        self.box = self.recap

    def draw(self) -> None:
        engine = self.engine
        items = "".join(
            f"<li><label><input type='checkbox'> <span>{html.escape(line)}</span></label></li>"
            for line in engine.recap())
        self.recap.value = (f"<h3>{html.escape(engine.ui('recap_title'))}</h3>"
                            f"<ul>{items}</ul>{phrases_markup(engine)}")


def step_markup(engine) -> str:
    """The step's progress, title, text and phrases, in one element. ``data-step`` changes with
    every step change (not with a language switch): the page script moves focus to the new
    heading then; ``data-guide-lang`` sets ``<html lang>``, and the page script takes the page's
    texts in that language from the ``data-guide-*`` attributes (the flow's interface texts)."""
    node = engine.node
    progress = engine.progress()
    fine_print = ("" if node.fine_print is None else
                  f"<p class='guide-fine-print'><small>"
                  f"{inline(engine.text(node.fine_print))}</small></p>")
    label = html.escape(engine.ui("progress", step=progress.step, total=progress.total))
    attrs = "".join(f" data-guide-{key.replace('_', '-')}="
                    f"'{html.escape(engine.ui(key), quote=True)}'"
                    for key in PAGE_TEXTS)
    return (f"<div lang='{engine.lang}' data-guide-lang='{engine.lang}' "
            f"data-step='{len(engine.path)}-{node.id}'{attrs}>"
            f"<progress class='guide-progress' max='{progress.total}' "
            f"value='{progress.step}' aria-label='{label}'></progress>"
            f"<p class='guide-progress-label'>{label}</p>"
            f"<h2>{html.escape(engine.text(node.title))}</h2>"
            f"{render_body(engine.text(node.body))}"
            f"{'' if node.kind == 'end' else phrases_markup(engine)}"
            f"{fine_print}</div>")


def kind_of(node: Node) -> tuple[str, str | None]:
    """What a step's controls depend on: its kind, and for a decision its widget."""
    return node.kind, node.widget if node.kind == "choice" else None


class StepView(Part):
    """The current step: :attr:`text` (progress, title and text), then the controls of its
    kind (:attr:`renderers`). Its widgets (:attr:`widgets`) take their place in the guide's
    layout. The renderers' widgets are reachable here too (``dropdown``, ``continue_button``,
    ``option_buttons``, ``next_button``, ``recap`` and their boxes)."""

    def __init__(self, guide: GuideView) -> None:
        super().__init__(guide)
        self.text = w.HTML()
        self.text.add_class("guide-body")
        self.dropdown_choice = DropdownChoice(guide)
        self.buttons_choice = ButtonsChoice(guide)
        self.info_next = InfoNext(guide)
        self.end_recap = EndRecap(guide)
        self.renderers: tuple[StepRenderer, ...] = (
            self.dropdown_choice, self.buttons_choice, self.info_next, self.end_recap)
        self.dropdown = self.dropdown_choice.dropdown
        self.continue_button = self.dropdown_choice.continue_button
        self.dropdown_box = self.dropdown_choice.box
        self.option_buttons = self.buttons_choice.option_buttons
        self.buttons_box = self.buttons_choice.box
        self.next_button = self.info_next.next_button
        self.recap = self.end_recap.recap
        self._by_kind = {renderer.kind: renderer for renderer in self.renderers}
        #: the guide's layout slots this part fills, in order
        self.widgets: tuple[w.DOMWidget, ...] = (self.text,) + tuple(
            renderer.box for renderer in self.renderers)

    def render(self) -> None:
        engine = self.engine
        self.text.value = step_markup(engine)
        active = self._by_kind.get(kind_of(engine.node))
        if active is not None:
            active.draw()
        # Containers are shown after their contents are up to date, so the page never flashes
        # the previous step's (or empty) controls.
        for renderer in self.renderers:
            show(renderer.box, renderer is active)
