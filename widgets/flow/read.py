"""Readers shared by the flow loader's parts: a text in every language, a ``when`` condition,
a list of words per language, a number, the entries of a top-level list; and the YAML loader
that refuses a key given twice. Each raises
:class:`~widgets.flow.model.FlowError` naming the node (if any) and the field.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import yaml

from ..vocabulary import LANGUAGES
from .model import FlowError, Node, Text


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise FlowError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """YAML (or JSON) text as data, through :class:`UniqueKeyLoader`."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def entries(raw: Any, field: str, what: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The mappings of the top-level list ``field`` (``what``: what one is, e.g. "phrase"),
    each with where it stands (``field[i]``)."""
    if not isinstance(raw, list):
        raise FlowError(f"must be a list of {what}s", field=field)
    for i, entry in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(entry, Mapping):
            raise FlowError(f"each {what} must be a mapping", field=where)
        yield where, entry


def text_of(raw: Any, node: str | None, field: str) -> Text:
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


def when_of(raw: Any, node: str | None, field: str) -> dict[str, frozenset[str]]:
    """A ``when`` condition (decision id → option ids) as written; what it names is checked
    against the nodes by :func:`check_when`."""
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


def check_when(when: Mapping[str, frozenset[str]], nodes: Mapping[str, Node],
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


def words_of(raw: Any, node: str, field: str) -> Mapping[str, tuple[str, ...]]:
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


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


