"""The guide's content as immutable data: a :class:`Flow` of :class:`Node` steps, their
options and routes, the phrases to say, the glossary, and the texts of the message builder and
the case notes (:class:`MessageTexts`, :class:`CaseNotesTexts`); and :class:`FlowError`, which
every problem found while loading a flow file raises.

Pure Python; the loader (:mod:`widgets.flow.loader`) builds these from ``flow.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from ..vocabulary import LANGUAGES

KINDS: tuple[str, ...] = ("choice", "info", "end")
WIDGETS: tuple[str, ...] = ("buttons", "dropdown")

#: What a node can be to the code (a node's ``roles:``); flow.yaml's header explains each.
#:   contact  a decision whose answer is the way the visitor contacts Amazon (the channel)
#:   path     a decision whose answer is one dimension of "the path" (outcome by path), in
#:            the flow's node order
#:   subject  the decision whose answer the ready-to-send message opens with (at most one)
#:   message  a step showing the message builder
#:   outcome  (older flow files) a step that asked how it went on the step itself, before the
#:            visitor had contacted Amazon; the guide no longer asks it there
#:   callsheet  a step offering the call sheet (the number, what the visitor wants, their
#:            reference numbers, the lines to say in call order; printable)
#:   followup a step giving the link to come back after contacting Amazon; the visit that
#:            comes back with it asks, with one click, how it went
#:   escalation  the advice for when the agent could not help: where "not solved" leads on
#:            the visit that comes back (at most one)
ROLES: tuple[str, ...] = ("contact", "path", "subject", "message", "outcome", "callsheet",
                          "followup", "escalation")
#: Roles only a decision (a choice node) can have: they are about its answer.
CHOICE_ROLES: frozenset[str] = frozenset({"contact", "path", "subject"})
#: Roles at most one node may have.
SINGLE_ROLES: frozenset[str] = frozenset({"subject", "escalation"})
#: The moments of a conversation with an agent, in call order: a phrase's ``stage``, and what a
#: node's ``say:`` shows. ``phrases_for`` returns phrases in this order (then in file order).
#:   opening     hello, and what it is about
#:   request     what the visitor wants
#:   reference   asking for the agent's name and the reference number
#:   clarify     asking to spell, repeat or simplify
#:   courtesy    the fair-solution and kindness lines
#:   supervisor  asking for a supervisor
#:   confirm     asking to have it in writing
STAGES: tuple[str, ...] = ("opening", "request", "reference", "clarify", "courtesy",
                           "supervisor", "confirm")


class FlowError(ValueError):
    """The flow file is malformed. ``node`` and ``field`` say where (either may be None)."""

    def __init__(self, message: str, node: str | None = None, field: str | None = None,
                 source: str | None = None):
        self.message, self.node, self.field, self.source = message, node, field, source
        where = []
        if source:
            where.append(source)
        if node is not None:
            where.append(f"node {node!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def in_source(self, source: str) -> "FlowError":
        """The same error, naming the file it was found in."""
        return FlowError(self.message, node=self.node, field=self.field, source=source)


@dataclass(frozen=True)
class Text:
    """One piece of text in every language of the guide."""

    ko: str
    en: str

    def __call__(self, lang: str) -> str:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
        return getattr(self, lang)

    def format(self, **values: object) -> "Text":
        """The text with its ``{name}`` fields filled in, in every language."""
        return Text(**{lang: getattr(self, lang).format(**values) for lang in LANGUAGES})


@dataclass(frozen=True)
class Rule:
    """``to`` is taken when every earlier choice named in ``when`` matches (empty: always)."""

    to: str
    when: Mapping[str, frozenset[str]]

    def matches(self, choices: Mapping[str, str]) -> bool:
        return _matches(self.when, choices)


def _matches(when: Mapping[str, frozenset[str]], choices: Mapping[str, str]) -> bool:
    """Whether ``choices`` (decision → option) take one of the allowed options at every
    decision ``when`` names (a ``next`` rule's or a phrase's condition)."""
    return all(choices.get(node) in allowed for node, allowed in when.items())


@dataclass(frozen=True)
class Route:
    """Where to go next: the first rule that matches the choices made so far."""

    rules: tuple[Rule, ...]

    def resolve(self, choices: Mapping[str, str]) -> str:
        for rule in self.rules:
            if rule.matches(choices):
                return rule.to
        raise AssertionError("validated routes end with an unconditional rule")

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(rule.to for rule in self.rules)


@dataclass(frozen=True)
class Phrase:
    """Something to say (or write) to an agent: ``en`` is what to say (the conversation is in
    English), ``ko`` its meaning. ``stage`` is its moment in the call (one of :data:`STAGES`).
    ``when``: the paths it applies to, as alternatives (any one matches; each like a ``next``
    rule's ``when``: decision id → option ids); empty: every path."""

    id: str
    stage: str
    en: str
    ko: str
    when: tuple[Mapping[str, frozenset[str]], ...] = ()

    @property
    def text(self) -> Text:
        return Text(ko=self.ko, en=self.en)

    def applies(self, answers: Mapping[str, str]) -> bool:
        """Whether the phrase fits a path whose answers are ``answers`` (decision → option)."""
        if not self.when:
            return True
        return any(_matches(alternative, answers) for alternative in self.when)


@dataclass(frozen=True)
class Option:
    """One answer of a decision. ``escalate``: choosing it pre-ticks the message's polite
    request for a supervisor. ``weight``: its relative weight in the demo data (default 1)."""

    id: str
    label: Text
    next: Route
    recap: Text | None = None
    escalate: bool = False
    weight: float = 1.0
    #: the sentence the ready-to-send message opens with when this answer is its subject
    opening: Text | None = None
    #: what the message asks for by default after this answer (a want's id, see :class:`Want`)
    want: str | None = None
    #: words (per language) that no text shown later on a path through this answer may use,
    #: because the answer rules out what they speak of (e.g. order records for a problem that
    #: is not about an order); tests/test_content.py checks every path
    rules_out: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    title: Text
    body: Text
    covers: tuple[str, ...]
    widget: str | None = None
    prompt: Text | None = None
    options: tuple[Option, ...] = ()
    next: Route | None = None
    recap: Text | None = None
    #: what the node is to the code (names from :data:`ROLES`)
    roles: frozenset[str] = frozenset()
    #: the demo's chance that a visitor leaves the guide on this node (None: the demo's default)
    drop_off: float | None = None
    #: small print under the body (e.g. what the guide is based on)
    fine_print: Text | None = None
    #: the stages (from :data:`STAGES`) whose phrases the step shows, in call order
    say: tuple[str, ...] = ()

    def option(self, option_id: str) -> Option:
        for option in self.options:
            if option.id == option_id:
                return option
        raise KeyError(option_id)

    @property
    def option_ids(self) -> tuple[str, ...]:
        return tuple(option.id for option in self.options)


@dataclass(frozen=True)
class Term:
    """A glossary entry: the one Korean and the one English word for a thing, and the words
    the guide avoids for it. ``button``: ``en`` is a label on Amazon's (English) site, shown
    as it is in Korean text too, with ``ko`` as its gloss in brackets."""

    id: str
    ko: str
    en: str
    button: bool = False
    avoid: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Want:
    """What a visitor can ask Amazon for in the ready-to-send message (an option's ``want``):
    ``label`` names it in the message builder, ``request`` is the message's sentence asking
    for it."""

    id: str
    label: Text
    request: Text


@dataclass(frozen=True)
class MessageTexts:
    """The texts of the ready-to-send message (flow.yaml's ``messages:``). ``wants``: what a
    visitor can ask for, by id, in the order offered; ``default_want``: the one asked for when
    no answer says otherwise; ``lines``: the message's own lines (see
    :data:`widgets.flow.texts.MESSAGE_LINES`); ``labels``: the builder's controls."""

    wants: Mapping[str, Want]
    default_want: str
    lines: Mapping[str, Text]
    labels: Mapping[str, Text]


@dataclass(frozen=True)
class CaseNotesTexts:
    """The texts of the case notes (flow.yaml's ``casenotes:``): the files' ``title``, the
    column ``headers``, the ways of contact (``channels``, by id, in the order offered), the
    form's ``labels`` and the ``reasons`` a file cannot be loaded."""

    title: Text
    headers: Mapping[str, Text]
    channels: Mapping[str, Text]
    labels: Mapping[str, Text]
    reasons: Mapping[str, Text]


def _packaged(section: str):
    """The packaged flow.yaml's texts of ``section`` (for a flow built without them)."""
    from .texts import packaged_texts

    return getattr(packaged_texts(), section)


@dataclass(frozen=True)
class Flow:
    """The whole guide: nodes by id, the start node, the outline ids, the interface texts, the
    glossary, the phrases to say, and the texts of the message and of the case notes."""

    start: str
    nodes: Mapping[str, Node]
    outline: tuple[str, ...]
    ui: Mapping[str, Text]
    paths: tuple[tuple[tuple[str, str | None], ...], ...]
    glossary: tuple[Term, ...] = ()
    #: the things to say to an agent, in file order (see :meth:`phrases_for`)
    phrases: tuple[Phrase, ...] = ()
    #: the ready-to-send message's texts (a flow file without them: the packaged ones)
    messages: MessageTexts = field(default_factory=lambda: _packaged("messages"))
    #: the case notes' texts (a flow file without them: the packaged ones)
    casenotes: CaseNotesTexts = field(default_factory=lambda: _packaged("casenotes"))

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    @property
    def ends(self) -> tuple[str, ...]:
        return tuple(node.id for node in self if node.kind == "end")

    @property
    def decisions(self) -> tuple[str, ...]:
        return tuple(node.id for node in self if node.kind == "choice")

    def covered(self) -> frozenset[str]:
        """Outline ids covered by at least one node."""
        return frozenset(oid for node in self for oid in node.covers)

    def role_nodes(self, role: str) -> tuple[str, ...]:
        """Ids of the nodes with ``role`` (one of :data:`ROLES`), in the flow's node order."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        return tuple(node.id for node in self if role in node.roles)

    def phrases_for(self, answers: Mapping[str, str],
                    stages: Iterable[str] | None = None) -> list[Phrase]:
        """The phrases that apply to a path whose answers are ``answers`` (decision id → option
        id, e.g. ``Engine.choices``), limited to ``stages`` (default: all), in call order: by
        stage (:data:`STAGES`' order), then in the file's order."""
        wanted = set(STAGES if stages is None else stages)
        unknown = wanted - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stage {sorted(unknown)[0]!r}; expected one of {STAGES}")
        order = {stage: i for i, stage in enumerate(STAGES)}
        chosen = [(order[p.stage], i, p) for i, p in enumerate(self.phrases)
                  if p.stage in wanted and p.applies(answers)]
        return [p for _, _, p in sorted(chosen, key=lambda t: t[:2])]

    def escalates(self, choices: Mapping[str, str]) -> bool:
        """Whether an answer among ``choices`` (node id → option id) is marked ``escalate``."""
        for node_id, option_id in choices.items():
            node = self.nodes.get(node_id)
            if node is not None and any(o.id == option_id and o.escalate for o in node.options):
                return True
        return False


