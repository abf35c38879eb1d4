"""The ipywidgets view of a visit: the only package importing ipywidgets.

* :mod:`.guide`  :class:`GuideView`, which lays out the parts and navigates;
* :mod:`.steps`  the current step, one renderer per kind of step;
* :mod:`.panels` the panels and roles (message, notes, outcome, call sheet, return link,
  notices);
* :mod:`.base`   the guard around callbacks, the buttons' declared traits, the framed panel.

The visit's state is :class:`widgets.state.VisitState`; the markup shared with other modules is
widgets/markup.py; the log's side is widgets/eventlog.py.
"""

from __future__ import annotations

from ..eventlog import EventSink
from ..markup import COPY_JS, CSS, CSS_PATH, offline_markup, phrases_markup, render_body
from .base import OptionButton, OutcomeButton, Panel
from .guide import GuideView, language_names, language_tooltips
from .panels import (CallSheetPanel, MessagePanel, NoticeLine, NotesPanel, OutcomePanel,
                     ReturnPanel)
from .steps import NOTHING, PAGE_TEXTS, StepView

__all__ = ["COPY_JS", "CSS", "CSS_PATH", "NOTHING", "PAGE_TEXTS",
           "CallSheetPanel", "EventSink", "GuideView", "MessagePanel", "NoticeLine",
           "NotesPanel", "OptionButton", "OutcomeButton", "OutcomePanel", "Panel", "ReturnPanel",
           "StepView", "language_names", "language_tooltips", "offline_markup", "phrases_markup", "render_body"]
