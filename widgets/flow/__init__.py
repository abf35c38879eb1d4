"""The guide's content: ``widgets/flow.yaml`` loaded, validated and frozen into a :class:`Flow`.

By job: :mod:`.model` (the immutable data and :class:`FlowError`), :mod:`.loader` (reading a
flow file: the interface texts, the phrases, the glossary), :mod:`.nodes` (the steps, their
routes and roles, every path), :mod:`.texts` (the texts of the message and the case notes),
:mod:`.read` (the readers they share). Every public name is importable from here.

Pure Python (PyYAML and the standard library); it never imports ipywidgets.
"""

from ..vocabulary import ID_PATTERN, LANGUAGES
from .loader import (DEFAULT_PATH, FLOW_ENV, OPTIONAL_UI_KEYS, ROLE_UI_KEYS, UI_KEYS, build_flow,
                     default_flow, load_flow, parse_flow)
from .model import (CHOICE_ROLES, KINDS, ROLES, SINGLE_ROLES, STAGES, WIDGETS, CaseNotesTexts, Flow,
                    FlowError, MessageTexts, Node, Option, Phrase, Route, Rule, Term, Text, Want)
from .texts import packaged_texts, section_texts

__all__ = [
    "ID_PATTERN", "LANGUAGES", "DEFAULT_PATH", "FLOW_ENV", "OPTIONAL_UI_KEYS", "ROLE_UI_KEYS",
    "UI_KEYS", "build_flow", "default_flow", "load_flow", "parse_flow", "CHOICE_ROLES", "KINDS",
    "ROLES", "SINGLE_ROLES", "STAGES", "WIDGETS", "CaseNotesTexts", "Flow", "FlowError",
    "MessageTexts", "Node", "Option", "Phrase", "Route", "Rule", "Term", "Text", "Want",
    "packaged_texts", "section_texts",
]
