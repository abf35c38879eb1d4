"""Load and validate the guide's content (``flow.yaml``) into an immutable
:class:`~widgets.flow.model.Flow`.

Every problem found at load time raises :class:`~widgets.flow.model.FlowError`, whose message
names the node and the field at fault, e.g. ``node 'phone', field 'options[1].next': unknown
node 'hepl'``. This module reads the file, the interface texts (``ui:``), the phrases to say
and the glossary; the steps are read by :mod:`widgets.flow.nodes`, the texts of the message and
the case notes by :mod:`widgets.flow.texts`.

Pure Python (PyYAML and the standard library); it never imports ipywidgets.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from ..vocabulary import ID_PATTERN, LANGUAGES, OUTCOMES
from .model import STAGES, Flow, FlowError, Node, Phrase, Term
from .nodes import check_references, check_roles, enumerate_paths, read_node
from .read import check_when, entries, load_yaml, text_of, when_of
from .texts import SECTIONS, packaged_texts, read_sections

#: The packaged flow file (beside this package, in the ``widgets`` package).
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "flow.yaml"
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
#: The interface texts that a flow file older than them gets from the packaged flow.yaml (once
#: the role checks have passed): the outcome labels (:data:`OUTCOME_KEYS`: the
#: key of each of ``widgets.vocabulary.OUTCOMES``), the outcome question and the language switch's names.
OUTCOME_KEYS: Mapping[str, str] = MappingProxyType(
    {key: "outcome_" + key.replace("-", "_") for key in OUTCOMES})
PACKAGED_UI_KEYS: tuple[str, ...] = (
    *OUTCOME_KEYS.values(), "outcome_question", "language_name", "language_show")
OPTIONAL_UI_KEYS: tuple[str, ...] = ("say_title", "outcome_question", "language_name",
                                     "language_show") + tuple(
    key for keys in ROLE_UI_KEYS.values() for key in keys)


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
        data = load_yaml(text)
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
    unknown = set(data) - {"version", "start", "outline", "ui", "nodes", "glossary", "phrases",
                           *SECTIONS}
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
        ui[key] = text_of(ui_data[key], None, f"ui.{key}")
    for key in OPTIONAL_UI_KEYS:
        if key in ui_data:
            ui[key] = text_of(ui_data[key], None, f"ui.{key}")
    extra = set(ui_data) - set(UI_KEYS) - set(OPTIONAL_UI_KEYS)
    if extra:
        raise FlowError("unknown interface text", field=f"ui.{sorted(extra)[0]}")

    sections = read_sections(data)
    wants = sections["messages"].wants

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise FlowError("must be a non-empty list of nodes", field="nodes")
    nodes: dict[str, Node] = {}
    for i, raw in enumerate(raw_nodes):
        node = read_node(raw, i, set(outline), wants)
        if node.id in nodes:
            raise FlowError("duplicate node id", node=node.id, field="id")
        nodes[node.id] = node

    start = data.get("start")
    if start not in nodes:
        raise FlowError(f"unknown start node {start!r}", field="start")

    check_references(nodes)
    check_roles(nodes)
    for role, keys in ROLE_UI_KEYS.items():
        holder = next((node.id for node in nodes.values() if role in node.roles), None)
        missing = [key for key in keys if key not in ui]
        if holder is not None and missing:
            raise FlowError(f"missing interface text (needed by the role {role!r} of node "
                            f"{holder!r})", field=f"ui.{missing[0]}")
    for key in PACKAGED_UI_KEYS:
        if key not in ui:
            ui[key] = packaged_texts().ui[key]
    phrases = _phrases(data.get("phrases", []), nodes)
    paths = enumerate_paths(nodes, start)
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
        **sections,
    )


def _phrases(raw: Any, nodes: Mapping[str, Node]) -> tuple[Phrase, ...]:
    """The ``phrases:`` list. Errors name the phrase (by id) and the field."""
    phrases: list[Phrase] = []
    for where, entry in entries(raw, "phrases", "phrase"):
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
            parsed = when_of(alternative, None, at)
            check_when(parsed, nodes, None, at)
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
    for where, entry in entries(raw, "glossary", "term"):
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


