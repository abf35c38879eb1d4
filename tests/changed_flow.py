"""A changed copy of flow.yaml, for the tests that prove content changes need no code change.

:func:`write_changed_flow` copies the guide's flow as it was in 2024 (``tests/fixtures``) and,
by editing the data only:

* renames the step ``channel`` to :data:`RENAMED` (every reference to it follows);
* adds a step, :data:`ADDED`: a decision after the renamed step ("How will you write to
  them?": chat, e-mail or a letter), which leads on to ``goal``;
* moves the ``contact`` role (and the message builder, ``message``) from ``phone`` and the
  renamed step to the added step, whose answers carry their own demo weights;
* adds a ``path`` dimension: ``sign-in`` gets the role ``path`` too;
* moves ``escalate`` from the answer ``no`` of ``helped`` to its answer ``not-yet``.

The other tests (the guide's widgets, the demo, and the log, the summary and the dashboard)
run the product's code unchanged on that copy.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import FLOW_2024

RENAMED = "reply-method"
ADDED = "writing-way"
#: The added step's answers and their demo weights.
ADDED_OPTIONS = {"chat": 5, "email": 3, "letter": 2}


def _node(data: dict, node_id: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == node_id)


def _retarget(route, old: str, new: str):
    if isinstance(route, str):
        return new if route == old else route
    for rule in route:
        if rule["to"] == old:
            rule["to"] = new
        when = rule.get("when") or {}
        if old in when:
            when[new] = when.pop(old)
    return route


def changed_flow_data() -> dict:
    data = yaml.safe_load(FLOW_2024.read_text(encoding="utf-8"))
    # rename `channel`
    for node in data["nodes"]:
        if "next" in node:
            node["next"] = _retarget(node["next"], "channel", RENAMED)
        for option in node.get("options", []):
            option["next"] = _retarget(option["next"], "channel", RENAMED)
        if node["id"] == "channel":
            node["id"] = RENAMED
    renamed = _node(data, RENAMED)
    # add a step after it, and move the contact role (and the message builder) there
    for option in renamed["options"]:
        option["next"] = ADDED
    renamed["roles"] = []
    _node(data, "phone")["roles"] = []
    added = {
        "id": ADDED, "kind": "choice", "widget": "buttons", "covers": [],
        "roles": ["contact", "message"],
        "title": {"ko": "어떻게 연락하시겠어요?", "en": "How will you write to them?"},
        "body": {"ko": "연락할 방법을 고르세요.", "en": "Choose how you will get in touch."},
        "prompt": {"ko": "연락 방법", "en": "Way of writing"},
        "options": [
            {"id": oid, "weight": weight, "next": "goal",
             "label": {"ko": f"{oid} (ko)", "en": f"By {oid}"}}
            for oid, weight in ADDED_OPTIONS.items()],
    }
    data["nodes"].insert(data["nodes"].index(renamed) + 1, added)
    # a new path dimension
    sign_in = _node(data, "sign-in")
    sign_in["roles"] = sign_in.get("roles", []) + ["path"]
    # the supervisor request follows another answer
    helped = _node(data, "helped")
    for option in helped["options"]:
        option.pop("escalate", None)
        if option["id"] == "not-yet":
            option["escalate"] = True
    return data


def write_changed_flow(folder: Path) -> Path:
    """Write the changed copy into ``folder``; return its path."""
    path = Path(folder) / "flow.yaml"
    path.write_text(yaml.safe_dump(changed_flow_data(), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path
