"""Content changes need no code or schema change: the log, the summary and the dashboard on a
copy of flow.yaml in which a step is renamed, a step is added, the contact decision moves to
another step and the path gains a dimension.

The copy (made here from the guide's 2024 flow in tests/fixtures):

- ``order`` is renamed ``about-order`` (its id, every ``next`` to it, every ``when`` on it);
- a new decision ``urgent`` (today / can wait) becomes the first step, before ``problem``;
- the contact role moves from ``phone`` and ``channel`` to ``sign-in``;
- ``urgent`` gets the path role, so the path is (urgent, problem, about-order).

Visits of the changed guide are logged (demo visits, and visits clicked through the Engine with a
SessionLogger), after visits of the guide as it was (which used ``order`` and ``channel``), in
one store; then the numbers of the summary and of the dashboard are checked against a count made
here from the events, with the roles read from the copy.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import fresh_schema
import yaml

from widgets import dashboard, demo
from widgets.engine import Engine
from conftest import FLOW_2024
from widgets.flow import Flow, build_flow, load_flow
from widgets.log import Event, SessionLogger, open_store
from widgets.log.events import OUTCOMES
from widgets.summary import NO_ANSWER, NO_CHANNEL, OTHER, summarize

START = dt.date(2025, 6, 1)


def _rename(value: object, old: str, new: str) -> object:
    """``value`` (flow.yaml data) with node id ``old`` renamed ``new``: ids, targets, when keys."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "when" and isinstance(item, dict):
                out[key] = {new if k == old else k: v for k, v in item.items()}
            elif key in ("id", "next", "to", "start") and item == old:
                out[key] = new
            else:
                out[key] = _rename(item, old, new)
        return out
    if isinstance(value, list):
        return [_rename(item, old, new) for item in value]
    return value


def changed_flow(tmp_path: Path) -> Flow:
    data = yaml.safe_load(FLOW_2024.read_text(encoding="utf-8"))
    data = _rename(data, "order", "about-order")
    nodes = {node["id"]: node for node in data["nodes"]}
    for node_id in ("phone", "channel"):
        nodes[node_id]["roles"] = [r for r in nodes[node_id].get("roles", []) if r != "contact"]
    nodes["sign-in"]["roles"] = [*nodes["sign-in"].get("roles", []), "contact"]
    urgent = {
        "id": "urgent", "kind": "choice", "roles": ["path"], "widget": "buttons", "covers": [],
        "title": {"ko": "급한 일인가요?", "en": "Is it urgent?"},
        "body": {"ko": "오늘 해결해야 하는지 알려 주세요.", "en": "Tell us whether it has to be solved today."},
        "prompt": {"ko": "급한 일인가요?", "en": "Is it urgent?"},
        "options": [
            {"id": "today", "label": {"ko": "오늘 해결해야 해요", "en": "It has to be today"}, "next": data["start"]},
            {"id": "can-wait", "label": {"ko": "기다릴 수 있어요", "en": "It can wait"}, "next": data["start"]},
        ],
    }
    data["nodes"].insert(0, urgent)
    data["start"] = "urgent"
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    flow = build_flow(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert flow.role_nodes("contact") == ("sign-in",)
    assert flow.role_nodes("path") == ("urgent", "problem", "about-order")
    assert "order" not in flow.nodes and "about-order" in flow.nodes
    return flow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'events.sqlite3'}"
        return
    with fresh_schema(request.getfixturevalue("pg_url"), "content") as url:
        yield url


def click_through(flow: Flow, logger: SessionLogger, answers: list[str], outcome: str) -> None:
    """One visit of the changed guide through the Engine, logged as the view logs it."""
    engine = Engine(flow, lang="en",
                    on_transition=lambda i: logger.log(i.node, i.action, i.option, i.lang))
    engine.start()
    for answer in answers:
        node = engine.node
        if node.kind == "choice":
            engine.choose(answer if answer in node.option_ids else node.option_ids[0])
        elif node.kind == "info":
            engine.advance()
    while not engine.finished:
        node = engine.node
        engine.choose(node.option_ids[0]) if node.kind == "choice" else engine.advance()
    engine.record_outcome(outcome)


def reference(events: list[Event], flow: Flow) -> dict:
    """Final contact choices and outcomes by path, by the summary's definitions, counted here
    with the changed flow's roles."""
    contact_nodes, path_nodes = flow.role_nodes("contact"), flow.role_nodes("path")
    by_session: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for i, event in enumerate(events):
        by_session[event.session].append((i, event))
    channels: Counter = Counter()
    outcomes: Counter = Counter()
    paths: Counter = Counter()
    known = {n: flow.nodes[n].option_ids for n in path_nodes}
    for evs in by_session.values():
        last: dict[str, tuple[int, str | None]] = {}
        for i, e in evs:
            if e.action == "choose":
                last[e.node] = (i, e.option)
        contacts = [last[n] for n in contact_nodes if n in last]
        contact = max(contacts)[1] if contacts else None
        if contact is not None:
            channels[contact] += 1
        answers = [e.option for _, e in evs if e.action == "outcome"]
        if not answers:
            continue
        outcome = answers[-1] if answers[-1] in OUTCOMES else OTHER
        outcomes[(contact if contact is not None else NO_CHANNEL, outcome)] += 1
        first = last.get(path_nodes[0], (-1, None))[0]
        path = []
        for k, node in enumerate(path_nodes):
            if node not in last or (k and last[node][0] < first):
                path.append(NO_ANSWER)
            else:
                option = last[node][1]
                path.append(option if option in known[node] else OTHER)
        paths[(*path, outcome)] += 1
    return {"channels": channels, "outcomes": outcomes, "paths": paths}


def test_content_changes_need_no_code_or_schema_change(store_url: str, tmp_path: Path) -> None:
    flow = changed_flow(tmp_path)
    before = list(demo.generate(600, seed=5, start=START, days=1, flow=load_flow(FLOW_2024)))
    after = list(demo.generate(4000, seed=6, start=START + dt.timedelta(days=1), days=2, flow=flow))
    with open_store(store_url) as store:
        store.write(before)  # the guide as it was
        for i in range(0, len(after), 500):  # the changed guide
            store.write(after[i:i + 500])
        for n, (answers, outcome) in enumerate([(["today", "return", "yes", "no"], "solved"),
                                               (["can-wait", "late", "no", "yes"], "escalated")]):
            logger = SessionLogger(store, session_id=f"clicked{n}", rate=float("inf"))
            click_through(flow, logger, answers, outcome)
            assert logger.flush() and logger.pending == 0
        events = store.read_events()
        assert len(events) > len(before) + len(after)

        s = summarize(store, flow=flow)

    ref = reference(events, flow)
    # The contact decision is where the flow now says it is.
    assert set(s.channels["node"]) <= {"sign-in", OTHER}
    assert {o: n for o, n in zip(s.channels["option"], s.channels["sessions"]) if n} == dict(ref["channels"])
    assert {(c, o): n for c, o, n in zip(s.outcomes["channel"], s.outcomes["outcome"],
                                          s.outcomes["sessions"])} == dict(ref["outcomes"])
    # The path has a column per path step, the new one and the renamed one included.
    assert list(s.paths.columns) == ["urgent", "problem", "about-order", "outcome", "sessions", "share"]
    assert {tuple(row[:4]): row[4] for row in s.paths.itertuples(index=False)} == dict(ref["paths"])
    assert sum(ref["paths"].values()) > 20 and any(k[0] == "today" for k in ref["paths"])
    # The funnel has the new step first, and the old step's visits at the end, as a removed step.
    funnel = s.funnel.set_index("node")
    assert s.funnel["node"].iloc[0] == "urgent" and funnel.loc["urgent", "views"] > 0
    assert funnel.loc["order", "views"] > 0 and s.funnel["kind"].isna().sum() >= 1

    # The dashboard: the flow's words in the chosen language, removed steps shown as such.
    board = dashboard.Dashboard(store_url, flow=flow, labels="ko")
    board.refresh()
    assert board.status.value == "", board.status.value
    titles = [board.tables.get_title(i) for i in range(len(board.tables.children))]
    cells = {name: [html.unescape(c) for c in re.findall(r"<t[dh] [^>]*>(.*?)</t[dh]>",
                                                         board.tables.children[i].value, re.S)]
             for i, name in enumerate(titles)}
    assert "급한 일인가요?" in cells["funnel"] and dashboard.REMOVED.format("order") in cells["funnel"]
    assert flow.nodes["about-order"].title("ko") in cells["funnel"]
    assert flow.nodes["sign-in"].title("ko") in cells["channels"]
    assert "급한 일인가요?" in cells["paths"]  # the path step's title as a column header
    assert "오늘 해결해야 해요" in cells["paths"] or "기다릴 수 있어요" in cells["paths"]
    board.labels.value = "en"
    assert "Is it urgent?" in board.tables.children[titles.index("funnel")].value
    # The CSV files keep the ids.
    from test_dashboard_safety import csv_downloads, csv_rows

    funnel_csv = csv_rows(csv_downloads(board.downloads.value)["funnel"].decode("utf-8"))
    assert {"urgent", "about-order", "order"} <= {row[0] for row in funnel_csv}
    paths_csv = csv_rows(csv_downloads(board.downloads.value)["paths"].decode("utf-8"))
    assert paths_csv[0][:3] == ["urgent", "problem", "about-order"]
