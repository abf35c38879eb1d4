"""What the view's parts share: the guard around every callback, showing and hiding a widget,
the buttons that carry what they stand for as declared traits, and the framed panel."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator

import ipywidgets as w
import traitlets

from ..flow import Text

if TYPE_CHECKING:
    from ..state import VisitState
    from .guide import GuideView

logger = logging.getLogger("widgets.view")


def guarded(method: Callable) -> Callable:
    """A callback of the visitor's: marks the visit active (the view's ``on_activity`` hook, set
    by the host), runs ``method`` as one interaction of the guide (its events go to the log
    together, once the page has its update), and on any error logs it server-side and shows a
    friendly message instead of a traceback."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        view: GuideView = self.guide
        if view.on_activity is not None:
            try:
                view.on_activity()
            except Exception:  # noqa: BLE001 - the host's hook must never break the guide
                logger.exception("marking the visitor's activity failed")
        with view.interaction:
            try:
                method(self, *args, **kwargs)
            except Exception:  # noqa: BLE001 - a visitor must never see a traceback
                logger.exception("guide callback %s failed at node %r", method.__qualname__,
                                 view.engine.node.id)
                view.state.error = True
                try:
                    view.render()
                except Exception:  # noqa: BLE001
                    logger.exception("re-rendering after an error failed")

    return wrapper


def show(widget: w.DOMWidget, visible: bool) -> None:
    """Show or hide ``widget`` (no message to the page when nothing changes)."""
    display = None if visible else "none"
    if widget.layout.display != display:
        widget.layout.display = display


def visible(widget: w.DOMWidget) -> bool:
    return widget.layout.display != "none"


def action_button(cls: type[w.Button] = w.Button, **kwargs: Any) -> w.Button:
    button = cls(layout=w.Layout(width="auto", height="auto"), **kwargs)
    button.add_class("guide-action")
    return button


def action_toggle() -> w.ToggleButton:
    toggle = w.ToggleButton(value=False, layout=w.Layout(width="auto", height="auto"))
    toggle.add_class("guide-action")
    return toggle


class OptionButton(w.Button):
    """A decision's option as a button: :attr:`option_id` is the option it stands for (a
    declared trait, kept in the kernel: the page's button is a plain button)."""

    option_id = traitlets.Unicode(None, allow_none=True)


class OutcomeButton(w.Button):
    """One answer to how it went: :attr:`outcome` is its id (kept in the kernel)."""

    outcome = traitlets.Unicode()


class Part:
    """A part of the guide that is not a widget itself: it owns widgets the guide lays out.
    :attr:`state` is the visit's (widgets/state.py), :attr:`engine` its engine."""

    def __init__(self, guide: GuideView) -> None:
        self.guide = guide
        self.state: VisitState = guide.state
        self.engine = guide.state.engine


class Panel(w.VBox):
    """A framed part of the guide, hidden until shown; its contents are built the first time
    it is shown (most visits never open some panels: a lighter first page and kernel).
    :meth:`wanted` says, from the visit's state, whether it is shown; :meth:`draw` brings its
    widgets in line with the state (only while shown)."""

    def __init__(self, guide: GuideView) -> None:
        super().__init__([], layout=w.Layout(display="none"))
        self.add_class("guide-panel")
        self.guide = guide
        self.state: VisitState = guide.state
        self.engine = guide.state.engine
        self.built = False

    @property
    def shown(self) -> bool:
        return visible(self)

    def t(self, text: Text) -> str:
        """``text`` in the guide's language."""
        return text(self.engine.lang)

    def render(self) -> None:
        """Show the panel when the state wants it, and draw it (nothing while hidden)."""
        wanted = self.wanted()
        if wanted and not self.built:
            self.built = True
            self.build()
        display = None if wanted else "none"
        if self.layout.display != display:
            self.layout.display = display
        if wanted:
            self.draw()

    def wanted(self) -> bool:
        raise NotImplementedError

    def build(self) -> None:
        raise NotImplementedError

    def draw(self) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def muted(widget: w.Widget, handler: Callable, name: str = "value") -> Iterator[None]:
    """Set ``widget``'s ``name`` without calling ``handler`` (the view drawing the state is not
    an action of the visitor's)."""
    widget.unobserve(handler, names=name)
    try:
        yield
    finally:
        widget.observe(handler, names=name)
