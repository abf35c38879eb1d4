"""Tests of the log summary (widgets/summary.py), the demo data (widgets/demo.py) and the
summary notebook, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import widgets.log as log
from widgets import demo, summary
from widgets.engine import Engine
from conftest import FLOW_2024
from widgets.flow import load_flow
from widgets.log import Event, EventStore, open_store
from widgets.summary import NO_ANSWER, NO_CHANNEL, OTHER, Summary, node_order, summarize

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
#: the hand-made logs below walk the 2024 flow (see conftest)
FLOW = load_flow(FLOW_2024)
pytestmark = pytest.mark.usefixtures("flow_2024")


# --------------------------------------------------------------------------- the hand-made log
#
# Seven sessions, each a list of (node, action, option, lang, elapsed_ms), starting at the given
# time; each event's timestamp is the previous one's plus its elapsed_ms. The expected numbers in
# the tests below were worked out by hand from this listing.

def _walk(*steps: tuple) -> list[tuple]:
    return list(steps)


SESSIONS: dict[str, tuple[dt.datetime, list[tuple]]] = {
    # S1 (ko): "prepare" branch straight to the end, then answers the outcome question.
    "s1": (dt.datetime(2025, 3, 1, 9, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "ko", None),
        ("problem", "choose", "prepare", "ko", 4000),
        ("goal", "enter", None, "ko", 10),
        ("goal", "next", None, "ko", 6000),
        ("records", "enter", None, "ko", 10),
        ("records", "next", None, "ko", 5000),
        ("fair", "enter", None, "ko", 10),
        ("fair", "next", None, "ko", 3000),
        ("kind", "enter", None, "ko", 10),
        ("kind", "next", None, "ko", 2000),
        ("helped", "enter", None, "ko", 10),
        ("helped", "choose", "yes", "ko", 1000),
        ("patience", "enter", None, "ko", 10),
        ("patience", "next", None, "ko", 500),
        ("done", "enter", None, "ko", 10),
        ("done", "finish", None, "ko", 0),
        ("done", "outcome", "solved", "ko", 3000),
    )),
    # S2 (en): can't sign in, switches to Korean on the phone step, calls, leaves at records.
    "s2": (dt.datetime(2025, 3, 1, 10, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "en", None),
        ("problem", "choose", "late", "en", 8000),
        ("order", "enter", None, "en", 10),
        ("order", "choose", "yes", "en", 2000),
        ("sign-in", "enter", None, "en", 10),
        ("sign-in", "choose", "no", "en", 3000),
        ("phone", "enter", None, "en", 10),
        ("phone", "language", None, "ko", 1500),
        ("phone", "choose", "call", "ko", 2500),
        ("goal", "enter", None, "ko", 10),
        ("goal", "next", None, "ko", 7000),
        ("records", "enter", None, "ko", 10),
    )),
    # S3 (ko): starts ten seconds before midnight; goes back once at channel; leaves at goal.
    "s3": (dt.datetime(2025, 3, 2, 23, 59, 50, tzinfo=UTC), _walk(
        ("problem", "enter", None, "ko", None),
        ("problem", "choose", "service", "ko", 5000),
        ("sign-in", "enter", None, "ko", 10),
        ("sign-in", "choose", "yes", "ko", 1000),
        ("help", "enter", None, "ko", 10),
        ("help", "next", None, "ko", 4000),  # after midnight
        ("need-more-help", "enter", None, "ko", 10),
        ("need-more-help", "next", None, "ko", 3000),
        ("describe", "enter", None, "ko", 10),
        ("describe", "next", None, "ko", 2000),
        ("channel", "enter", None, "ko", 10),
        ("channel", "back", None, "ko", 6000),
        ("describe", "enter", None, "ko", 10),
        ("describe", "next", None, "ko", 1000),
        ("channel", "enter", None, "ko", 10),
        ("channel", "choose", "chat", "ko", 2000),
        ("goal", "enter", None, "ko", 10),
    )),
    # S4 (en): starts over once at order, then the whole way by e-mail, escalating; outcome.
    "s4": (dt.datetime(2025, 3, 2, 12, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "en", None),
        ("problem", "choose", "return", "en", 3000),
        ("order", "enter", None, "en", 10),
        ("order", "restart", None, "en", 4000),
        ("problem", "enter", None, "en", 10),
        ("problem", "choose", "return", "en", 2000),
        ("order", "enter", None, "en", 10),
        ("order", "choose", "no", "en", 1000),
        ("sign-in", "enter", None, "en", 10),
        ("sign-in", "choose", "yes", "en", 2000),
        ("help", "enter", None, "en", 10),
        ("help", "next", None, "en", 3000),
        ("need-more-help", "enter", None, "en", 10),
        ("need-more-help", "next", None, "en", 1000),
        ("describe", "enter", None, "en", 10),
        ("describe", "next", None, "en", 2000),
        ("channel", "enter", None, "en", 10),
        ("channel", "choose", "email", "en", 5000),
        ("goal", "enter", None, "en", 10),
        ("goal", "next", None, "en", 4000),
        ("records", "enter", None, "en", 10),
        ("records", "next", None, "en", 3000),
        ("fair", "enter", None, "en", 10),
        ("fair", "next", None, "en", 1000),
        ("kind", "enter", None, "en", 10),
        ("kind", "next", None, "en", 1000),
        ("helped", "enter", None, "en", 10),
        ("helped", "choose", "not-yet", "en", 2000),
        ("escalate", "enter", None, "en", 10),
        ("escalate", "next", None, "en", 3000),
        ("patience", "enter", None, "en", 10),
        ("patience", "next", None, "en", 1000),
        ("done", "enter", None, "en", 10),
        ("done", "finish", None, "en", 0),
        ("done", "outcome", "partly", "en", 2000),
    )),
    # S5 (ko): asks for a call-back, then picks phone on the contact screen; leaves at goal.
    "s5": (dt.datetime(2025, 3, 3, 8, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "ko", None),
        ("problem", "choose", "refund", "ko", 6000),
        ("order", "enter", None, "ko", 10),
        ("order", "choose", "yes", "ko", 1000),
        ("sign-in", "enter", None, "ko", 10),
        ("sign-in", "choose", "no", "ko", 2000),
        ("phone", "enter", None, "ko", 10),
        ("phone", "choose", "callback", "ko", 4000),
        ("help", "enter", None, "ko", 10),
        ("help", "next", None, "ko", 5000),
        ("need-more-help", "enter", None, "ko", 10),
        ("need-more-help", "next", None, "ko", 2000),
        ("select-order", "enter", None, "ko", 10),
        ("select-order", "next", None, "ko", 3000),
        ("channel", "enter", None, "ko", 10),
        ("channel", "choose", "phone", "ko", 3000),
        ("goal", "enter", None, "ko", 10),
    )),
    # S6 (ko): switches to English and back on the first screen, then leaves.
    "s6": (dt.datetime(2025, 3, 3, 9, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "ko", None),
        ("problem", "language", None, "en", 7000),
        ("problem", "language", None, "ko", 1000),
    )),
    # S7 (en): can't sign in, leaves on the phone step without choosing.
    "s7": (dt.datetime(2025, 3, 3, 10, 0, tzinfo=UTC), _walk(
        ("problem", "enter", None, "en", None),
        ("problem", "choose", "service", "en", 9000),
        ("sign-in", "enter", None, "en", 10),
        ("sign-in", "choose", "no", "en", 4000),
        ("phone", "enter", None, "en", 10),
    )),
}


def hand_events() -> list[Event]:
    """The hand-made sessions as events, in timestamp order (as a live log would hold them)."""
    events = []
    for session, (start, steps) in SESSIONS.items():
        ts = start
        for node, action, option, lang, elapsed in steps:
            ts = ts + dt.timedelta(milliseconds=elapsed or 0)
            events.append(Event(ts, session, node, action, option, lang, elapsed))
    events.sort(key=lambda e: e.ts)
    return events


# --------------------------------------------------------------------------- stores


def store_execute(store: EventStore, statement: str) -> None:
    """Run a schema statement on the store's database (its own query() is read-only)."""
    if store.dialect == "sqlite":
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            conn.execute(statement)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute(statement)


@pytest.fixture
def hand_store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as store:
        store.write(hand_events())
        yield store


def rows(frame: pd.DataFrame, key: str, column: str) -> dict:
    return dict(zip(frame[key], frame[column]))


# --------------------------------------------------------------------------- hand-computed


def test_overview_and_daily_sessions(hand_store: EventStore) -> None:
    s = summarize(hand_store)
    assert isinstance(s, Summary)
    assert s.sessions == 7 and s.finished == 2 and not s.empty
    assert s.completion_rate == pytest.approx(2 / 7)
    overview = s.overview.iloc[0]
    assert overview["language_switches"] == 3  # S2 once, S6 twice
    assert overview["switched_sessions"] == 2
    assert overview["switched_share"] == pytest.approx(2 / 7)
    assert [d.date() for d in s.daily["day"]] == [dt.date(2025, 3, d) for d in (1, 2, 3)]
    assert s.daily["sessions"].tolist() == [2, 2, 3]
    assert s.daily["ko"].tolist() == [1, 1, 2]
    assert s.daily["en"].tolist() == [1, 1, 1]


def test_funnel_views_exits_and_drop_off_on_branches(hand_store: EventStore) -> None:
    funnel = summarize(hand_store).funnel
    assert funnel["node"].tolist() == list(node_order(FLOW))
    views = rows(funnel, "node", "views")
    assert views == {
        "problem": 7, "order": 3, "sign-in": 5, "phone": 3, "help": 3, "need-more-help": 3,
        "select-order": 1, "describe": 2, "channel": 3, "goal": 5, "records": 3, "fair": 2,
        "kind": 2, "helped": 2, "escalate": 1, "patience": 2, "done": 2,
    }
    exits = rows(funnel, "node", "exits")
    assert {node: n for node, n in exits.items() if n} == {
        "problem": 1, "phone": 1, "records": 1, "goal": 2}
    drop = rows(funnel, "node", "drop_off")
    # Two branches after sign-in: phone (3 views, 1 exit) and help (3 views, no exit).
    assert drop["phone"] == pytest.approx(1 / 3)
    assert drop["help"] == 0
    # Two branches after need-more-help: select-order (1 view) and describe (2 sessions, one of
    # them twice).
    assert (views["select-order"], exits["select-order"]) == (1, 0)
    assert (views["describe"], exits["describe"]) == (2, 0)
    assert drop["goal"] == pytest.approx(2 / 5)
    assert drop["records"] == pytest.approx(1 / 3)
    assert drop["problem"] == pytest.approx(1 / 7)
    assert drop["done"] == 0  # who reaches the end finished
    assert sum(exits.values()) + 2 == 7  # every session either finished or left somewhere


def test_choice_counts_and_shares(hand_store: EventStore) -> None:
    choices = summarize(hand_store).choices
    counts = {(n, o): c for n, o, c in zip(choices["node"], choices["option"], choices["count"])}
    assert counts == {
        ("problem", "return"): 2, ("problem", "refund"): 1, ("problem", "late"): 1,
        ("problem", "damaged"): 0, ("problem", "service"): 2, ("problem", "prepare"): 1,
        ("order", "yes"): 2, ("order", "no"): 1,
        ("sign-in", "yes"): 2, ("sign-in", "no"): 3,
        ("phone", "call"): 1, ("phone", "callback"): 1,
        ("channel", "email"): 1, ("channel", "phone"): 1, ("channel", "chat"): 1,
        ("helped", "yes"): 1, ("helped", "no"): 0, ("helped", "not-yet"): 1,
    }
    share = {(n, o): v for n, o, v in zip(choices["node"], choices["option"], choices["share"])}
    assert share[("problem", "return")] == pytest.approx(2 / 7)
    assert share[("sign-in", "no")] == pytest.approx(3 / 5)
    assert share[("helped", "no")] == 0
    assert choices.groupby("node")["share"].sum().tolist() == pytest.approx([1.0] * 6)


def test_contact_channel_split(hand_store: EventStore) -> None:
    channels = summarize(hand_store).channels
    split = {(n, o): c for n, o, c in zip(channels["node"], channels["option"], channels["sessions"])}
    # S5 asked for a call-back, then chose phone on the contact screen: its final choice counts.
    assert split == {("channel", "email"): 1, ("channel", "phone"): 1, ("channel", "chat"): 1,
                     ("phone", "call"): 1, ("phone", "callback"): 0}
    # In the order of the flow's contact steps (Flow.role_nodes("contact")), options in file order.
    assert channels["node"].tolist() == ["phone", "phone", "channel", "channel", "channel"]
    assert channels["share"].tolist() == pytest.approx([0.25, 0.0, 0.25, 0.25, 0.25])


def test_language_split(hand_store: EventStore) -> None:
    languages = summarize(hand_store).languages
    assert languages["lang"].tolist() == ["ko", "en"]
    assert languages["sessions"].tolist() == [4, 3]
    assert languages["share"].tolist() == pytest.approx([4 / 7, 3 / 7])


def test_median_time_per_node(hand_store: EventStore) -> None:
    time = summarize(hand_store).time
    medians = rows(time, "node", "median_ms")
    leaves = rows(time, "node", "leaves")
    expected = {
        "problem": (7, 5000),         # 2000 3000 4000 [5000] 6000 8000 9000
        "order": (4, 1500),           # 1000 [1000 2000] 4000 (S4's restart leaves order too)
        "sign-in": (5, 2000),
        "phone": (2, 3250),           # S2's 2500 counts from its language switch
        "help": (3, 4000),
        "need-more-help": (3, 2000),
        "select-order": (1, 3000),
        "describe": (3, 2000),        # S3 twice
        "channel": (4, 4000),         # S3's back (6000) leaves channel too
        "goal": (3, 6000),
        "records": (2, 4000),
        "fair": (2, 2000),
        "kind": (2, 1500),
        "helped": (2, 1500),
        "escalate": (1, 3000),
        "patience": (2, 750),
    }
    for node, (n, median) in expected.items():
        assert (leaves[node], medians[node]) == (n, median), node
    assert leaves["done"] == 0 and math.isnan(medians["done"])


def test_outcomes_by_channel(hand_store: EventStore) -> None:
    outcomes = summarize(hand_store).outcomes
    assert list(zip(outcomes["channel"], outcomes["outcome"], outcomes["sessions"],
                    outcomes["share"])) == [("email", "partly", 1, 1.0), (NO_CHANNEL, "solved", 1, 1.0)]


def test_outcomes_by_path(hand_store: EventStore) -> None:
    # S4 chose return twice (a Start over between) and answered no at order; S1 prepared, a
    # path without the order question.
    paths = summarize(hand_store).paths
    assert list(paths.columns) == ["problem", "order", "outcome", "sessions", "share"]
    assert list(paths.itertuples(index=False, name=None)) == [
        ("return", "no", "partly", 1, 1.0), ("prepare", NO_ANSWER, "solved", 1, 1.0)]


# Sessions written for the outcome-by-path table, each a list of (node, action, option) in
# order; elapsed_ms is None for the first event only, and every event is one second after the
# previous one. p11 lost its first event (a buffer overflow): it is no session, but without
# filters its events count (see the summary's module docstring).
PATH_DAY_1, PATH_DAY_2 = dt.datetime(2025, 4, 1, 9, tzinfo=UTC), dt.datetime(2025, 4, 2, 9, tzinfo=UTC)
PATH_SESSIONS: dict[str, tuple[dt.datetime, str, list[tuple[str, str, str | None]]]] = {
    "p1": (PATH_DAY_1, "ko", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "yes"), ("done", "enter", None), ("done", "finish", None),
        ("done", "outcome", "solved")]),
    "p2": (PATH_DAY_1, "en", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "yes"), ("done", "enter", None), ("done", "outcome", "partly")]),
    # Answers twice: the last answer counts.
    "p3": (PATH_DAY_1, "ko", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "yes"), ("done", "enter", None), ("done", "outcome", "solved"),
        ("done", "outcome", "not-yet")]),
    "p4": (PATH_DAY_1, "en", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "no"), ("done", "enter", None), ("done", "outcome", "escalated")]),
    # Answers yes at order, starts over and takes the service path, which skips order: its
    # yes belongs to the abandoned path.
    "p5": (PATH_DAY_1, "ko", [
        ("problem", "enter", None), ("problem", "choose", "return"), ("order", "enter", None),
        ("order", "choose", "yes"), ("sign-in", "enter", None), ("sign-in", "restart", None),
        ("problem", "enter", None), ("problem", "choose", "service"), ("sign-in", "enter", None),
        ("done", "enter", None), ("done", "outcome", "solved")]),
    # Goes back to order and changes the answer.
    "p6": (PATH_DAY_2, "en", [
        ("problem", "enter", None), ("problem", "choose", "refund"), ("order", "enter", None),
        ("order", "choose", "no"), ("sign-in", "enter", None), ("sign-in", "back", None),
        ("order", "enter", None), ("order", "choose", "yes"), ("done", "enter", None),
        ("done", "outcome", "partly")]),
    # An older flow: a problem option and an outcome this code does not know.
    "p7": (PATH_DAY_2, "ko", [
        ("problem", "enter", None), ("problem", "choose", "gone"), ("done", "enter", None),
        ("done", "outcome", "meh")]),
    # No outcome: not in the table.
    "p8": (PATH_DAY_2, "en", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "yes")]),
    "p9": (PATH_DAY_2, "ko", [
        ("problem", "enter", None), ("problem", "choose", "prepare"), ("goal", "enter", None),
        ("done", "enter", None), ("done", "outcome", "solved")]),
    "p10": (PATH_DAY_2, "en", [
        ("problem", "enter", None), ("problem", "choose", "late"), ("order", "enter", None),
        ("order", "choose", "yes"), ("done", "enter", None), ("done", "outcome", "solved")]),
    "p11": (PATH_DAY_2, "en", [
        ("problem", "choose", "damaged"), ("order", "enter", None), ("order", "choose", "yes"),
        ("done", "enter", None), ("done", "outcome", "solved")]),
}


def path_events() -> list[Event]:
    """PATH_SESSIONS as events, one session after the other."""
    events = []
    for session, (start, lang, steps) in PATH_SESSIONS.items():
        for i, (node, action, option) in enumerate(steps):
            first = i == 0 and session != "p11"
            events.append(Event(start + dt.timedelta(seconds=i), session, node, action, option,
                                lang, None if first else 1000))
    return events


def path_rows(frame: pd.DataFrame) -> list[tuple]:
    return [(p, o, c, n, pytest.approx(share)) for p, o, c, n, share
            in frame[["problem", "order", "outcome", "sessions", "share"]].itertuples(index=False, name=None)]


@pytest.fixture
def path_store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as store:
        store.write(path_events())
        yield store


def test_outcome_by_path_counts_each_session_s_last_answers(path_store: EventStore) -> None:
    # Problems in flow order (return, refund, late, damaged, service, prepare), then (other);
    # order yes, no, then (none); outcomes in OUTCOMES order, then (other). Shares within the
    # (problem, order) path: late/yes has p1, p10 solved, p2 partly, p3 not-yet.
    s = summarize(path_store)
    assert path_rows(s.paths) == [
        ("refund", "yes", "partly", 1, 1.0),          # p6: no, then Back and yes
        ("late", "yes", "solved", 2, 2 / 4),          # p1, p10
        ("late", "yes", "partly", 1, 1 / 4),          # p2
        ("late", "yes", "not-yet", 1, 1 / 4),         # p3: solved, then not-yet
        ("late", "no", "escalated", 1, 1.0),          # p4
        ("damaged", "yes", "solved", 1, 1.0),         # p11, without a first event
        ("service", NO_ANSWER, "solved", 1, 1.0),     # p5: the yes before Start over is gone
        ("prepare", NO_ANSWER, "solved", 1, 1.0),     # p9
        (OTHER, NO_ANSWER, OTHER, 1, 1.0),            # p7
    ]
    assert s.paths["sessions"].sum() == 10  # every session with an outcome; p8 has none
    assert s.sessions == 10  # p11 is no session
    assert s.paths.dtypes.tolist() == ["str", "str", "str", "int64", "float64"]


def test_outcome_by_path_follows_the_filters(path_store: EventStore) -> None:
    ko = summarize(path_store, lang="ko")
    assert path_rows(ko.paths) == [
        ("late", "yes", "solved", 1, 1 / 2),          # p1
        ("late", "yes", "not-yet", 1, 1 / 2),         # p3
        ("service", NO_ANSWER, "solved", 1, 1.0),     # p5
        ("prepare", NO_ANSWER, "solved", 1, 1.0),     # p9
        (OTHER, NO_ANSWER, OTHER, 1, 1.0),            # p7
    ]
    day_2 = summarize(path_store, start=dt.date(2025, 4, 2))  # p11 has no first event there
    assert path_rows(day_2.paths) == [
        ("refund", "yes", "partly", 1, 1.0),
        ("late", "yes", "solved", 1, 1.0),            # p10
        ("prepare", NO_ANSWER, "solved", 1, 1.0),
        (OTHER, NO_ANSWER, OTHER, 1, 1.0),
    ]
    english_day_1 = summarize(path_store, end=dt.date(2025, 4, 2), lang="en")
    assert path_rows(english_day_1.paths) == [
        ("late", "yes", "partly", 1, 1.0),            # p2
        ("late", "no", "escalated", 1, 1.0),          # p4
    ]
    none = summarize(path_store, start=dt.date(2026, 1, 1))
    assert none.paths.empty and list(none.paths.columns) == ["problem", "order", *summary._COLUMNS["paths"]]


def test_median_reads_the_middle_in_one_way_with_or_without_the_index(tmp_path: Path) -> None:
    statements: dict[str, list[str]] = {}
    for name, indexed in (("plain", False), ("indexed", True)):
        path = tmp_path / f"{name}.sqlite3"
        with open_store(path) as store:
            store.write(hand_events())
        if not indexed:
            store_execute(store, "DROP INDEX events_leave")
        with open_store(path) as store:
            query = store.query
            seen = statements.setdefault(name, [])
            store.query = lambda sql, params=(): (seen.append(sql), query(sql, params))[1]  # type: ignore[method-assign]
            medians = rows(summarize(store).time, "node", "median_ms")
        assert medians["order"] == 1500 and medians["channel"] == 4000
    for seen in statements.values():
        assert not any("row_number()" in sql or "EXPLAIN" in sql for sql in seen)
        assert sum("OFFSET" in sql for sql in seen) == 1
    assert [sql for sql in statements["plain"]] == statements["indexed"]


def test_filters_select_sessions_by_their_first_event(hand_store: EventStore) -> None:
    # 2 March: S4 and S3, which started before midnight; its later events still count.
    s = summarize(hand_store, start=dt.date(2025, 3, 2), end=dt.date(2025, 3, 3))
    assert (s.sessions, s.finished) == (2, 1)
    assert s.daily["sessions"].tolist() == [2]
    views = rows(s.funnel, "node", "views")
    assert (views["problem"], views["describe"], views["channel"], views["phone"]) == (2, 2, 2, 0)
    assert {n: e for n, e in rows(s.funnel, "node", "exits").items() if e} == {"goal": 1}
    assert rows(s.time, "node", "median_ms")["help"] == 3500  # S3's 4000 is after midnight
    assert s.start == dt.datetime(2025, 3, 2, tzinfo=UTC) and s.end == dt.datetime(2025, 3, 3, tzinfo=UTC)

    ko = summarize(hand_store, lang="ko")
    assert (ko.sessions, ko.finished) == (4, 1)
    assert ko.overview.iloc[0]["language_switches"] == 2  # S6 twice; S2 started in English
    assert ko.languages["sessions"].tolist() == [4, 0]
    assert rows(ko.funnel, "node", "views")["phone"] == 1

    one = summarize(hand_store, start=dt.datetime(2025, 3, 3, 9, 30), end="2025-03-04", lang="en")
    assert one.sessions == 1
    assert {n: e for n, e in rows(one.funnel, "node", "exits").items() if e} == {"phone": 1}
    assert rows(one.channels, "option", "sessions") == {
        "email": 0, "phone": 0, "chat": 0, "call": 0, "callback": 0}

    none = summarize(hand_store, start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 1))
    assert none.empty and none.sessions == 0 and math.isnan(none.completion_rate)


def test_empty_store(store_url: str) -> None:
    with open_store(store_url) as store:
        s = summarize(store)
    assert s.empty and s.sessions == 0
    for name, frame in s.frames().items():
        path = ["problem", "order"] if name in ("paths", "followup_paths") else []  # one column per path step
        assert list(frame.columns) == path + summary._COLUMNS[name], name
    assert s.daily.empty and s.outcomes.empty and s.paths.empty
    assert (s.funnel["views"] == 0).all() and s.funnel["drop_off"].isna().all()
    assert (s.choices["count"] == 0).all()
    assert s.time["median_ms"].isna().all()


def test_unknown_nodes_and_options_are_kept(store_url: str) -> None:
    """Events of an older flow (a node or options it no longer has) still show up."""
    t0 = dt.datetime(2025, 3, 1, tzinfo=UTC)
    events = [
        Event(t0, "old", "problem", "enter", None, "ko", None),
        Event(t0 + dt.timedelta(seconds=1), "old", "problem", "choose", "gone", "ko", 1000),
        Event(t0 + dt.timedelta(seconds=2), "old", "retired", "enter", None, "ko", 5),
        Event(t0 + dt.timedelta(seconds=3), "old", "retired", "next", None, "ko", 800),
        Event(t0 + dt.timedelta(seconds=4), "old", "channel", "enter", None, "ko", 5),
        Event(t0 + dt.timedelta(seconds=5), "old", "channel", "choose", "fax", "ko", 900),
        Event(t0 + dt.timedelta(seconds=6), "old", "done", "outcome", "meh", "ko", 900),
        Event(t0 + dt.timedelta(seconds=7), "odd", "channel", "enter", "odd", "en", None),
        Event(t0 + dt.timedelta(seconds=8), "odd", "channel", "enter", None, "en", 5),
    ]
    with open_store(store_url) as store:
        store.write(events)
        s = summarize(store)
    assert s.funnel["node"].tolist()[-1] == "retired"
    assert rows(s.funnel, "node", "views")["retired"] == 1
    assert rows(s.funnel, "node", "views")["channel"] == 2  # "odd" entered it twice, once with an option
    assert rows(s.funnel, "node", "exits")["done"] == 1  # its last event: not a finish
    assert rows(s.funnel, "node", "exits")["channel"] == 1
    assert ("problem", "gone", 1) in list(zip(s.choices["node"], s.choices["option"], s.choices["count"]))
    assert rows(s.channels, "option", "sessions")[summary.OTHER] == 1
    assert list(zip(s.outcomes["channel"], s.outcomes["outcome"])) == [(summary.OTHER, summary.OTHER)]
    assert list(zip(s.paths["problem"], s.paths["order"], s.paths["outcome"])) == [
        (summary.OTHER, NO_ANSWER, summary.OTHER)]
    assert rows(s.time, "node", "median_ms")["retired"] == 800


# --------------------------------------------------------------------------- against a reference


def reference(events: list[Event]) -> dict:
    """The summary's definitions, computed in plain Python from every event."""
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:  # in id order
        by_session[event.session].append(event)
    sessions = {s: evs for s, evs in by_session.items() if evs[0].elapsed_ms is None}
    finished = {s for s, evs in sessions.items() if any(e.action == "finish" for e in evs)}
    views: dict[str, set] = defaultdict(set)
    choices: dict[tuple, int] = defaultdict(int)
    leaving: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event.action == "enter":
            views[event.node].add(event.session)
        if event.action == "choose":
            choices[(event.node, event.option)] += 1
        if event.action in summary.LEAVE_ACTIONS and event.elapsed_ms is not None:
            leaving[event.node].append(event.elapsed_ms)
    exits: dict[str, int] = defaultdict(int)
    channels: dict[str, int] = defaultdict(int)
    outcomes: dict[tuple, int] = defaultdict(int)
    paths: dict[tuple, int] = defaultdict(int)
    contact_nodes, path_nodes = summary.flow_roles(FLOW)
    known = {node: FLOW.nodes[node].option_ids for node in path_nodes}
    for s, evs in by_session.items():  # without filters every session's events count
        answers = [e.option for e in evs if e.action == "outcome"]
        if not answers:
            continue
        problem = [i for i, e in enumerate(evs) if e.action == "choose" and e.node == "problem"]
        order = [i for i, e in enumerate(evs) if e.action == "choose" and e.node == "order"
                 and (not problem or i > problem[-1])]
        path = tuple(NO_ANSWER if not found else evs[found[-1]].option
                     if evs[found[-1]].option in known[node] else OTHER
                     for node, found in (("problem", problem), ("order", order)))
        paths[(*path, answers[-1] if answers[-1] in summary.OUTCOMES else OTHER)] += 1
    for s, evs in sessions.items():
        if s not in finished:
            exits[evs[-1].node] += 1
        contact = [e.option for e in evs if e.action == "choose" and e.node in contact_nodes]
        if contact:
            channels[contact[-1]] += 1
        answers = [e.option for e in evs if e.action == "outcome"]
        if answers:
            outcomes[(contact[-1] if contact else NO_CHANNEL, answers[-1])] += 1
    return {
        "sessions": len(sessions),
        "finished": len(finished),
        "languages": {lang: sum(1 for evs in sessions.values() if evs[0].lang == lang) for lang in ("ko", "en")},
        "switches": sum(1 for e in events if e.action == "language"),
        "views": {node: len(v) for node, v in views.items()},
        "exits": dict(exits),
        "choices": dict(choices),
        "medians": {node: statistics.median(v) for node, v in leaving.items()},
        "channels": dict(channels),
        "outcomes": dict(outcomes),
        "paths": dict(paths),
    }


def check_against_reference(s: Summary, ref: dict) -> None:
    assert s.sessions == ref["sessions"] and s.finished == ref["finished"]
    assert rows(s.languages, "lang", "sessions") == ref["languages"]
    assert s.overview.iloc[0]["language_switches"] == ref["switches"]
    assert {n: v for n, v in rows(s.funnel, "node", "views").items() if v} == ref["views"]
    assert {n: v for n, v in rows(s.funnel, "node", "exits").items() if v} == ref["exits"]
    assert {(n, o): c for n, o, c in zip(s.choices["node"], s.choices["option"], s.choices["count"])
            if c} == ref["choices"]
    medians = {n: m for n, m in rows(s.time, "node", "median_ms").items() if not math.isnan(m)}
    assert medians == pytest.approx(ref["medians"])
    assert {o: c for o, c in rows(s.channels, "option", "sessions").items() if c} == ref["channels"]
    assert {(c, o): n for c, o, n in zip(s.outcomes["channel"], s.outcomes["outcome"],
                                          s.outcomes["sessions"])} == ref["outcomes"]
    assert {(p, o, c): n for p, o, c, n in zip(s.paths["problem"], s.paths["order"], s.paths["outcome"],
                                               s.paths["sessions"])} == ref["paths"]
    assert s.funnel["exits"].sum() + s.finished == s.sessions


def test_demo_log_matches_a_plain_python_reference(store_url: str) -> None:
    with open_store(store_url) as store:
        demo.fill(store, 6000, seed=11, start=dt.date(2025, 5, 1), days=3, batch=1000)
        events = store.read_events()
        check_against_reference(summarize(store), reference(events))
        start, end = dt.datetime(2025, 5, 2, tzinfo=UTC), dt.datetime(2025, 5, 3, tzinfo=UTC)
        selected = {e.session for e in events
                    if e.elapsed_ms is None and start <= e.ts < end and e.lang == "en"}
        check_against_reference(summarize(store, start, end, "en"),
                                reference([e for e in events if e.session in selected]))


# --------------------------------------------------------------------------- sessions rollup and events agree


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def v2_url(request: pytest.FixtureRequest) -> str:
    """An empty store as log.py creates it (with the sessions rollup)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_schema_url")


def summarize_from_events(store: EventStore, monkeypatch: pytest.MonkeyPatch, **filters) -> Summary:
    """summarize() of the same events written at once to a new SQLite store: its derived tables
    made from every event in one pass (from watermark 0), not write by write, and in SQLite
    whatever the store's dialect."""
    import tempfile

    events = store.read_events()
    with tempfile.TemporaryDirectory() as folder, open_store(Path(folder) / "copy.sqlite3") as copy:
        copy.write(events)
        assert copy.read_events() == events
        return summarize(copy, **filters)


def assert_same_summary(a: Summary, b: Summary) -> None:
    for name in Summary.TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)


def spied(store: EventStore) -> list[str]:
    """The statements the store runs from now on."""
    seen: list[str] = []
    query = store.query
    store.query = lambda sql, params=(): (seen.append(sql), query(sql, params))[1]  # type: ignore[method-assign]
    return seen


FILTERS = [
    {},
    {"start": dt.date(2025, 5, 2)},
    {"end": dt.datetime(2025, 5, 2, 13, 30)},
    {"lang": "en"},
    {"start": "2025-05-01T06:00", "end": dt.date(2025, 5, 3), "lang": "ko"},
    {"start": dt.date(2030, 1, 1)},
]


def test_rollup_and_events_give_the_same_summary(v2_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(v2_url) as store:
        demo.fill(store, 6000, seed=12, start=dt.date(2025, 5, 1), days=3, batch=700)
        for filters in FILTERS:
            assert_same_summary(summarize(store, **filters), summarize_from_events(store, monkeypatch, **filters))


def test_rollup_store_reads_the_events_only_for_choices_and_times(v2_url: str) -> None:
    with open_store(v2_url) as store:
        store.write(hand_events())
        for filters in FILTERS[:2]:
            statements = spied(store)
            assert summarize(store, **filters).sessions == (7 if not filters else 0)
            on_events = [sql for sql in statements if "FROM events" in sql and "FROM sessions" not in sql
                         and "FROM session_steps" not in sql]
            # The first events (days and languages), the choices and the leaving events (times),
            # and the return visits' few recall/followup events (outcomes after contact).
            assert on_events and all(sql.startswith("SELECT value FROM meta")
                                     or "elapsed_ms IS NULL" in sql or "action = 'choose'" in sql
                                     or summary._LEAVING in sql or "action IN ('recall', 'followup')" in sql
                                     for sql in on_events)
            # From the derived tables: entered steps, finishes, switches and exits, and one
            # statement over sessions for contact choices, outcomes and paths; for the whole
            # log, the days and the entered steps from their totals.
            derived = [sql for sql in statements if sql not in on_events]
            assert sum("FROM session_steps" in sql for sql in derived) == (1 if filters else 0)
            assert sum("FROM step_totals" in sql for sql in derived) == (0 if filters else 1)
            assert sum("FROM session_days" in sql for sql in derived) == (0 if filters else 1)
            if not filters:
                assert not any("elapsed_ms IS NULL" in sql for sql in on_events)
            assert sum("FROM sessions" in sql for sql in derived) == 2
            assert sum("answers" in sql for sql in derived) == 1
            assert not any("session_answers" in sql or "EXPLAIN" in sql for sql in statements)


def test_a_session_with_two_first_events_is_summarized_from_the_events(
        v2_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The logger never writes it; the rollup keeps one first event per session, so the summary
    falls back on the events, whose definitions count each first event."""
    t0 = dt.datetime(2025, 3, 1, 12, tzinfo=UTC)
    twice = [
        Event(t0, "twice", "problem", "enter", None, "ko", None),
        Event(t0 + dt.timedelta(days=2), "twice", "problem", "enter", None, "en", None),
        Event(t0 + dt.timedelta(days=2, seconds=5), "twice", "problem", "choose", "late", "en", 5000),
    ]
    with open_store(v2_url) as store:
        store.write(hand_events())
        store.write(twice)
        s = summarize(store)
        assert_same_summary(s, summarize_from_events(store, monkeypatch))
        assert s.sessions == 9 and s.daily["en"].tolist() == [1, 1, 2]
        assert rows(s.funnel, "node", "exits")["problem"] == 3  # once per first event
        march_3 = summarize(store, start=dt.date(2025, 3, 3))
        assert march_3.sessions == 4 and rows(march_3.funnel, "node", "views")["problem"] == 4
        assert_same_summary(march_3, summarize_from_events(store, monkeypatch, start=dt.date(2025, 3, 3)))


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_older_store_opened_read_only_is_refused_with_a_clear_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary reads only the current schema. A read-only store (never migrated) at an older
    version gets a message saying what to do; opened for writing once, it is migrated and
    summarized like a store that always had the current schema."""
    path = tmp_path / "events.sqlite3"
    with monkeypatch.context() as m:
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:1])
        with open_store(path) as store:
            store.write(hand_events())
    with open_store(f"sqlite://{path}?mode=ro") as store:
        with pytest.raises(log.StoreOutdated, match=rf"version 1; the summary reads version {log.SCHEMA_VERSION}\. It is "
                           r"migrated in place.*python -m widgets\.log migrate"):
            summarize(store)
    before = sha256_of(path)
    from widgets import dashboard  # opens SQLite read-only: says what to do

    board = dashboard.Dashboard(f"sqlite://{path}")
    board.refresh()
    assert "older format" in board.status.value and "python -m widgets.log migrate" in board.status.value
    assert sha256_of(path) == before
    done = subprocess.run([sys.executable, "-m", "widgets.log", "migrate", f"sqlite://{path}"],
                          capture_output=True, text=True, check=True)
    assert f"log schema version {log.SCHEMA_VERSION}" in done.stdout
    with open_store(path) as store:  # already migrated
        s = summarize(store)
        assert_same_summary(s, summarize_from_events(store, monkeypatch))
    with open_store(f"sqlite://{path}?mode=ro") as store:
        assert_same_summary(summarize(store), s)
    assert s.sessions == 7 and s.finished == 2


@pytest.mark.parametrize("version", [2, 3, 4])
def test_older_stores_give_the_same_summary_after_migration(
        v2_url: str, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """Stores whose rollup had columns named after steps (versions 2, 3), or kept each step's
    last answer only in session_answers (version 4): migrated to sessions.answers, their summary
    is the one computed from the events, before and after more events arrive."""
    with monkeypatch.context() as m:
        m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:version])
        with open_store(v2_url) as store:
            store.write(path_events())
    with open_store(v2_url) as store:  # migrates
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [(str(log.SCHEMA_VERSION),)]
        statements = spied(store)
        before = summarize(store)
        assert_same_summary(before, summarize_from_events(store, monkeypatch))
        assert_same_summary(summarize(store, lang="ko"), summarize_from_events(store, monkeypatch, lang="ko"))
        assert any("FROM session_steps" in sql for sql in statements)
        store.write(hand_events())
        both = summarize(store)
        assert_same_summary(both, summarize_from_events(store, monkeypatch))
    assert before.paths["sessions"].sum() == 10
    assert both.paths["sessions"].sum() == 12  # with S1 and S4
    assert ("return", "no", "partly") in list(zip(both.paths["problem"], both.paths["order"],
                                                  both.paths["outcome"]))


def test_contact_and_path_steps_are_parameters(v2_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps that count as the contact decision and the path come from the flow or the
    caller; the store keeps every step's last answer, so any choice of steps can be summarized."""
    with open_store(v2_url) as store:
        store.write(hand_events())
        s = summarize(store, contact_nodes=("channel",))
        assert_same_summary(s, summarize_from_events(store, monkeypatch, contact_nodes=("channel",)))
        one = summarize(store, path_nodes=("problem",))
        none = summarize(store, path_nodes=())
    # S2 called (phone node), which no longer counts: 3 sessions chose at channel.
    assert rows(s.channels, "option", "sessions") == {"email": 1, "phone": 1, "chat": 1}
    assert list(one.paths.columns) == ["problem", "outcome", "sessions", "share"]
    assert list(none.paths.columns) == ["outcome", "sessions", "share"]
    assert one.paths["sessions"].sum() == none.paths["sessions"].sum() == s.paths["sessions"].sum()


def many_node_events(count: int) -> list[Event]:
    """One session per node id, each entering its own node (``x-0000``, ``x-0001``...; every
    other one first with an option, as no guide writes it) and leaving it with Next: ``count``
    distinct node ids, each with a time to summarize."""
    t0 = dt.datetime(2025, 3, 1, tzinfo=UTC)
    events = []
    for i in range(count):
        ts, session, node = t0 + dt.timedelta(seconds=10 * i), f"m{i:04}", f"x-{i:04}"
        events.append(Event(ts, session, node, "enter", "odd" if i % 2 else None, "ko", None))
        events.append(Event(ts + dt.timedelta(seconds=1), session, node, "enter", None, "ko", 5))
        events.append(Event(ts + dt.timedelta(seconds=2), session, node, "next", None, "ko", 1000 + i))
    return events


@pytest.mark.parametrize("indexed", [True, False], ids=["leave-index", "no-leave-index"])
def test_a_log_with_many_distinct_node_ids_is_summarized(v2_url: str, indexed: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """More node ids than SQLite allows arms in one compound SELECT (500): every node still
    gets its views (half of them entered once with an option, counted apart), exits and median
    time, with and without the index that serves the medians, with and without filters."""
    events = many_node_events(600)
    with open_store(v2_url) as store:
        store.write(events)
        if not indexed:
            store_execute(store, "DROP INDEX events_leave")
    with open_store(v2_url) as store:
        s = summarize(store)
        check_against_reference(s, reference(store.read_events()))
        assert_same_summary(s, summarize_from_events(store, monkeypatch))
        filtered = summarize(store, start=dt.date(2025, 3, 1), lang="ko")
        assert_same_summary(filtered, summarize_from_events(store, monkeypatch, start=dt.date(2025, 3, 1),
                                                            lang="ko"))
    assert filtered.sessions == 600
    medians = rows(s.time, "node", "median_ms")
    assert len([n for n in medians if n.startswith("x-")]) == 600
    assert medians["x-0000"] == 1000 and medians["x-0599"] == 1599
    assert rows(s.funnel, "node", "views")["x-0333"] == 1


def test_summary_indexes_match_the_statements() -> None:
    """SQLite uses a partial index only for a WHERE stated in the same terms."""
    choose, leave = summary.INDEXES
    assert choose.endswith("WHERE action = 'choose'") and leave.endswith(f"WHERE {summary._LEAVING}")
    assert summary._LEAVING == "action IN (" + ", ".join(f"'{a}'" for a in summary.LEAVE_ACTIONS) + ")"
    assert all(statement in log.MIGRATIONS[1].sqlite and statement in log.MIGRATIONS[1].postgresql
               for statement in summary.INDEXES)


# --------------------------------------------------------------------------- demo data


def test_demo_is_deterministic_for_a_seed() -> None:
    first = list(demo.generate(3000, seed=3, start=dt.date(2025, 1, 1), days=2))
    again = list(demo.generate(3000, seed=3, start=dt.date(2025, 1, 1), days=2))
    other = list(demo.generate(3000, seed=4, start=dt.date(2025, 1, 1), days=2))
    assert len(first) == 3000 and first == again
    assert first != other


def test_demo_events_are_valid_walks_of_the_flow() -> None:
    events = list(demo.generate(20_000, seed=9, start=dt.date(2025, 1, 1), days=5))
    assert len(events) == 20_000
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    assert events[0].ts >= dt.datetime(2025, 1, 1, tzinfo=UTC)
    assert events[-1].ts < dt.datetime(2025, 1, 8, tzinfo=UTC)
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session].append(event)
    langs, actions = set(), set()
    for session, evs in by_session.items():
        check_session(evs)
        langs.add(evs[0].lang)
        actions.update(e.action for e in evs)
    assert langs == {"ko", "en"}
    assert actions == {"enter", "choose", "next", "back", "restart", "language", "finish", "outcome"}
    assert len(by_session) > 500


def check_session(events: list[Event]) -> None:
    """Replay a demo session through the engine: it must emit exactly the logged events."""
    first = events[0]
    assert (first.node, first.action, first.elapsed_ms) == (FLOW.start, "enter", None)
    previous = first.ts
    for event in events[1:]:
        assert event.elapsed_ms == int((event.ts - previous) / dt.timedelta(milliseconds=1))
        previous = event.ts
    emitted: list[tuple] = []
    engine = Engine(FLOW, lang=first.lang,
                    on_transition=lambda i: emitted.append((i.node, i.action, i.option, i.lang)))
    engine.start()
    logged = [(e.node, e.action, e.option, e.lang) for e in events]
    path = [FLOW.start]
    for i, (node, action, option, lang) in enumerate(logged):
        if i < len(emitted):  # an event the engine emitted on its own (enter, finish)
            assert emitted[i] == logged[i]
            if action == "enter" and i > 0:
                check_edge(logged[i - 1], node, path)
            continue
        assert node == engine.node.id, f"{action} logged at {node}, visitor is at {engine.node.id}"
        if action == "choose":
            assert option in FLOW[node].option_ids
            engine.choose(option)
        elif action == "next":
            engine.advance()
        elif action == "back":
            engine.back()
        elif action == "restart":
            engine.restart()
        elif action == "language":
            engine.set_language(lang)
        elif action == "outcome":
            assert engine.finished and option in demo.OUTCOMES
            emitted.append((node, action, option, lang))
        else:
            raise AssertionError(f"{action} without a visitor action before it")
    # The generator stops mid-visit at the very end: only a trailing enter/finish may be missing.
    assert emitted[:len(logged)] == logged
    assert all(a in ("enter", "finish") for _, a, _, _ in emitted[len(logged):])


def check_edge(cause: tuple, target: str, path: list[str]) -> None:
    """An enter follows a valid edge of the flow from the node the visitor acted on."""
    node, action, option, _ = cause
    if action == "choose":
        assert target in FLOW[node].option(option).next.targets
        path.append(target)
    elif action == "next":
        assert target in FLOW[node].next.targets
        path.append(target)
    elif action == "back":
        path.pop()
        assert target == path[-1]
    elif action == "restart":
        path[:] = [FLOW.start]
        assert target == FLOW.start
    else:
        raise AssertionError(f"enter {target} after {action}")


def test_outcome_vocabulary_agrees() -> None:
    import widgets.engine

    assert demo.OUTCOMES == summary.OUTCOMES
    engine_outcomes = getattr(widgets.engine, "OUTCOMES", None)  # the guide's own question
    if engine_outcomes is not None:
        assert tuple(engine_outcomes) == summary.OUTCOMES


def test_demo_command_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite3"
    proc = subprocess.run([sys.executable, "-m", "widgets.demo", "2500", "--url", str(path),
                           "--seed", "5", "--start", "2025-02-01", "--days", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2,500" in proc.stdout
    with open_store(path) as store:
        assert store.query("SELECT count(*) FROM events")[1] == [(2500,)]
        assert store.read_events() == list(demo.generate(2500, seed=5, start=dt.date(2025, 2, 1), days=2))


# --------------------------------------------------------------------------- the guide stays light


def test_guide_modules_do_not_import_pandas() -> None:
    code = ("import sys, widgets.app, widgets.view, widgets.engine, widgets.log, widgets.demo; "
            "heavy = sorted(m for m in ('pandas', 'matplotlib', 'widgets.summary', 'widgets.dashboard', "
            "'widgets.flowmap', 'widgets.review') "
            "if m in sys.modules); print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the dashboard


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite://{tmp_path_factory.mktemp('dash') / 'demo.sqlite3'}"
    with open_store(url) as store:
        demo.fill(store, 8000, seed=2, start=dt.date(2025, 4, 1), days=7)
    return url


def test_dashboard_shows_the_summary(demo_url: str) -> None:
    import base64
    import io
    import re

    from widgets.dashboard import Dashboard

    board = Dashboard(demo_url)
    board.refresh()
    expected = summarize(demo_url)
    assert board.status.value == "" and board.content.layout.display is None
    assert f"<b>{expected.sessions:,}</b>" in board.kpis.value
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in board.charts)
    titles = [board.tables.get_title(i) for i in range(len(board.tables.children))]
    assert sorted(titles) == sorted(Summary.TABLES)
    funnel_html = board.tables.children[titles.index("funnel")].value
    # steps by their titles (English by default), the CSV files by their ids
    assert "<table" in funnel_html and html.escape(FLOW.nodes["need-more-help"].title("en")) in funnel_html
    assert "need-more-help" not in funnel_html
    links = dict(re.findall(r'download="guide-([a-z_]+)\.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                            board.downloads.value))
    assert sorted(links) == sorted(Summary.TABLES)
    funnel = pd.read_csv(io.BytesIO(base64.b64decode(links["funnel"])))
    assert funnel["views"].tolist() == expected.funnel["views"].tolist()


def test_dashboard_filters(demo_url: str) -> None:
    from widgets.dashboard import Dashboard

    board = Dashboard(demo_url)
    board.refresh()
    board.lang.value = "en"  # each change refreshes
    assert board.summary is not None and board.summary.lang == "en"
    assert board.summary.sessions == summarize(demo_url, lang="en").sessions
    board.start.value = board.end.value = dt.date(2025, 4, 3)  # the To day is included
    assert board.summary.sessions == summarize(demo_url, dt.date(2025, 4, 3), dt.date(2025, 4, 4), "en").sessions
    assert "guide-funnel-20250403-20250404-en.csv" in board.downloads.value
    board.start.value = dt.date(2030, 1, 1)
    assert "after the end date" in board.status.value and board.content.layout.display == "none"
    board.end.value = dt.date(2030, 1, 31)
    assert "No sessions match" in board.status.value


def test_dashboard_without_a_log_says_so_and_creates_nothing(tmp_path: Path) -> None:
    from widgets.dashboard import Dashboard

    missing = tmp_path / "nothing" / "events.sqlite3"
    board = Dashboard(str(missing))
    board.refresh()
    assert "No data yet" in board.status.value and board.content.layout.display == "none"
    assert not missing.parent.exists()
    with open_store(tmp_path / "empty.sqlite3"):
        pass
    board = Dashboard(f"sqlite://{tmp_path / 'empty.sqlite3'}")
    board.refresh()
    assert "No data yet" in board.status.value


# --------------------------------------------------------------------------- the notebook


def run_notebook(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(ROOT), "-o", "addopts=", str(ROOT / "notebooks" / "summary.ipynb")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


@pytest.mark.slow
def test_summary_notebook_runs_on_demo_data(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'demo.sqlite3'}"
    with open_store(url) as store:
        demo.fill(store, 5000, seed=1, start=dt.date(2025, 4, 1), days=7)
    proc = run_notebook({"GUIDE_LOG_URL": url}, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_summary_notebook_runs_without_data(tmp_path: Path) -> None:
    proc = run_notebook({"GUIDE_LOG_URL": "", "GUIDE_DATA_DIR": str(tmp_path / "nothing")}, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "nothing").exists()  # reading never creates a store


def test_summary_notebook_is_committed_without_outputs() -> None:
    import json

    notebook = json.loads((ROOT / "notebooks" / "summary.ipynb").read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert len(code) == 1
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "import pandas" not in "".join(code[0]["source"])


#: Deleting the sessions that started before a day, from every table, then counting the totals
#: again from what is left: the retention procedure for schema 7 (SQLite's day of a timestamp).
RETENTION = """\
CREATE TEMP TABLE old AS SELECT DISTINCT session FROM events WHERE elapsed_ms IS NULL AND ts < ?;
DELETE FROM events WHERE session IN (SELECT session FROM old);
DELETE FROM session_steps WHERE session IN (SELECT session FROM old);
DELETE FROM log_gaps WHERE session IN (SELECT session FROM old);
DELETE FROM sessions WHERE session IN (SELECT session FROM old);
DELETE FROM step_totals;
INSERT INTO step_totals (node, views, leaves)
 SELECT node, sum(entered), sum(leaves) FROM session_steps GROUP BY node;
DELETE FROM session_days;
INSERT INTO session_days (day, lang, firsts)
 SELECT substr(ts, 1, 10), lang, count(*) FROM events WHERE elapsed_ms IS NULL GROUP BY 1, 2"""


def test_after_deleting_old_sessions_the_summary_is_that_of_the_rest(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "events.sqlite3"
    with open_store(path) as store:
        demo.fill(store, 4000, seed=13, start=dt.date(2025, 6, 1), days=4, batch=300)
        full = summarize(store)
    conn = sqlite3.connect(path)
    with conn:
        for statement in RETENTION.split(";\n"):
            conn.execute(statement, ("2025-06-03",) if "?" in statement else ())
    conn.close()
    with open_store(path) as store:
        kept = summarize(store)
        assert 0 < kept.sessions < full.sessions
        assert kept.daily["day"].min() == pd.Timestamp("2025-06-03")
        with open_store(tmp_path / "fresh.sqlite3") as fresh:
            fresh.write(store.read_events())
            assert_same_summary(kept, summarize(fresh))
