"""The texts of the ready-to-send message and of the case notes: flow.yaml's ``messages:`` and
``casenotes:`` sections, read and checked like the steps' texts.

What the code needs of them is declared here: every key of each group, the ``{name}`` fields the
code fills in, and how the content checks read the text (:mod:`widgets.style`'s readings:
"voice", the guide's own sentences; "say", said or written to Amazon; "label", a button or a
heading). The loader refuses a missing or unknown key, a text without both languages, and a text
whose ``{fields}`` are not the ones its key takes, naming the section, the group and the key,
e.g. ``field 'casenotes.labels.loaded.en': takes the fields {count}, not {number}``.

``messages.wants`` lists what a visitor can ask for (the ids an option's ``want`` names), each
with its label in the builder and the message's sentence asking for it; ``casenotes.channels``
lists the ways of contact a note can have (the ids the saved files keep).

A flow file without these sections (an older flow file) uses the packaged flow.yaml's.
"""

from __future__ import annotations

import string
from functools import cache
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

import yaml

from ..vocabulary import ID_PATTERN, LANGUAGES
from .model import CaseNotesTexts, Flow, FlowError, MessageTexts, Text, Want
from .read import entries, load_yaml, text_of

#: How the content checks read a text (the same names as widgets.style's VOICE, SAY, LABEL).
VOICE, SAY, LABEL = "voice", "say", "label"

#: The top-level sections of a flow file read here.
SECTIONS: tuple[str, ...] = ("messages", "casenotes")

#: The ready-to-send message's own lines: key → (reading, the fields the code fills in).
#:   greeting, thanks  its first and last lines
#:   opening           its opening when no answer of the path has its own (an option's opening)
#:   fair_solution     follows what the visitor asks for, whatever it is
#:   supervisor        the polite request for a supervisor, when ticked
#:   order_line, date_line, detail_line   what the visitor typed, each on its line
MESSAGE_LINES: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    "greeting": (SAY, ()),
    "opening": (SAY, ()),
    "fair_solution": (SAY, ()),
    "supervisor": (SAY, ()),
    "thanks": (SAY, ()),
    "order_line": (LABEL, ("order_number",)),
    "date_line": (LABEL, ("date",)),
    "detail_line": (LABEL, ("detail",)),
})
#: The message builder's controls (all read as the guide's voice, no fields).
MESSAGE_LABELS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    key: (VOICE, ()) for key in (
        "title", "intro", "which", "outcome", "order_number", "order_number_hint", "date",
        "date_hint", "detail", "detail_hint", "supervisor", "ko", "en", "copy", "copied",
        "download")})
#: The case notes' columns, in file order (widgets.casenotes.Note's fields): each needs a header.
NOTE_COLUMNS: tuple[str, ...] = ("when", "channel", "agent", "reference", "promised")
#: The case-notes form's texts: key → (reading, fields).
CASENOTES_LABELS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    **{key: (VOICE, ()) for key in (
        "toggle", "toggle_close", "intro", "when_hint", "add", "empty", "download_md",
        "download_csv", "load")},
    "loaded": (VOICE, ("count",)),
    "error": (VOICE, ("reason",)),
    "need_something": (VOICE, ()),
    "full": (VOICE, ("limit",)),
})
#: Why a case-notes file cannot be loaded: key → (reading, fields).
CASENOTES_REASONS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    "too_large": (VOICE, ("limit",)),
    "not_text": (VOICE, ()),
    "unreadable": (VOICE, ()),
    "bad_csv": (VOICE, ("line",)),
    "too_long": (VOICE, ("line",)),
    "columns": (VOICE, ("columns",)),
    "values": (VOICE, ("line", "expected", "got")),
    "no_table": (VOICE, ("count", "columns")),
    "not_row": (VOICE, ("line",)),
    "cells": (VOICE, ("line", "expected", "got")),
    "too_many": (VOICE, ("limit",)),
    "unknown_field": (VOICE, ("field",)),
    "empty_note": (VOICE, ()),
})


# --------------------------------------------------------------------------- reading


def read_sections(data: Mapping[str, Any]) -> dict[str, MessageTexts | CaseNotesTexts]:
    """The sections a flow file has, read and checked (a missing one: the packaged flow's)."""
    readers = {"messages": read_messages, "casenotes": read_casenotes}
    return {section: (readers[section](data[section]) if section in data
                      else getattr(packaged_texts(), section)) for section in SECTIONS}


def read_messages(raw: Any) -> MessageTexts:
    """flow.yaml's ``messages:`` (``wants``, ``lines``, ``labels``)."""
    section = _mapping(raw, "messages", ("wants", "lines", "labels"))
    wants, default = _wants(section["wants"], "messages.wants")
    return MessageTexts(
        wants=wants, default_want=default,
        lines=_group(section["lines"], "messages.lines", MESSAGE_LINES),
        labels=_group(section["labels"], "messages.labels", MESSAGE_LABELS))


def read_casenotes(raw: Any) -> CaseNotesTexts:
    """flow.yaml's ``casenotes:`` (``title``, ``headers``, ``channels``, ``labels``,
    ``reasons``)."""
    section = _mapping(raw, "casenotes", ("title", "headers", "channels", "labels", "reasons"))
    return CaseNotesTexts(
        title=_checked(section["title"], "casenotes.title", ()),
        headers=_group(section["headers"], "casenotes.headers",
                       {column: (VOICE, ()) for column in NOTE_COLUMNS}),
        channels=_by_id(section["channels"], "casenotes.channels"),
        labels=_group(section["labels"], "casenotes.labels", CASENOTES_LABELS),
        reasons=_group(section["reasons"], "casenotes.reasons", CASENOTES_REASONS))


@cache
def packaged_texts() -> Flow:
    """The packaged flow.yaml's ``messages:`` and ``casenotes:`` and its interface texts of
    ``loader.PACKAGED_UI_KEYS``, read once, as a flow with no steps (the texts of a flow file
    that has none of its own)."""
    from .loader import DEFAULT_PATH, PACKAGED_UI_KEYS

    source = str(DEFAULT_PATH)
    try:
        data = load_yaml(DEFAULT_PATH.read_text(encoding="utf-8"))
        if not isinstance(data, Mapping) or not all(s in data for s in SECTIONS):
            raise FlowError(f"the packaged flow needs the sections {SECTIONS}")
        ui = data.get("ui") if isinstance(data.get("ui"), Mapping) else {}
        return Flow(start="", nodes=MappingProxyType({}), outline=(),
                    ui=MappingProxyType({key: text_of(ui.get(key), None, f"ui.{key}")
                                         for key in PACKAGED_UI_KEYS}),
                    paths=(), messages=read_messages(data["messages"]),
                    casenotes=read_casenotes(data["casenotes"]))
    except FlowError as exc:
        raise exc.in_source(source) from None
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(f"cannot read the packaged texts: {exc}", source=source) from None


def _exact_keys(raw: Mapping[str, Any], where: str, keys: Iterable[str], missing: str,
                unknown: Callable[[str], str]) -> None:
    """FlowError ``missing`` at the first of ``keys`` that ``raw`` lacks, else ``unknown(key)``
    at the first key ``raw`` has beyond them."""
    keys = tuple(keys)
    for key in keys:
        if key not in raw:
            raise FlowError(missing, field=f"{where}.{key}")
    extra = sorted(set(raw) - set(keys), key=str)
    if extra:
        raise FlowError(unknown(extra[0]), field=f"{where}.{extra[0]}")


def _mapping(raw: Any, where: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise FlowError(f"must be a mapping with {', '.join(keys)}", field=where)
    _exact_keys(raw, where, keys, "missing",
                lambda key: f"unknown key {key!r}; expected {', '.join(keys)}")
    return raw


def _group(raw: Any, where: str,
           schema: Mapping[str, tuple[str, tuple[str, ...]]]) -> Mapping[str, Text]:
    """A mapping of texts with exactly the keys of ``schema``, in its order."""
    if not isinstance(raw, Mapping):
        raise FlowError("must be a mapping of texts", field=where)
    _exact_keys(raw, where, schema, "missing text",
                lambda _key: f"unknown text; expected one of {', '.join(schema)}")
    return MappingProxyType({key: _checked(raw[key], f"{where}.{key}", fields)
                             for key, (_, fields) in schema.items()})


def _by_id(raw: Any, where: str) -> Mapping[str, Text]:
    """A non-empty mapping of ids (editors may add or remove them) to texts, in file order."""
    if not isinstance(raw, Mapping) or not raw:
        raise FlowError("must map ids to texts (at least one)", field=where)
    for key in raw:
        if not isinstance(key, str) or not ID_PATTERN.fullmatch(key):
            raise FlowError(f"{key!r} is not a valid id", field=f"{where}.{key}")
    return MappingProxyType({key: _checked(value, f"{where}.{key}", ())
                             for key, value in raw.items()})


def _wants(raw: Any, where: str) -> tuple[Mapping[str, Want], str]:
    """The ``wants:`` list: id, label, request, and ``default: true`` on exactly one."""
    wants: dict[str, Want] = {}
    defaults = []
    for at, entry in entries(raw, where, "want"):
        wid = entry.get("id")
        if not isinstance(wid, str) or not ID_PATTERN.fullmatch(wid):
            raise FlowError(f"missing or invalid want id {wid!r}", field=f"{at}.id")
        at = f"{where}.{wid}"
        extra = sorted(set(entry) - {"id", "label", "request", "default"}, key=str)
        if extra:
            raise FlowError(f"unknown key {extra[0]!r}", field=f"{at}.{extra[0]}")
        if wid in wants:
            raise FlowError(f"duplicate want id {wid!r}", field=f"{at}.id")
        default = entry.get("default", False)
        if not isinstance(default, bool):
            raise FlowError(f"must be true or false, not {default!r}", field=f"{at}.default")
        if default:
            defaults.append(wid)
        wants[wid] = Want(id=wid, label=_checked(entry.get("label"), f"{at}.label", ()),
                          request=_checked(entry.get("request"), f"{at}.request", ()))
    if not wants:
        raise FlowError("must list at least one want", field=where)
    if len(defaults) != 1:
        raise FlowError("exactly one want has 'default: true' (asked for when no answer says "
                        f"otherwise), not {len(defaults)}", field=where)
    return MappingProxyType(wants), defaults[0]


def _checked(raw: Any, where: str, fields: tuple[str, ...]) -> Text:
    """A text in every language whose ``{fields}`` are exactly ``fields`` in each language."""
    text = text_of(raw, None, where)
    expected = ", ".join(f"{{{name}}}" for name in fields) or "none"
    for lang in LANGUAGES:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text(lang))
                     if name is not None]
        except ValueError as exc:
            raise FlowError(f"a brace out of place ({exc}); this text takes the fields "
                            f"{expected}", field=f"{where}.{lang}") from None
        if set(names) != set(fields):
            found = ", ".join(f"{{{name}}}" for name in dict.fromkeys(names)) or "none"
            raise FlowError(f"takes the fields {expected}, not {found}", field=f"{where}.{lang}")
    return text


# --------------------------------------------------------------------------- for the checks


def section_texts(flow: Flow) -> Iterator[tuple[None, str, Text, str]]:
    """Every text of the flow's ``messages:`` and ``casenotes:``, as the content checks take
    them (:func:`widgets.style.texts` yields them): (None, field, text, reading)."""
    messages, notes = flow.messages, flow.casenotes
    for want in messages.wants.values():
        yield None, f"messages.wants.{want.id}.label", want.label, LABEL
        yield None, f"messages.wants.{want.id}.request", want.request, SAY
    for key, text in messages.lines.items():
        yield None, f"messages.lines.{key}", text, MESSAGE_LINES[key][0]
    for key, text in messages.labels.items():
        yield None, f"messages.labels.{key}", text, MESSAGE_LABELS[key][0]
    yield None, "casenotes.title", notes.title, VOICE
    for group in ("headers", "channels", "labels", "reasons"):
        for key, text in getattr(notes, group).items():
            yield None, f"casenotes.{group}.{key}", text, VOICE
