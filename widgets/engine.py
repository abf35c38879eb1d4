"""Where a visitor is in the guide: the path taken, what is shown now, what may be chosen.

Pure Python: no ipywidgets, no I/O, nothing of the interaction log. The view asks the engine
what to show and tells it what the visitor did; the engine reports every interaction as a plain
:class:`Transition` (what happened, at which node, which option, in which language: ids only,
never text) to an optional ``on_transition`` callback. ``widgets/eventlog.py`` turns transitions
into the log's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from . import followup
from .flow import LANGUAGES, Flow, Node, Text, default_flow
from .flow.loader import OUTCOME_KEYS  # the key of each outcome's label among the ui texts
from .vocabulary import ACTIONS, OUTCOMES as OUTCOME_IDS, UNSOLVED

__all__ = ["ACTIONS", "OUTCOME_KEYS", "Engine", "EngineError", "Interaction",
           "Progress", "Step", "Transition"]



@dataclass(frozen=True, slots=True)
class Transition:
    """What the visitor did (or was shown): an action of :data:`ACTIONS` at ``node``, with the
    ``option`` it took (an option or outcome id, or None), in the language ``lang``. Ids only."""

    action: str
    node: str
    option: str | None
    lang: str


#: What the engine reports (the former name).
Interaction = Transition


class EngineError(ValueError):
    """An action that is not possible at the current step (e.g. an unknown option)."""


@dataclass(frozen=True)
class Step:
    """A node on the visitor's path and the option chosen there (None while it is current)."""

    node: str
    choice: str | None = None


@dataclass(frozen=True)
class Progress:
    step: int
    total: int

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0


class Engine:
    """The state of one visitor's walk through a :class:`Flow`.

    >>> engine = Engine(lang="en")
    >>> engine.node.id
    'problem'
    >>> engine.choose("refund").id
    'ready'
    >>> engine.back().id, engine.selected
    ('problem', 'refund')

    ``on_transition`` receives every interaction as a :class:`Transition` (ids only). The
    engine knows nothing of the visit beyond its walk: widgets/eventlog.py's adapters stamp the
    transitions with the visit's session id and time, as the log's events.
    """

    def __init__(self, flow: Flow | None = None, lang: str = "ko", *,
                 on_transition: Callable[[Transition], None] | None = None):
        self.flow = flow if flow is not None else default_flow()
        self._check_lang(lang)
        self.lang = lang
        #: Receives every interaction as a :class:`Transition`.
        self.on_transition = on_transition
        # Until the first screen is reported (start, go_to) nothing has been shown: a language
        # set then is the one the visit starts in, not a switch.
        self._shown = False
        self._steps: list[Step] = [Step(self.flow.start)]
        #: The node shown now (kept in step with the path: see :meth:`_entered`).
        self.node: Node = self.flow[self.flow.start]
        # The option last chosen at each node, so Back and revisits show it preselected.
        self._remembered: dict[str, str] = {}
        self.outcome: str | None = None
        #: On a visit that came back with the return link: the earlier visit's answers it
        #: carried (decision id → option id, validated against the flow); None otherwise.
        self.recalled: dict[str, str] | None = None
        #: True once that visit said it is not solved (:data:`UNSOLVED`): the message then asks
        #: for a supervisor.
        self.unsolved = False

    # ---------------------------------------------------------------- reading the state

    @property
    def path(self) -> tuple[str, ...]:
        """Node ids from the start to the current node."""
        return tuple(step.node for step in self._steps)

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps)

    @property
    def choices(self) -> Mapping[str, str]:
        """The option chosen at each decision on the current path."""
        return {s.node: s.choice for s in self._steps[:-1] if s.choice is not None}

    @property
    def finished(self) -> bool:
        return self.node.kind == "end"

    @property
    def can_go_back(self) -> bool:
        return len(self._steps) > 1

    @property
    def selected(self) -> str | None:
        """The option to show preselected at the current node (the one chosen last time)."""
        return self._remembered.get(self.node.id)

    def text(self, text: Text | None) -> str:
        """``text`` in the current language ('' for None)."""
        return text(self.lang) if text is not None else ""

    def ui(self, key: str, **fields: object) -> str:
        """An interface text (button label, notice…) in the current language."""
        value = self.flow.ui[key](self.lang)
        return value.format(**fields) if fields else value

    def outcome_label(self, outcome: str) -> str:
        """How it went (an id of ``vocabulary.OUTCOMES``), in the flow's words and the current
        language."""
        return self.ui(OUTCOME_KEYS[outcome])

    def options(self) -> list[tuple[str, str]]:
        """(option id, label) pairs for the current node, in the current language."""
        return [(option.id, option.label(self.lang)) for option in self.node.options]

    def where(self, option_id: str) -> str:
        """The node that choosing ``option_id`` here leads to (without choosing it)."""
        option = self._option(option_id)
        return option.next.resolve({**self.choices, self.node.id: option.id})

    def progress(self) -> Progress:
        """Current step number, and the total: steps taken plus the longest way to the end
        from here. The total never grows as the visitor moves forward (an answer can only
        shorten the longest way left), so "step 2 of 9" is never followed by "step 3 of 11"."""
        step = len(self._steps)
        return Progress(step=step, total=step + self._remaining(self.node.id, dict(self.choices)))

    def recap(self) -> list[str]:
        """The checklist for the path taken: the recap lines of its nodes, each followed by
        that of the option chosen there."""
        lines: list[str] = []
        for step in self._steps:
            node = self.flow[step.node]
            if node.recap is not None:
                lines.append(node.recap(self.lang))
            if step.choice is not None:
                option = node.option(step.choice)
                if option.recap is not None:
                    lines.append(option.recap(self.lang))
        return lines

    @property
    def asks_followup(self) -> bool:
        """Whether the guide asks how it went: only on a visit that came back with the return
        link (after contact), never on the way to contacting Amazon."""
        return self.recalled is not None

    def followup_code(self) -> str | None:
        """The return link's value for the path taken (ids only), once it holds the answers of
        a complete path at the ``subject`` and ``contact`` decisions; else None."""
        return followup.encode(self.flow, self.choices)

    def covered(self) -> set[str]:
        """Outline ids whose content the visitor has been shown on the current path."""
        return {oid for node_id in self.path for oid in self.flow[node_id].covers}

    # ---------------------------------------------------------------- acting

    def start(self) -> Node:
        """Report the first screen (call once when the guide is first shown)."""
        self._entered()
        return self.node

    def choose(self, option_id: str) -> Node:
        """Take ``option_id`` at the current decision and move to where it leads."""
        node = self.node
        if node.kind != "choice":
            raise EngineError(f"{node.id!r} is not a decision; use advance()")
        target = self.where(option_id)
        self._emit(node.id, "choose", option_id)
        self._remembered[node.id] = option_id
        self._steps[-1] = Step(node.id, option_id)
        self._steps.append(Step(target))
        self._entered()
        return self.node

    def advance(self) -> Node:
        """Go on from an information step to the next one."""
        node = self.node
        if node.kind != "info":
            raise EngineError(f"{node.id!r} is not an information step; use choose()")
        assert node.next is not None
        target = node.next.resolve(self.choices)
        self._emit(node.id, "next", None)
        self._steps.append(Step(target))
        self._entered()
        return self.node

    def back(self) -> Node:
        """Go back one step; the choice made there stays preselected (see :attr:`selected`)."""
        if not self.can_go_back:
            raise EngineError("already at the first step")
        self._emit(self.node.id, "back", None)
        self._steps.pop()
        previous = self._steps[-1]
        self._steps[-1] = Step(previous.node)
        self._entered()
        return self.node

    def restart(self) -> Node:
        """Back to the first screen with a clean slate (language kept)."""
        self._emit(self.node.id, "restart", None)
        self._steps = [Step(self.flow.start)]
        self._remembered.clear()
        self.outcome = None
        self.recalled = None
        self.unsolved = False
        self._entered()
        return self.node

    def set_language(self, lang: str) -> None:
        """Show the same step, with the same path, in another language."""
        self._check_lang(lang)
        if lang == self.lang:
            return
        self.lang = lang
        if self._shown:
            self._emit(self.node.id, "language", None)

    def record_outcome(self, outcome: str) -> None:
        """Say how it went (one of ``vocabulary.OUTCOMES``), at a step whose node has the role
        ``outcome`` (in the packaged flow: the end); the last answer counts."""
        if "outcome" not in self.node.roles:
            raise EngineError(f"how it went is not asked at {self.node.id!r} (no 'outcome' role)")
        if outcome not in OUTCOME_IDS:
            raise EngineError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOME_IDS)}")
        self.outcome = outcome
        self._emit(self.node.id, "outcome", outcome)

    def recall(self, answers: Mapping[str, str]) -> None:
        """Start a visit that came back with the return link: ``answers`` are the earlier
        visit's answers it carried (validated here against the flow; see widgets/followup.py).
        Each is logged as a ``recall`` event (ids only), so that the outcome given next counts
        for that problem and channel. The guide then asks how it went."""
        code = ",".join(f"{node}:{option}" for node, option in answers.items())
        valid = followup.decode(self.flow, code)
        if valid is None:
            raise EngineError("the answers of the earlier visit do not fit the flow")
        self.recalled = valid
        self.outcome = None
        self.unsolved = False
        for node, option in valid.items():
            self._emit(node, "recall", option)

    def record_followup(self, outcome: str) -> None:
        """Say how it went (one of ``vocabulary.OUTCOMES``), on a visit that came back with the
        return link; logged as a ``followup`` event. An answer in :data:`UNSOLVED` leads
        straight to the advice for when the agent could not help (the node with the role
        ``escalation``), on the earlier visit's path."""
        if self.recalled is None:
            raise EngineError("how it went is asked only on a visit that came back after contact")
        if outcome not in OUTCOME_IDS:
            raise EngineError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOME_IDS)}")
        self.outcome = outcome
        self._emit(self.node.id, "followup", outcome)
        self.unsolved = outcome in UNSOLVED
        escalation = self.flow.role_nodes("escalation")
        if self.unsolved and escalation and self.node.id != escalation[0]:
            self.go_to(escalation[0], along=self.recalled)

    def go_to(self, node_id: str, along: Mapping[str, str] | None = None) -> Node:
        """Jump to ``node_id`` along a valid path from the start (the shortest, first options
        first; with ``along``, one that takes those answers if there is one), as if the
        visitor had walked it. Used for links that open a given step."""
        if node_id not in self.flow.nodes:
            raise EngineError(f"unknown step {node_id!r}")
        candidates = [p for p in self.flow.paths if any(n == node_id for n, _ in p)]
        if along:
            wanted = set(along.items())
            fitting = [p for p in candidates if wanted <= {(n, o) for n, o in p}]
            candidates = fitting or candidates
        path = min(candidates, key=lambda p: [n for n, _ in p].index(node_id))
        steps = []
        for step_node, choice in path:
            if step_node == node_id:
                break
            steps.append(Step(step_node, choice))
            if choice is not None:
                self._remembered[step_node] = choice
        self._steps = steps + [Step(node_id)]
        self._entered()
        return self.node

    # ---------------------------------------------------------------- internals

    def _option(self, option_id: str):
        try:
            return self.node.option(option_id)
        except KeyError:
            raise EngineError(
                f"{self.node.id!r} has no option {option_id!r}; "
                f"expected one of {list(self.node.option_ids)}") from None

    def _remaining(self, node_id: str, choices: dict[str, str]) -> int:
        node = self.flow[node_id]
        if node.kind == "end":
            return 0
        if node.kind == "info":
            assert node.next is not None
            return 1 + self._remaining(node.next.resolve(choices), choices)
        return 1 + max(
            self._remaining(o.next.resolve({**choices, node_id: o.id}), {**choices, node_id: o.id})
            for o in node.options)

    def _entered(self) -> None:
        self.node = self.flow[self._steps[-1].node]
        self._shown = True
        self._emit(self.node.id, "enter", None)
        if self.finished:
            self._emit(self.node.id, "finish", None)

    def _emit(self, node: str, action: str, option: str | None) -> None:
        if self.on_transition is not None:
            self.on_transition(Transition(action, node, option, self.lang))

    @staticmethod
    def _check_lang(lang: str) -> None:
        if lang not in LANGUAGES:
            raise EngineError(f"unknown language {lang!r}; expected one of {list(LANGUAGES)}")
