"""The flow's words on the dashboard: steps and answers by their titles and labels in
``flow.yaml``, in the language chosen with "Labels"; a step or answer the flow no longer has is
shown as :data:`REMOVED`, never dropped."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ..engine import OUTCOME_KEYS
from ..flow import Flow
from ..summary import NO_ANSWER, NO_CHANNEL, OTHER, Summary, flow_roles

#: How a step or answer id is shown when the flow no longer has it.
REMOVED = "(removed) {}"


class Labels:
    """Step titles and answer labels of ``flow`` in ``lang``; ids the flow does not have are
    shown as :data:`REMOVED`. The summary's own markers ((none), (other)) stay as they are."""

    MARKERS = frozenset({NO_ANSWER, NO_CHANNEL, OTHER})

    def __init__(self, flow: Flow, lang: str) -> None:
        self.flow, self.lang = flow, lang
        self.contact_nodes, self.path_nodes = flow_roles(flow)

    def node(self, node_id: object) -> str:
        text = str(node_id)
        if text in self.MARKERS:
            return text
        node = self.flow.nodes.get(text)
        return node.title(self.lang) if node is not None else REMOVED.format(text)

    def option(self, node_id: object, option_id: object) -> str:
        text = str(option_id)
        if option_id is None or text in self.MARKERS:
            return NO_ANSWER if option_id is None else text
        node = self.flow.nodes.get(str(node_id))
        if node is not None and text in node.option_ids:
            return node.option(text).label(self.lang)
        return REMOVED.format(text)

    def contact(self, option_id: object) -> str:
        """A final contact choice given by its option id (the outcomes table): the label at the
        first contact step that has that option."""
        text = str(option_id)
        for node_id in self.contact_nodes:
            node = self.flow.nodes.get(node_id)
            if node is not None and text in node.option_ids:
                return self.option(node_id, text)
        return self.option(None, text)

    def outcome(self, outcome_id: object) -> str:
        text = str(outcome_id)
        key = OUTCOME_KEYS.get(text)
        if key is None:
            return text
        return self.flow.ui[key](self.lang)


def _path_words(table: pd.DataFrame, words: Labels) -> pd.DataFrame:
    """An outcome-by-path table with its steps and answers in the flow's words."""
    table = table.copy()
    steps = [c for c in table.columns if c not in ("outcome", "sessions", "share")]
    for step in steps:
        table[step] = [words.option(step, o) for o in table[step]]
    table["outcome"] = [words.outcome(o) for o in table["outcome"]]
    return table.rename(columns={step: words.node(step) for step in steps})


def labelled(summary: Summary, flow: Flow, lang: str) -> Summary:
    """``summary`` with its steps and answers in the flow's words (for display only; the CSV
    files use the summary itself, with ids)."""
    words = Labels(flow, lang)

    def nodes(frame: pd.DataFrame, column: str = "node") -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = [words.node(n) for n in frame[column]]
        return frame

    choices = summary.choices.copy()
    choices["option"] = [words.option(n, o) for n, o in zip(choices["node"], choices["option"])]
    channels = summary.channels.copy()
    channels["option"] = [words.option(n, o) for n, o in zip(channels["node"], channels["option"])]
    outcomes = summary.outcomes.copy()
    outcomes["channel"] = [words.contact(c) for c in outcomes["channel"]]
    outcomes["outcome"] = [words.outcome(o) for o in outcomes["outcome"]]
    paths = _path_words(summary.paths, words)
    followups = summary.followups.copy()
    followups["channel"] = [words.contact(c) for c in followups["channel"]]
    followups["outcome"] = [words.outcome(o) for o in followups["outcome"]]
    followup_paths = _path_words(summary.followup_paths, words)
    return dataclasses.replace(
        summary, funnel=nodes(summary.funnel), choices=nodes(choices), channels=nodes(channels),
        time=nodes(summary.time), outcomes=outcomes, paths=paths, followups=followups,
        followup_paths=followup_paths)

