"""Load and validate the guide's content (``flow.yaml``) into an immutable :class:`Flow`.

Every problem found at load time raises :class:`FlowError`, whose message names the node and the
field at fault, e.g. ``node 'phone', field 'options[1].next': unknown node 'hepl'``.

This module is pure Python (PyYAML and the standard library); it never imports ipywidgets.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

import yaml

from .vocabulary import ID_PATTERN, LANGUAGES

KINDS: tuple[str, ...] = ("choice", "info", "end")
WIDGETS: tuple[str, ...] = ("buttons", "dropdown")
DEFAULT_PATH = Path(__file__).with_name("flow.yaml")
#: The environment variable naming another flow file to use instead of the packaged one.
FLOW_ENV = "GUIDE_FLOW"
UI_KEYS: tuple[str, ...] = (
    "site_title", "subtitle", "language", "back", "back_hint", "restart", "restart_hint", "next",
    "continue", "placeholder", "progress", "recap_title", "error", "log_notice",
    "link_language", "link_step", "offline", "offline_reach", "reload",
)
#: Interface texts a flow may leave out (the view then shows no such heading):
#:   say_title  the heading over the phrases to say (a node's ``say:``)
#:   outcome_question  how did it go, asked on a step (older flows, the role ``outcome``)
#:   language_name, language_show  the language switch: each language's name and tooltip,
#:              each in its own language (the packaged flow's when a flow has none)
#: Interface texts a flow needs once a node has a role (older flow files, without the role,
#: may leave them out):
#:   callsheet  the call sheet's toggle, headings, the number and the way online, print button
#:   followup   the return link and the visit that comes back with it (how did it go?)
ROLE_UI_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "callsheet": ("callsheet_open", "callsheet_close", "callsheet_title", "callsheet_intro",
                  "callsheet_reach", "callsheet_want", "callsheet_notes", "callsheet_say",
                  "callsheet_print"),
    "followup": ("followup_intro", "followup_link", "followup_file", "followup_question",
                 "followup_earlier", "followup_thanks", "followup_unsolved", "link_followup",
                 "outcome_solved", "outcome_partly", "outcome_not_yet", "outcome_escalated"),
})
OPTIONAL_UI_KEYS: tuple[str, ...] = ("say_title", "outcome_question", "language_name",
                                     "language_show") + tuple(
    key for keys in ROLE_UI_KEYS.values() for key in keys)

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
#: What a visitor can ask Amazon for in the ready-to-send message (an option's ``want``).
WANTS: tuple[str, ...] = ("return", "refund", "replacement", "credit", "information")
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
    #: what the message asks for by default after this answer (one of :data:`WANTS`)
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
class Flow:
    """The whole guide: nodes by id, the start node, the outline ids, the interface texts and
    the glossary."""

    start: str
    nodes: Mapping[str, Node]
    outline: tuple[str, ...]
    ui: Mapping[str, Text]
    paths: tuple[tuple[tuple[str, str | None], ...], ...]
    glossary: tuple[Term, ...] = ()
    #: the things to say to an agent, in file order (see :meth:`phrases_for`)
    phrases: tuple[Phrase, ...] = ()

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


# --------------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise FlowError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_flow(path: str | Path | None = None) -> Flow:
    """Read, validate and freeze a flow file (the packaged ``flow.yaml`` by default)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"cannot read the flow file: {exc}", source=str(path)) from exc
    return parse_flow(text, source=str(path))


@cache
def default_flow() -> Flow:
    """The guide's flow, loaded and validated once per process: the file the environment
    variable ``GUIDE_FLOW`` names, else the packaged flow.yaml."""
    return load_flow(os.environ.get(FLOW_ENV) or DEFAULT_PATH)


def parse_flow(text: str, source: str = "<flow>") -> Flow:
    """Validate flow data given as YAML (or JSON) text."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FlowError as exc:
        raise exc.in_source(source) from None
    except yaml.YAMLError as exc:
        raise FlowError(f"not valid YAML: {exc}", source=source) from None
    try:
        return build_flow(data)
    except FlowError as exc:
        raise exc.in_source(source) from None


def build_flow(data: Any) -> Flow:
    """Validate already-parsed flow data (a mapping) and freeze it into a :class:`Flow`."""
    if not isinstance(data, Mapping):
        raise FlowError("the flow must be a mapping with 'start', 'outline', 'ui' and 'nodes'")
    unknown = set(data) - {"version", "start", "outline", "ui", "nodes", "glossary", "phrases"}
    if unknown:
        raise FlowError(f"unknown top-level keys {sorted(unknown)}", field=sorted(unknown)[0])
    if data.get("version") != 1:
        raise FlowError(f"unsupported version {data.get('version')!r}; expected 1", field="version")

    outline = data.get("outline")
    if not isinstance(outline, list) or not outline:
        raise FlowError("must be a non-empty list of outline ids", field="outline")
    for i, oid in enumerate(outline):
        if not isinstance(oid, str) or not ID_PATTERN.fullmatch(oid):
            raise FlowError(f"{oid!r} is not a valid id", field=f"outline[{i}]")
    if len(set(outline)) != len(outline):
        raise FlowError("lists an outline id twice", field="outline")

    ui_data = data.get("ui")
    if not isinstance(ui_data, Mapping):
        raise FlowError("must be a mapping of interface texts", field="ui")
    ui = {}
    for key in UI_KEYS:
        if key not in ui_data:
            raise FlowError("missing interface text", field=f"ui.{key}")
        ui[key] = _text(ui_data[key], None, f"ui.{key}")
    for key in OPTIONAL_UI_KEYS:
        if key in ui_data:
            ui[key] = _text(ui_data[key], None, f"ui.{key}")
    extra = set(ui_data) - set(UI_KEYS) - set(OPTIONAL_UI_KEYS)
    if extra:
        raise FlowError("unknown interface text", field=f"ui.{sorted(extra)[0]}")

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise FlowError("must be a non-empty list of nodes", field="nodes")
    nodes: dict[str, Node] = {}
    for i, raw in enumerate(raw_nodes):
        node = _node(raw, i, set(outline))
        if node.id in nodes:
            raise FlowError("duplicate node id", node=node.id, field="id")
        nodes[node.id] = node

    start = data.get("start")
    if start not in nodes:
        raise FlowError(f"unknown start node {start!r}", field="start")

    _check_references(nodes)
    _check_roles(nodes)
    for role, keys in ROLE_UI_KEYS.items():
        holder = next((node.id for node in nodes.values() if role in node.roles), None)
        missing = [key for key in keys if key not in ui]
        if holder is not None and missing:
            raise FlowError(f"missing interface text (needed by the role {role!r} of node "
                            f"{holder!r})", field=f"ui.{missing[0]}")
    phrases = _phrases(data.get("phrases", []), nodes)
    paths = _enumerate_paths(nodes, start)
    seen = {node_id for path in paths for node_id, _ in path}
    for node_id in nodes:
        if node_id not in seen:
            raise FlowError("unreachable from the start node", node=node_id, field="id")
    covered = {oid for node in nodes.values() for oid in node.covers}
    for oid in outline:
        if oid not in covered:
            raise FlowError(f"outline id {oid!r} is covered by no node", field="outline")

    return Flow(
        start=start,
        nodes=MappingProxyType(nodes),
        outline=tuple(outline),
        ui=MappingProxyType(ui),
        paths=tuple(paths),
        glossary=_glossary(data.get("glossary", [])),
        phrases=phrases,
    )


def _entries(raw: Any, field: str, what: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The mappings of the top-level list ``field`` (``what``: what one is, e.g. "phrase"),
    each with where it stands (``field[i]``)."""
    if not isinstance(raw, list):
        raise FlowError(f"must be a list of {what}s", field=field)
    for i, entry in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(entry, Mapping):
            raise FlowError(f"each {what} must be a mapping", field=where)
        yield where, entry


def _phrases(raw: Any, nodes: Mapping[str, Node]) -> tuple[Phrase, ...]:
    """The ``phrases:`` list. Errors name the phrase (by id) and the field."""
    phrases: list[Phrase] = []
    for where, entry in _entries(raw, "phrases", "phrase"):
        pid = entry.get("id")
        if not isinstance(pid, str) or not ID_PATTERN.fullmatch(pid):
            raise FlowError(f"missing or invalid phrase id {pid!r}", field=f"{where}.id")
        where = f"phrases.{pid}"
        extra = set(entry) - {"id", "stage", "when", "en", "ko"}
        if extra:
            raise FlowError(f"unknown key {sorted(extra)[0]!r}", field=f"{where}.{sorted(extra)[0]}")
        if pid in {p.id for p in phrases}:
            raise FlowError(f"duplicate phrase id {pid!r}", field=f"{where}.id")
        stage = entry.get("stage")
        if stage not in STAGES:
            raise FlowError(f"unknown stage {stage!r}; expected one of {STAGES}",
                            field=f"{where}.stage")
        words = {}
        for lang in LANGUAGES:
            value = entry.get(lang)
            if not isinstance(value, str) or not value.strip():
                raise FlowError(f"missing or empty {lang!r} text", field=f"{where}.{lang}")
            words[lang] = " ".join(value.split())
        when_raw = entry.get("when", [])
        alternatives = [when_raw] if isinstance(when_raw, Mapping) else when_raw
        if not isinstance(alternatives, list) or (when_raw != [] and not alternatives):
            raise FlowError("must map decision ids to option ids (or be a list of such maps)",
                            field=f"{where}.when")
        when = []
        for j, alternative in enumerate(alternatives):
            at = f"{where}.when" if isinstance(when_raw, Mapping) else f"{where}.when[{j}]"
            if isinstance(alternative, Mapping) and not alternative:
                raise FlowError("must map decision ids to option ids", field=at)
            parsed = _when(alternative, None, at)
            _check_when(parsed, nodes, None, at)
            when.append(MappingProxyType(parsed))
        phrases.append(Phrase(id=pid, stage=stage, when=tuple(when), **words))
    staged = {p.stage for p in phrases}
    for node in nodes.values():
        for i, stage in enumerate(node.say):
            if stage not in STAGES:
                raise FlowError(f"unknown stage {stage!r}; expected one of {STAGES}",
                                node=node.id, field=f"say[{i}]")
            if stage not in staged:
                raise FlowError(f"no phrase has the stage {stage!r}", node=node.id,
                                field=f"say[{i}]")
    return tuple(phrases)


def _glossary(raw: Any) -> tuple[Term, ...]:
    terms: list[Term] = []
    for where, entry in _entries(raw, "glossary", "term"):
        extra = set(entry) - {"id", "ko", "en", "button", "avoid"}
        if extra:
            raise FlowError(f"unknown key {sorted(extra)[0]!r}", field=f"{where}.{sorted(extra)[0]}")
        tid = entry.get("id")
        if not isinstance(tid, str) or not ID_PATTERN.fullmatch(tid):
            raise FlowError(f"missing or invalid term id {tid!r}", field=f"{where}.id")
        if tid in {t.id for t in terms}:
            raise FlowError(f"duplicate term id {tid!r}", field=f"{where}.id")
        words = {}
        for lang in LANGUAGES:
            value = entry.get(lang)
            if not isinstance(value, str) or not value.strip():
                raise FlowError(f"missing or empty {lang!r} word", field=f"{where}.{lang}")
            words[lang] = value.strip()
        button = entry.get("button", False)
        if not isinstance(button, bool):
            raise FlowError(f"must be true or false, not {button!r}", field=f"{where}.button")
        avoid_raw = entry.get("avoid", {})
        if not isinstance(avoid_raw, Mapping) or set(avoid_raw) - set(LANGUAGES):
            raise FlowError("must map a language (ko, en) to a list of words",
                            field=f"{where}.avoid")
        avoid = {}
        for lang, avoided in avoid_raw.items():
            if not isinstance(avoided, list) or not all(
                    isinstance(a, str) and a.strip() for a in avoided):
                raise FlowError("must be a list of words", field=f"{where}.avoid.{lang}")
            avoid[lang] = tuple(a.strip() for a in avoided)
        terms.append(Term(id=tid, button=button, avoid=MappingProxyType(avoid), **words))
    return tuple(terms)


def _text(raw: Any, node: str | None, field: str) -> Text:
    if not isinstance(raw, Mapping):
        raise FlowError("must give the text in every language (ko, en)", node=node, field=field)
    extra = set(raw) - set(LANGUAGES)
    if extra:
        raise FlowError(f"unknown language {sorted(extra)[0]!r}", node=node, field=field)
    values = {}
    for lang in LANGUAGES:
        value = raw.get(lang)
        if not isinstance(value, str) or not value.strip():
            raise FlowError(f"missing or empty {lang!r} translation", node=node,
                            field=f"{field}.{lang}")
        values[lang] = value.strip()
    return Text(**values)


def _when(raw: Any, node: str | None, field: str) -> dict[str, frozenset[str]]:
    """A ``when`` condition (decision id → option ids) as written; what it names is checked
    against the nodes by :func:`_check_when`."""
    if not isinstance(raw, Mapping):
        raise FlowError("'when' must map decision ids to option ids", node=node, field=field)
    when = {}
    for decision, allowed in raw.items():
        allowed = [allowed] if isinstance(allowed, str) else allowed
        if not isinstance(allowed, list) or not allowed or not all(
                isinstance(a, str) for a in allowed):
            raise FlowError("expects an option id or a list of them", node=node,
                            field=f"{field}.{decision}")
        when[decision] = frozenset(allowed)
    return when


def _check_when(when: Mapping[str, frozenset[str]], nodes: Mapping[str, Node],
                node: str | None, field: str) -> None:
    """Every decision ``when`` names is a decision node, and every option one of its own."""
    for decision, allowed in when.items():
        target = nodes.get(decision) if isinstance(decision, str) else None
        if target is None or target.kind != "choice":
            raise FlowError(f"{decision!r} is not a decision node", node=node, field=field)
        unknown = allowed - set(target.option_ids)
        if unknown:
            raise FlowError(f"{decision!r} has no option {sorted(unknown)[0]!r}", node=node,
                            field=f"{field}.{decision}")


def _route(raw: Any, node: str, field: str, decisions: Mapping[str, Any] | None = None) -> Route:
    if isinstance(raw, str):
        return Route((Rule(to=raw, when=MappingProxyType({})),))
    if not isinstance(raw, list) or not raw:
        raise FlowError("must be a node id or a non-empty list of rules", node=node, field=field)
    rules = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("to"), str):
            raise FlowError("a rule needs 'to: <node id>'", node=node, field=where)
        extra = set(item) - {"to", "when"}
        if extra:
            raise FlowError(f"unknown key {sorted(extra)[0]!r} in a rule", node=node, field=where)
        when = _when(item.get("when", {}), node, f"{where}.when")
        last = i == len(raw) - 1
        if last and when:
            raise FlowError("the last rule must have no 'when' (the default)", node=node,
                            field=where)
        if not last and not when:
            raise FlowError("only the last rule may have no 'when'", node=node, field=where)
        rules.append(Rule(to=item["to"], when=MappingProxyType(when)))
    return Route(tuple(rules))


def _node(raw: Any, index: int, outline: set[str]) -> Node:
    if not isinstance(raw, Mapping):
        raise FlowError("each node must be a mapping", field=f"nodes[{index}]")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not ID_PATTERN.fullmatch(node_id):
        raise FlowError(f"missing or invalid node id {node_id!r}", field=f"nodes[{index}].id")
    allowed = {"id", "kind", "widget", "covers", "title", "body", "prompt", "options", "next",
               "recap", "roles", "drop_off", "fine_print", "say"}
    extra = set(raw) - allowed
    if extra:
        raise FlowError(f"unknown key {sorted(extra)[0]!r}", node=node_id, field=sorted(extra)[0])
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FlowError(f"kind must be one of {KINDS}, not {kind!r}", node=node_id, field="kind")

    covers = raw.get("covers", [])
    if not isinstance(covers, list):
        raise FlowError("must be a list of outline ids", node=node_id, field="covers")
    for i, oid in enumerate(covers):
        if oid not in outline:
            raise FlowError(f"unknown outline id {oid!r}", node=node_id, field=f"covers[{i}]")

    fields: dict[str, Any] = dict(
        id=node_id, kind=kind, covers=tuple(covers),
        title=_text(raw.get("title"), node_id, "title"),
        body=_text(raw.get("body"), node_id, "body"),
    )
    if "recap" in raw:
        fields["recap"] = _text(raw["recap"], node_id, "recap")
    if "fine_print" in raw:
        fields["fine_print"] = _text(raw["fine_print"], node_id, "fine_print")
    fields["roles"] = _roles(raw.get("roles", []), node_id, kind)
    say = raw.get("say", [])
    if not isinstance(say, list) or not all(isinstance(stage, str) for stage in say):
        raise FlowError(f"must be a list of stages from {STAGES}", node=node_id, field="say")
    if len(set(say)) != len(say):
        raise FlowError("lists a stage twice", node=node_id, field="say")
    fields["say"] = tuple(say)
    if "drop_off" in raw:
        value = raw["drop_off"]
        if not _is_number(value) or not 0 <= value < 1:
            raise FlowError(f"must be a probability from 0 to below 1, not {value!r}",
                            node=node_id, field="drop_off")
        fields["drop_off"] = float(value)

    if kind == "choice":
        widget = raw.get("widget", "buttons")
        if widget not in WIDGETS:
            raise FlowError(f"widget must be one of {WIDGETS}, not {widget!r}", node=node_id,
                            field="widget")
        if "next" in raw:
            raise FlowError("a choice node routes through its options, not 'next'",
                            node=node_id, field="next")
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            raise FlowError("a choice node needs at least one option (no way forward)",
                            node=node_id, field="options")
        options = []
        for i, opt in enumerate(raw_options):
            where = f"options[{i}]"
            if not isinstance(opt, Mapping):
                raise FlowError("each option must be a mapping", node=node_id, field=where)
            extra = set(opt) - {"id", "label", "next", "recap", "escalate", "weight",
                                "opening", "want", "rules_out"}
            if extra:
                raise FlowError(f"unknown key {sorted(extra)[0]!r}", node=node_id,
                                field=f"{where}.{sorted(extra)[0]}")
            oid = opt.get("id")
            if not isinstance(oid, str) or not ID_PATTERN.fullmatch(oid):
                raise FlowError(f"missing or invalid option id {oid!r}", node=node_id,
                                field=f"{where}.id")
            if oid in {o.id for o in options}:
                raise FlowError(f"duplicate option id {oid!r}", node=node_id,
                                field=f"{where}.id")
            if "next" not in opt:
                raise FlowError("an option needs 'next' (no way forward)", node=node_id,
                                field=f"{where}.next")
            escalate = opt.get("escalate", False)
            if not isinstance(escalate, bool):
                raise FlowError(f"must be true or false, not {escalate!r}", node=node_id,
                                field=f"{where}.escalate")
            weight = opt.get("weight", 1)
            if not _is_number(weight) or not weight > 0:
                raise FlowError(f"must be a positive number, not {weight!r}", node=node_id,
                                field=f"{where}.weight")
            want = opt.get("want")
            if want is not None and want not in WANTS:
                raise FlowError(f"must be one of {WANTS}, not {want!r}", node=node_id,
                                field=f"{where}.want")
            options.append(Option(
                id=oid,
                label=_text(opt.get("label"), node_id, f"{where}.label"),
                next=_route(opt["next"], node_id, f"{where}.next"),
                recap=_text(opt["recap"], node_id, f"{where}.recap") if "recap" in opt else None,
                escalate=escalate,
                weight=float(weight),
                opening=(_text(opt["opening"], node_id, f"{where}.opening")
                         if "opening" in opt else None),
                want=want,
                rules_out=_words(opt.get("rules_out", {}), node_id, f"{where}.rules_out"),
            ))
        fields.update(widget=widget, options=tuple(options),
                      prompt=_text(raw.get("prompt"), node_id, "prompt"))
    elif kind == "info":
        for key in ("options", "widget", "prompt"):
            if key in raw:
                raise FlowError(f"an info node has no {key!r}", node=node_id, field=key)
        if "next" not in raw:
            raise FlowError("an info node needs 'next' (no way forward)", node=node_id,
                            field="next")
        fields["next"] = _route(raw["next"], node_id, "next")
    else:  # end
        for key in ("options", "widget", "prompt", "next"):
            if key in raw:
                raise FlowError(f"an end node has no {key!r}", node=node_id, field=key)
    return Node(**fields)


def _words(raw: Any, node: str, field: str) -> Mapping[str, tuple[str, ...]]:
    """A mapping of language (ko, en) → a list of words."""
    if not isinstance(raw, Mapping) or set(raw) - set(LANGUAGES):
        raise FlowError("must map a language (ko, en) to a list of words", node=node,
                        field=field)
    words = {}
    for lang, listed in raw.items():
        if not isinstance(listed, list) or not all(isinstance(x, str) and x.strip()
                                                   for x in listed):
            raise FlowError("must be a list of words", node=node, field=f"{field}.{lang}")
        words[lang] = tuple(x.strip() for x in listed)
    return MappingProxyType(words)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _roles(raw: Any, node: str, kind: str) -> frozenset[str]:
    if not isinstance(raw, list):
        raise FlowError(f"must be a list of role names from {ROLES}", node=node, field="roles")
    for i, role in enumerate(raw):
        if role not in ROLES:
            raise FlowError(f"unknown role {role!r}; expected one of {ROLES}", node=node,
                            field=f"roles[{i}]")
        if role in CHOICE_ROLES and kind != "choice":
            raise FlowError(f"only a decision (kind: choice) can have the role {role!r}",
                            node=node, field=f"roles[{i}]")
        if role in raw[:i]:
            raise FlowError(f"lists the role {role!r} twice", node=node, field=f"roles[{i}]")
    return frozenset(raw)


def _check_roles(nodes: Mapping[str, Node]) -> None:
    for role in sorted(SINGLE_ROLES):
        holders = [node.id for node in nodes.values() if role in node.roles]
        if len(holders) > 1:
            raise FlowError(f"the role {role!r} is already on node {holders[0]!r}; at most one "
                            "node may have it", node=holders[1], field="roles")
    for node in nodes.values():
        if "subject" in node.roles:
            continue
        for i, option in enumerate(node.options):
            for key in ("opening", "want"):
                if getattr(option, key) is not None:
                    raise FlowError(f"only the options of the decision with the role 'subject' "
                                    f"open the message; {key!r} has no use here", node=node.id,
                                    field=f"options[{i}].{key}")


def _routes(node: Node) -> Iterator[tuple[str, Route]]:
    if node.next is not None:
        yield "next", node.next
    for i, option in enumerate(node.options):
        yield f"options[{i}].next", option.next


def _check_references(nodes: Mapping[str, Node]) -> None:
    for node in nodes.values():
        for route_field, route in _routes(node):
            for i, rule in enumerate(route.rules):
                rule_field = route_field if len(route.rules) == 1 else f"{route_field}[{i}]"
                if rule.to not in nodes:
                    raise FlowError(f"unknown node {rule.to!r}", node=node.id, field=rule_field)
                _check_when(rule.when, nodes, node.id, f"{rule_field}.when")


def _enumerate_paths(nodes: Mapping[str, Node], start: str,
                     limit: int = 100_000) -> list[tuple[tuple[str, str | None], ...]]:
    """Every complete path from ``start``: a tuple of (node id, option chosen or None).

    Raises FlowError on a cycle. The flow is small, so exhaustive enumeration is cheap; ``limit``
    guards against a combinatorial explosion in a malformed file.
    """
    paths: list[tuple[tuple[str, str | None], ...]] = []

    def walk(node_id: str, path: tuple[tuple[str, str | None], ...],
             choices: dict[str, str], via: str) -> None:
        if any(seen == node_id for seen, _ in path):
            raise FlowError(f"leads back to {node_id!r}, making a loop", node=path[-1][0],
                            field=via)
        node = nodes[node_id]
        if node.kind == "end":
            paths.append(path + ((node_id, None),))
            if len(paths) > limit:
                raise FlowError(f"more than {limit} distinct paths", field="nodes")
            return
        if node.kind == "info":
            assert node.next is not None
            walk(node.next.resolve(choices), path + ((node_id, None),), choices, "next")
            return
        for i, option in enumerate(node.options):
            chosen = {**choices, node_id: option.id}
            walk(option.next.resolve(chosen), path + ((node_id, option.id),), chosen,
                 f"options[{i}].next")

    walk(start, (), {}, "start")
    return paths
