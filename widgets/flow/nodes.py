"""The steps of a flow file (``nodes:``): each node and its options and routes, the roles, and
every path from the start, checked as they are read. Errors name the node and the field.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Collection, Iterator, Mapping

from ..vocabulary import ID_PATTERN
from .model import (CHOICE_ROLES, KINDS, ROLES, SINGLE_ROLES, STAGES, WIDGETS, FlowError, Node,
                    Option, Route, Rule)
from .read import check_when, is_number, text_of, when_of, words_of


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
        when = when_of(item.get("when", {}), node, f"{where}.when")
        last = i == len(raw) - 1
        if last and when:
            raise FlowError("the last rule must have no 'when' (the default)", node=node,
                            field=where)
        if not last and not when:
            raise FlowError("only the last rule may have no 'when'", node=node, field=where)
        rules.append(Rule(to=item["to"], when=MappingProxyType(when)))
    return Route(tuple(rules))


def read_node(raw: Any, index: int, outline: set[str], wants: Collection[str]) -> Node:
    """Node ``index`` of ``nodes:``; ``outline``: the outline ids it may cover, ``wants``: the
    ids an option's ``want`` may name."""
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
        title=text_of(raw.get("title"), node_id, "title"),
        body=text_of(raw.get("body"), node_id, "body"),
    )
    if "recap" in raw:
        fields["recap"] = text_of(raw["recap"], node_id, "recap")
    if "fine_print" in raw:
        fields["fine_print"] = text_of(raw["fine_print"], node_id, "fine_print")
    fields["roles"] = _roles(raw.get("roles", []), node_id, kind)
    say = raw.get("say", [])
    if not isinstance(say, list) or not all(isinstance(stage, str) for stage in say):
        raise FlowError(f"must be a list of stages from {STAGES}", node=node_id, field="say")
    if len(set(say)) != len(say):
        raise FlowError("lists a stage twice", node=node_id, field="say")
    fields["say"] = tuple(say)
    if "drop_off" in raw:
        value = raw["drop_off"]
        if not is_number(value) or not 0 <= value < 1:
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
            if not is_number(weight) or not weight > 0:
                raise FlowError(f"must be a positive number, not {weight!r}", node=node_id,
                                field=f"{where}.weight")
            want = opt.get("want")
            if want is not None and want not in wants:
                raise FlowError(f"must be one of {tuple(wants)}, not {want!r}", node=node_id,
                                field=f"{where}.want")
            options.append(Option(
                id=oid,
                label=text_of(opt.get("label"), node_id, f"{where}.label"),
                next=_route(opt["next"], node_id, f"{where}.next"),
                recap=text_of(opt["recap"], node_id, f"{where}.recap") if "recap" in opt else None,
                escalate=escalate,
                weight=float(weight),
                opening=(text_of(opt["opening"], node_id, f"{where}.opening")
                         if "opening" in opt else None),
                want=want,
                rules_out=words_of(opt.get("rules_out", {}), node_id, f"{where}.rules_out"),
            ))
        fields.update(widget=widget, options=tuple(options),
                      prompt=text_of(raw.get("prompt"), node_id, "prompt"))
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


def check_roles(nodes: Mapping[str, Node]) -> None:
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


def check_references(nodes: Mapping[str, Node]) -> None:
    for node in nodes.values():
        for route_field, route in _routes(node):
            for i, rule in enumerate(route.rules):
                rule_field = route_field if len(route.rules) == 1 else f"{route_field}[{i}]"
                if rule.to not in nodes:
                    raise FlowError(f"unknown node {rule.to!r}", node=node.id, field=rule_field)
                check_when(rule.when, nodes, node.id, f"{rule_field}.when")


def enumerate_paths(nodes: Mapping[str, Node], start: str,
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
