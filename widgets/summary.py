"""The interaction log as pandas tables: the only module of the package that imports pandas.

:func:`summarize` runs a few GROUP BY queries where the log lives (SQLite or PostgreSQL, through
the store's read-only ``query``) and loads only their small results into pandas; the log itself
is never read row by row. The guide's own kernel never imports this module.

Definitions (every count is exact):

session
    One visit, identified by its *first event*: the event the log writes with ``elapsed_ms``
    NULL (the logger writes NULL for a session's first event and only for it). Its timestamp
    and language are the session's start time and language. A session whose first event was
    lost (a buffer overflow, recorded in ``log_gaps``) is not counted as a session.
filters
    ``start``/``end`` (UTC; inclusive start, exclusive end) and ``lang`` select *sessions* by
    their first event; every table then counts all events of the selected sessions (a visit
    crossing midnight is not cut in two).
completion rate
    Sessions with at least one ``finish`` event ÷ sessions.
funnel, per node
    ``views``: sessions that entered the node (at least one ``enter`` event there);
    ``exits``: sessions whose last event (highest id) is at the node and that never finished;
    ``drop_off`` = exits ÷ views. Nodes on different branches each have their own views, so the
    funnel is not assumed to be linear. Nodes come in flow order: by their shortest distance
    (in steps) from the start node, ties in the order of ``flow.yaml``; nodes found in the log
    but no longer in the flow come last.
choices
    ``choose`` events per (decision, option), with each option's share within its decision.
    Every option of the flow is listed, with 0 when never chosen.
contact channels
    Each session's *final contact choice*: its last ``choose`` event at any of the flow's
    contact decisions (the steps with the role ``contact`` in ``flow.yaml``: today the
    ``channel`` decision and the ``phone`` step). A visitor who asks for a call-back and then
    picks a channel on Amazon's contact screen counts under that channel; one who leaves after
    asking for a call-back counts as ``callback``.
languages
    Sessions by the language of their first event; ``overview`` has the number of ``language``
    (switch) events and of sessions that switched at least once.
time per node
    The time spent on a node is the ``elapsed_ms`` of each event that *leaves* it — a
    ``choose``, ``next``, ``back`` or ``restart`` at the node — which is the time since the
    session's previous event, i.e. since the visitor entered that screen (or since they
    switched language on it). ``median_ms`` is the exact median of those values per node (the
    mean of the two middle values for an even count),
    over every leaving event, so a screen seen twice counts twice. ``leaves`` is their number.
    Listed for the nodes of the funnel (a session can only leave a node it entered).
outcomes
    Each session's last ``outcome`` event (solved, partly, not-yet, escalated), by the session's
    final contact choice (``(none)`` when it made none). Empty when the log has no outcomes.
    Contact options and outcomes the flow does not know (an older flow) show as ``(other)``.
paths
    The same outcomes by the session's route through the guide: its answer at each of the
    flow's path decisions (role ``path``, in flow order; today ``problem``, the kind of problem,
    and ``order``, whether it is about a specific order), each the session's last ``choose``
    event there; one column per step. An answer at a later step counts only when it came after
    the answer at the first step (so an answer given before a Start over onto a path that skips
    the question does not); ``(none)``: no answer (that path does not ask it). ``share`` is
    within the path. Empty when the log has no outcomes; options the flow does not know show as
    ``(other)``.
followups, followup_paths
    The outcomes given *after contact*, on a visit that came back with the return link: each
    such session's last ``followup`` event, counted by the earlier visit's answers that its
    ``recall`` events carry (the link's ids): by the final contact choice among them
    (``followups``: channel, outcome, sessions, share) and by the answers at the path decisions
    (``followup_paths``). ``outcomes`` and ``paths`` above count the ``outcome`` events the
    guide logged until then, when it asked on its last screen, before the visitor had
    contacted Amazon: they are kept apart, never added up with these. Read from the events
    (the few ``recall``/``followup`` rows, one statement, through their index).

Without filters, node, choice and time tables count every event, including those of a session
whose first event was lost; with filters, only the events of the selected sessions.

SQL: the same statements run on SQLite and PostgreSQL, except the day of a timestamp. The median
is read the same way on both: each node's leaving events are counted, then the middle one or two
read with ``ORDER BY elapsed_ms LIMIT 1 or 2 OFFSET (n-1)/2`` through the index that holds them in
that order.

Where the numbers come from (log schema version 7, see widgets/log/migrations and
widgets/log/derive.py): for the whole log, the sessions per day and language from
``session_days`` and the views and leaving events per node from ``step_totals`` (a few rows,
kept by every write); with filters, the days and languages from the selected first events (an
index holds them) and the views and leaving events from ``session_steps`` (one row per session
and step). Finishes, switches and exits from ``sessions`` (one row per session, with its number
of first events, so a session whose first event was written twice counts twice, as the
definitions say). Contact channels, outcomes and paths from one statement grouping ``sessions``
by each session's answers (its last answer at each step, in the order given) and last outcome:
a few hundred groups, in which the steps the flow gives those roles are found here in Python,
so renaming, adding or moving a step changes ``flow.yaml`` only. Choices and times from the
events, through the indexes in :data:`INDEXES`. The derived tables are brought up to date by
every write (in its transaction). A store at an older schema version is migrated when it is
opened for writing; opened read-only, the summary
raises StoreOutdated with what to do.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, NamedTuple, Sequence

import pandas as pd

from .flow import Flow, default_flow
from .log import SCHEMA_VERSION, SUMMARY_INDEXES, StoreOutdated
from .log.derive import LEAVE_ACTIONS, parse_answers
from .log.events import LANGUAGES, OUTCOMES

__all__ = ["Summary", "summarize", "transitions", "node_order", "flow_roles", "INDEXES", "LEAVE_ACTIONS",
           "OUTCOMES", "NO_CHANNEL", "NO_ANSWER", "OTHER"]

#: The channel of sessions that made no contact choice (in ``outcomes``).
NO_CHANNEL = "(none)"
#: The answer of a session that did not answer a path decision (in ``paths``).
NO_ANSWER = "(none)"
#: A contact option or outcome that the flow (or OUTCOMES) does not know (e.g. from an old flow).
OTHER = "(other)"
_OTHER_CODE = 63
# Codes are packed under event ids (id * _SHIFT + code) so that the greatest is the latest.
_SHIFT = 64

# The SQL text of the leaving-event condition: SQLite uses the partial index events_leave only
# when a query states its WHERE in the same terms.
_LEAVING = "action IN ('choose', 'next', 'back', 'restart')"

#: Nodes per statement with one arm per node (SQLite takes at most 500 arms in a compound
#: SELECT; at five parameters an arm, 100 arms also stay within 999 parameters).
_ARM_BATCH = 100

#: The indexes that serve summarize()'s statements on the events: the choose events by
#: (node, option) and the events leaving each node in elapsed_ms order. Every store has them
#: from log schema version 2 on (its migration creates them; see widgets/log.py); they are
#: listed here for reference only.
INDEXES: tuple[str, ...] = SUMMARY_INDEXES

_COLUMNS: dict[str, list[str]] = {
    "overview": ["sessions", "finished", "completion_rate", "language_switches",
                 "switched_sessions", "switched_share"],
    "daily": ["day", "sessions", *LANGUAGES],
    "funnel": ["node", "kind", "depth", "views", "exits", "drop_off"],
    "choices": ["node", "option", "count", "share"],
    "channels": ["node", "option", "sessions", "share"],
    "languages": ["lang", "sessions", "share"],
    "time": ["node", "leaves", "median_ms"],
    "outcomes": ["channel", "outcome", "sessions", "share"],
    "paths": ["outcome", "sessions", "share"],  # after one column per path step (see summarize)
    "followups": ["channel", "outcome", "sessions", "share"],
    "followup_paths": ["outcome", "sessions", "share"],  # after one column per path step
}


@dataclass(frozen=True)
class Summary:
    """The log's summary: one DataFrame per table (see the module docstring for definitions).

    ``overview``  one row: sessions, finished, completion_rate, language_switches,
                  switched_sessions, switched_share
    ``daily``     day (datetime64, UTC dates), sessions, and sessions per start language
    ``funnel``    node, kind, depth, views, exits, drop_off (NaN without views)
    ``choices``   node, option, count, share (within the node)
    ``channels``  node, option, sessions, share (of sessions with a contact choice)
    ``languages`` lang, sessions, share
    ``time``      node, leaves, median_ms (NaN without leaving events)
    ``outcomes``  channel, outcome, sessions, share (within the channel)
    ``paths``     problem, order, outcome, sessions, share (within the problem and order)
    ``followups`` channel, outcome, sessions, share: outcomes given after contact (the return
                  link), apart from ``outcomes`` (asked before contact, older rows)
    ``followup_paths``  the same by path (one column per path step)
    """

    overview: pd.DataFrame
    daily: pd.DataFrame
    funnel: pd.DataFrame
    choices: pd.DataFrame
    channels: pd.DataFrame
    languages: pd.DataFrame
    time: pd.DataFrame
    outcomes: pd.DataFrame
    paths: pd.DataFrame
    followups: pd.DataFrame | None = None
    followup_paths: pd.DataFrame | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    lang: str | None = None

    #: The table names, in display order.
    TABLES: ClassVar[tuple[str, ...]] = tuple(_COLUMNS)

    def __post_init__(self) -> None:
        # a Summary made without the after-contact tables (older callers) has them empty
        for name in ("followups", "followup_paths"):
            if getattr(self, name) is None:
                columns = list(self.paths.columns) if name == "followup_paths" else _COLUMNS[name]
                object.__setattr__(self, name, pd.DataFrame(columns=columns))

    @property
    def sessions(self) -> int:
        return int(self.overview["sessions"].iloc[0])

    @property
    def finished(self) -> int:
        return int(self.overview["finished"].iloc[0])

    @property
    def completion_rate(self) -> float:
        return float(self.overview["completion_rate"].iloc[0])

    @property
    def empty(self) -> bool:
        """True when no session matches (an empty log, or filters that select nothing)."""
        return self.sessions == 0

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tables by name, in a fixed order (for display and export)."""
        return {name: getattr(self, name) for name in self.TABLES}


# --------------------------------------------------------------------------- flow order


def node_order(flow: Flow) -> dict[str, int]:
    """Node id → shortest distance in steps from the start node, in flow order.

    Breadth-first over every possible edge (option and ``next`` targets, whatever the rule);
    the dict's order is (distance, position in the flow file).
    """
    position = {node_id: i for i, node_id in enumerate(flow.nodes)}
    depth = {flow.start: 0}
    queue = deque([flow.start])
    while queue:
        node = flow[queue.popleft()]
        routes = [option.next for option in node.options]
        if node.next is not None:
            routes.append(node.next)
        for route in routes:
            for target in route.targets:
                if target not in depth:
                    depth[target] = depth[node.id] + 1
                    queue.append(target)
    ordered = sorted(depth, key=lambda n: (depth[n], position[n]))
    return {n: depth[n] for n in ordered}


# --------------------------------------------------------------------------- SQL


class _SessionNumbers(NamedTuple):
    """What summarize() counts per session, for the selected sessions (see _Query)."""

    daily: list[tuple[Any, ...]]  # (day, start language, first events)
    finished: int  # sessions with a finish event
    switches: int  # language events
    switched: int  # sessions with a language event
    views: list[tuple[Any, ...]]  # (node, sessions that entered it)
    exits: list[tuple[Any, ...]]  # (node, first events of unfinished sessions whose last event is there)


def _positions(values: Sequence[Any]) -> dict[Any, int]:
    """Each value's position in ``values`` from 1 (the first, should one repeat)."""
    positions: dict[Any, int] = {}
    for i, value in enumerate(values, 1):
        positions.setdefault(value, i)
    return positions


class _Query:
    """Builds and runs the summary's statements against one store, with its filters.

    The store must be at the current log schema version (a store opened for writing is
    migrated when opened; an older one opened read-only raises StoreOutdated). One way for every
    store: sessions and their start from the first events (an index holds them), the rest per
    session from the derived tables (``sessions``, ``session_steps``), choices and times from the
    events through the indexes that give them in order.
    """

    def __init__(self, store: Any, start: dt.datetime | None, end: dt.datetime | None,
                 lang: str | None) -> None:
        self.store = store
        self.dialect = getattr(store, "dialect", "sqlite")
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported SQL dialect {self.dialect!r}")
        self.placeholder = getattr(store, "placeholder", "?")
        first = ["elapsed_ms IS NULL"]
        self.first_params: list[Any] = []
        if start is not None:
            first.append("ts >= ?")
            self.first_params.append(self._ts(start))
        if end is not None:
            first.append("ts < ?")
            self.first_params.append(self._ts(end))
        if lang is not None:
            first.append("lang = ?")
            self.first_params.append(lang)
        #: WHERE terms selecting the first events of the selected sessions.
        self.first_where = " AND ".join(first)
        self.filtered = bool(self.first_params)
        self.version = self._schema_version()
        if self.version != SCHEMA_VERSION:
            raise StoreOutdated(
                f"{store!r} has log schema version {self.version}; the summary reads version "
                f"{SCHEMA_VERSION}. It is migrated in place, keeping every row, when it is next "
                "opened for writing: by the guide on its next visit, or now with "
                "'python -m widgets.log migrate [URL]'. Nothing was changed.")
        self._answer_rows: list[tuple[Any, ...]] | None = None
        #: (node, leaving events with a time) of the selected sessions, read by numbers()
        self.leaves: list[tuple[Any, ...]] | None = None

    def _ts(self, value: dt.datetime) -> Any:
        if self.dialect == "sqlite":
            # The SQLite store's text format, which sorts as time.
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value

    def _schema_version(self) -> int:
        """The store's log schema version (0 when it has none)."""
        try:
            rows = self.run("SELECT value FROM meta WHERE key = 'schema_version'")
        except Exception:  # noqa: BLE001 - no meta table: not a log (an empty file, say)
            return 0
        return int(rows[0][0]) if rows and str(rows[0][0]).isdigit() else 0

    def day(self, column: str = "ts") -> str:
        if self.dialect == "sqlite":
            return f"substr({column}, 1, 10)"
        return f"CAST({column} AT TIME ZONE 'UTC' AS date)"

    @property
    def selected(self) -> str:
        """`` AND session IN (the selected sessions)`` when filtering, else nothing (without
        filters every event counts). For statements run with ``run(..., select=True)``."""
        return " AND session IN (SELECT session FROM sel)" if self.filtered else ""

    def run(self, sql: str, params: Sequence[Any] = (), select: bool = False) -> list[tuple[Any, ...]]:
        """Run ``sql``; with ``select``, the first events of the selected sessions are the table
        ``sel`` (computed once per statement, however many times it is used)."""
        if select and self.filtered:
            # A statement with a WITH clause of its own gets sel as its first table.
            own = sql.startswith("WITH ")
            sql = (f"WITH sel AS MATERIALIZED (SELECT session FROM events WHERE {self.first_where})"
                   + (", " + sql[len("WITH "):] if own else " " + sql))
            params = [*self.first_params, *params]
        if self.placeholder != "?":  # '%s': a literal '%' (modulo) is written '%%'
            sql = sql.replace("%", "%%").replace("?", self.placeholder)
        _, rows = self.store.query(sql, list(params))
        return rows

    # -- the session-level numbers

    def numbers(self) -> _SessionNumbers:
        """Days, finishes and switches, views and exits of the selected sessions: the days from
        the first events, the rest from ``sessions`` and ``session_steps``."""
        if self.filtered:
            daily = self.run(
                f"SELECT {self.day()}, lang, count(*) FROM events WHERE {self.first_where} GROUP BY 1, 2",
                self.first_params)
            steps = self.run(
                f"SELECT node, sum(entered), sum(leaves) FROM session_steps WHERE 1 = 1{self.selected} "
                "GROUP BY node", select=True)
        else:  # the whole log: the totals kept per day and per step
            daily = self.run("SELECT day, lang, firsts FROM session_days")
            steps = self.run("SELECT node, views, leaves FROM step_totals")
        views = [(node, n) for node, n, _ in steps if n]
        self.leaves = [(node, n) for node, _, n in steps if n]
        finishing = "sum(CASE WHEN finishes > 0 THEN 1 ELSE 0 END)"
        switching = "sum(switches), sum(CASE WHEN switches > 0 THEN 1 ELSE 0 END)"
        if self.filtered:
            (finished, switches, switched), = self.run(
                f"SELECT {finishing}, {switching} FROM sessions WHERE 1 = 1{self.selected}", select=True)
            # One exit per first event of an unfinished session, by the node of its last event.
            exits = self.run("SELECT s.last_node, count(*) FROM sel JOIN sessions AS s "
                             "ON s.session = sel.session WHERE s.finishes = 0 GROUP BY s.last_node",
                             select=True)
        else:
            # Every row counts for finishes and switches; exits once per first event.
            # (through the index sessions_ends, in last_node order)
            rows = self.run(
                "SELECT last_node, sum(CASE WHEN finishes = 0 THEN firsts ELSE 0 END), "
                f"{finishing}, {switching} FROM sessions GROUP BY last_node")
            finished, switches, switched = (sum(int(row[k] or 0) for row in rows) for k in (2, 3, 4))
            exits = [(node, n) for node, n, *_ in rows if n]
        return _SessionNumbers(daily, int(finished or 0), int(switches or 0), int(switched or 0),
                               views, exits)

    def answer_groups(self, contact_options: Sequence[tuple[str, str]], path_nodes: Sequence[str],
                      path_options: Sequence[Sequence[str]], outcomes: Sequence[str],
                      contact_nodes: Sequence[str]) -> list[tuple[Any, ...]]:
        """(contact code, code per path step..., outcome code, sessions) of the selected sessions
        with an answer or an outcome, from one statement grouping ``sessions`` by their answers
        (each step's last answer, in the order given) and last outcome; run once, read by
        contacts() and paths().

        Codes are positions from 1 (63 for anything else, a choice without an option included;
        None: none): the contact code is that of the session's final contact choice (its last
        answer at any of ``contact_nodes``) in ``contact_options``; each path code that of its
        last answer at that step in its ``path_options`` (for every step after the first, only
        an answer given after the one at the first step); the outcome code that of its last
        outcome in ``outcomes``. The flow's steps are matched here, not in SQL."""
        if self._answer_rows is not None:
            return self._answer_rows
        if max(len(contact_options), len(outcomes), *(len(o) for o in path_options), 0) >= _OTHER_CODE:
            raise ValueError("too many options or outcomes for six-bit codes")
        contacts = set(contact_nodes)
        contact_codes = _positions([tuple(pair) for pair in contact_options])
        path_codes = [_positions(options) for options in path_options]
        outcome_codes = _positions(outcomes)
        counts: dict[tuple[Any, ...], int] = {}
        rows = self.run(
            "SELECT answers, outcome, count(outcome_id), count(*) FROM sessions "
            f"WHERE (answers IS NOT NULL OR outcome_id IS NOT NULL){self.selected} "
            "GROUP BY answers, outcome", select=True)
        for answers, outcome, with_outcome, n in rows:
            given = parse_answers(None if answers is None else _as_text(answers))
            contact = None
            at: dict[str, tuple[int, str | None]] = {}
            for i, (node, option) in enumerate(given):
                at[node] = (i, option)
                if node in contacts:
                    contact = contact_codes.get((node, option), _OTHER_CODE)
            codes: list[int | None] = []
            first = at.get(path_nodes[0])[0] if path_nodes and path_nodes[0] in at else -1
            for k, (node, options) in enumerate(zip(path_nodes, path_codes)):
                where = at.get(node)
                codes.append(None if where is None or (k and where[0] <= first)
                             else options.get(where[1], _OTHER_CODE))
            code = outcome_codes.get(None if outcome is None else _as_text(outcome), _OTHER_CODE)
            for key, m in (((contact, *codes, code), int(with_outcome)),
                           ((contact, *codes, None), int(n) - int(with_outcome))):
                if m:
                    counts[key] = counts.get(key, 0) + m
        self._answer_rows = [(*key, n) for key, n in counts.items()]
        return self._answer_rows

    def contacts(self, contact_nodes: Sequence[str], contact_options: Sequence[tuple[str, str]],
                 outcomes: Sequence[str], path_nodes: Sequence[str] = (),
                 path_options: Sequence[Sequence[str]] = ()) -> list[tuple[Any, ...]]:
        """(contact code, outcome code, sessions) of the sessions with a contact choice or an
        outcome (see answer_groups)."""
        counts: dict[tuple[int | None, int | None], int] = {}
        for contact, *_, outcome, n in self.answer_groups(contact_options, path_nodes, path_options,
                                                          outcomes, contact_nodes):
            key = (None if contact is None else int(contact), None if outcome is None else int(outcome))
            if key != (None, None):
                counts[key] = counts.get(key, 0) + int(n)
        return [(*key, n) for key, n in counts.items()]

    def paths(self, path_nodes: Sequence[str], path_options: Sequence[Sequence[str]],
              contact_nodes: Sequence[str] = (), contact_options: Sequence[tuple[str, str]] = (),
              outcomes: Sequence[str] = OUTCOMES) -> list[tuple[Any, ...]]:
        """(code per path step..., outcome code, sessions) of the sessions with an outcome (see
        answer_groups)."""
        counts: dict[tuple[Any, ...], int] = {}
        for _, *codes, outcome, n in self.answer_groups(contact_options, path_nodes, path_options,
                                                        outcomes, contact_nodes):
            if outcome is not None:
                key = (*(None if c is None else int(c) for c in codes), int(outcome))
                counts[key] = counts.get(key, 0) + int(n)
        return [(*key, n) for key, n in counts.items()]

    def followup_groups(self, contact_nodes: Sequence[str], contact_options: Sequence[Sequence[str]],
                        path_nodes: Sequence[str], path_options: Sequence[Sequence[str]]
                        ) -> list[tuple[Any, ...]]:
        """(outcome code, code per contact step..., code per path step..., sessions) of the
        selected sessions with a ``followup`` event (visits that came back with the return
        link): the code of its last followup outcome in OUTCOMES and of its last recalled
        answer (with an option) at each step in that step's options (position from 1, 63 for
        anything else, None: none), read per session as ``max(event id * 64 + code)`` from the
        few ``recall``/``followup`` events, through their index."""
        params: list[Any] = []

        def latest(condition: str, condition_params: list[Any], options: Sequence[str]) -> str:
            arms = " ".join(f"WHEN ? THEN {i}" for i, _ in enumerate(options, 1))
            params.extend([*condition_params, *options])
            code = f"CASE option {arms} ELSE {_OTHER_CODE} END" if arms else str(_OTHER_CODE)
            return f"max(CASE WHEN {condition} THEN id * {_SHIFT} + {code} END)"

        inner = [latest("action = 'followup'", [], OUTCOMES) + " AS f"]
        steps = [*zip(contact_nodes, contact_options), *zip(path_nodes, path_options)]
        inner += [latest("action = 'recall' AND option IS NOT NULL AND node = ?", [node], options) + f" AS r{k}"
                  for k, (node, options) in enumerate(steps)]
        outer = [f"f % {_SHIFT}", *(f"r{k} % {_SHIFT}" for k in range(len(steps)))]
        return self.run(
            f"SELECT {', '.join(outer)}, count(*) FROM (SELECT {', '.join(inner)} FROM events "
            f"WHERE action IN ('recall', 'followup'){self.selected} GROUP BY session) AS per_session "
            f"WHERE f IS NOT NULL GROUP BY {', '.join(str(i) for i in range(1, len(outer) + 1))}",
            params, select=True)

    # -- from the events, whatever the store

    def transitions(self) -> list[tuple[Any, ...]]:
        """(node, option, next node, sessions, moves): each ``choose`` or ``next`` event whose
        session's next event (by id) is an ``enter``, by where it left and where it entered."""
        return self.run(
            "WITH moves AS (SELECT session, action, node, option, "
            "lead(action) OVER (PARTITION BY session ORDER BY id) AS to_action, "
            "lead(node) OVER (PARTITION BY session ORDER BY id) AS to_node "
            f"FROM events WHERE 1 = 1{self.selected}) "
            "SELECT node, option, to_node, count(DISTINCT session), count(*) FROM moves "
            "WHERE action IN ('choose', 'next') AND to_action = 'enter' "
            "GROUP BY node, option, to_node", select=True)

    def choices(self) -> list[tuple[Any, ...]]:
        return self.run(
            "SELECT node, option, count(*) FROM events "
            f"WHERE action = 'choose'{self.selected} GROUP BY node, option", select=True)

    def medians(self, nodes: Sequence[str]) -> list[tuple[Any, ...]]:
        """(node, leaves, median elapsed_ms) of the events leaving each of ``nodes``.

        One way on both dialects: the leaving events counted per node (``session_steps.leaves``,
        read by numbers()), then the middle one
        (odd count) or two (even count) of each node's values are read in order, ``LIMIT 1 or 2
        OFFSET (n - 1) / 2``, through the index that holds them by (node, elapsed_ms). Nodes
        take :data:`_ARM_BATCH` arms per statement, so that a log with any number of distinct
        nodes stays within SQLite's limits (500 arms in a compound SELECT, 999 parameters)."""
        where = f"{_LEAVING} AND elapsed_ms IS NOT NULL{self.selected}"
        wanted = set(nodes)
        if self.leaves is None:
            self.numbers()
        assert self.leaves is not None
        counts = [(node, int(n)) for node, n in self.leaves if node in wanted]
        if not counts:
            return []
        arm = (f"SELECT ?, ?, avg(elapsed_ms) FROM (SELECT elapsed_ms FROM events WHERE node = ? AND {where} "
               "ORDER BY elapsed_ms LIMIT ? OFFSET ?) AS middle")
        rows: list[tuple[Any, ...]] = []
        for part in _batches([(node, n, node, 2 - n % 2, (n - 1) // 2) for node, n in counts], _ARM_BATCH):
            rows += self.run(" UNION ALL ".join(arm for _ in part),
                             [value for values in part for value in values], select=True)
        # None: fewer events than counted (events deleted without their session's derived rows,
        # which the retention procedure in docs/operators.md does not do): no median then.
        return [row for row in rows if row[2] is not None]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]



# --------------------------------------------------------------------------- summarize


def _utc(value: dt.date | dt.datetime | str | None, name: str) -> dt.datetime | None:
    """A date (midnight UTC), an aware datetime, a naive datetime (taken as UTC) or ISO text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    raise TypeError(f"{name} must be a date, a datetime or ISO text, not {type(value).__name__}")


def _as_text(value: Any) -> str:
    """An id read from the store as text. The guide only writes text ids, but a store may hold
    rows from another writer (an SQLite column keeps a number or bytes as they were given)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _counts_by_text(rows: Sequence[tuple[Any, Any]]) -> dict[str, int]:
    """(id, count) rows → count per id as text (ids equal as text are added up)."""
    counts: dict[str, int] = {}
    for key, n in rows:
        text = _as_text(key)
        counts[text] = counts.get(text, 0) + int(n)
    return counts


def _share(part: pd.Series, whole: pd.Series | float) -> pd.Series:
    """part ÷ whole as floats, NaN where whole is 0."""
    whole = whole if isinstance(whole, pd.Series) else pd.Series(whole, index=part.index)
    return (part.astype("float64") / whole.astype("float64").where(whole > 0)).astype("float64")


def flow_roles(flow: Flow) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The flow's contact decisions and path decisions (``Flow.role_nodes``), in flow order."""
    return tuple(flow.role_nodes("contact")), tuple(flow.role_nodes("path"))


def summarize(store: Any, start: dt.date | dt.datetime | str | None = None,
              end: dt.date | dt.datetime | str | None = None, lang: str | None = None,
              flow: Flow | None = None, *, contact_nodes: Sequence[str] | None = None,
              path_nodes: Sequence[str] | None = None) -> Summary:
    """Summarize the interaction log in ``store`` (an open EventStore, or a URL to open).

    ``start`` (inclusive) and ``end`` (exclusive) are UTC dates or datetimes; ``lang`` is
    'ko' or 'en'. They select sessions by their first event. ``flow`` (default: the packaged
    flow) gives the node order, the options to list and the roles of its steps: the contact
    decisions and the path decisions (``flow_roles``), unless ``contact_nodes`` /
    ``path_nodes`` name them. Raises StoreUnavailable when the store cannot be read, and
    StoreOutdated when it has an older log schema (opened read-only, so not migrated).
    Definitions: see the module docstring.
    """
    if isinstance(store, str):
        from .log import open_store

        with open_store(store) as opened:
            return summarize(opened, start, end, lang, flow, contact_nodes=contact_nodes,
                             path_nodes=path_nodes)
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {list(LANGUAGES)}")
    start_utc, end_utc = _utc(start, "start"), _utc(end, "end")
    flow = flow if flow is not None else default_flow()
    if contact_nodes is None or path_nodes is None:
        contact_roles, path_roles = flow_roles(flow)
        contact_nodes = contact_roles if contact_nodes is None else contact_nodes
        path_nodes = path_roles if path_nodes is None else path_nodes
    contact_nodes, path_nodes = tuple(contact_nodes), tuple(path_nodes)
    q = _Query(store, start_utc, end_utc, lang)

    contact_options = [(n, o) for n in contact_nodes if n in flow.nodes
                       for o in flow.nodes[n].option_ids]
    path_options = [list(flow.nodes[n].option_ids) if n in flow.nodes else [] for n in path_nodes]
    numbers = q.numbers()

    # Sessions by day and start language.
    counts: dict[str, dict[str, int]] = {}
    for day, first_lang, n in numbers.daily:
        counts.setdefault(str(day), {}).setdefault(first_lang, 0)
        counts[str(day)][first_lang] += int(n)
    days = sorted(counts)
    daily = pd.DataFrame({
        # A start time that is not a date (a row no logger wrote) gives NaT, still counted.
        "day": pd.to_datetime(pd.Series(days, dtype="str"), format="%Y-%m-%d", errors="coerce"),
        "sessions": pd.Series([sum(counts[d].values()) for d in days], dtype="int64"),
        **{code: pd.Series([counts[d].get(code, 0) for d in days], dtype="int64")
           for code in LANGUAGES},
    })
    sessions = int(daily["sessions"].sum())

    # Finishes, language switches.
    finished, switches, switched = numbers.finished, numbers.switches, numbers.switched
    overview = pd.DataFrame([{
        "sessions": sessions,
        "finished": finished,
        "completion_rate": finished / sessions if sessions else float("nan"),
        "language_switches": switches,
        "switched_sessions": switched,
        "switched_share": switched / sessions if sessions else float("nan"),
    }], columns=_COLUMNS["overview"])

    languages = pd.DataFrame({"lang": list(LANGUAGES)})
    languages["sessions"] = [int(daily[code].sum()) for code in LANGUAGES]
    languages["share"] = _share(languages["sessions"], sessions)

    # Funnel.
    order = node_order(flow)
    views = _counts_by_text(numbers.views)  # sessions that entered each node
    exits = _counts_by_text(numbers.exits)
    extra = sorted((set(views) | set(exits)) - set(order))
    nodes = list(order) + extra
    funnel = pd.DataFrame({
        "node": nodes,
        "kind": [flow.nodes[n].kind if n in flow.nodes else None for n in nodes],
        "depth": pd.array([order.get(n) for n in nodes], dtype="Int64"),
        "views": [views.get(n, 0) for n in nodes],
        "exits": [exits.get(n, 0) for n in nodes],
    })
    funnel["drop_off"] = _share(funnel["exits"], funnel["views"])

    # Choices per decision, with every option of the flow.
    counted: dict[tuple[str, str | None], int] = {}
    for node, option, n in q.choices():
        key = (_as_text(node), None if option is None else _as_text(option))
        counted[key] = counted.get(key, 0) + int(n)
    keys = [(d, o) for d in flow.decisions for o in flow.nodes[d].option_ids]
    keys += sorted(set(counted) - set(keys), key=lambda k: (nodes.index(k[0]) if k[0] in nodes
                                                            else len(nodes), k[0], str(k[1])))
    choices = pd.DataFrame(keys, columns=["node", "option"])
    choices["count"] = [counted.get(k, 0) for k in keys]
    choices["share"] = _share(choices["count"], choices.groupby("node")["count"].transform("sum"))

    # Contact channels and outcomes.
    by_contact: dict[int | None, int] = {}
    by_outcome: dict[tuple[int | None, int], int] = {}
    for contact, outcome, n in q.contacts(contact_nodes, contact_options, OUTCOMES, path_nodes, path_options):
        contact = None if contact is None else int(contact)
        if contact is not None:
            by_contact[contact] = by_contact.get(contact, 0) + int(n)
        if outcome is not None:
            key = (contact, int(outcome))
            by_outcome[key] = by_outcome.get(key, 0) + int(n)
    other = (OTHER, OTHER)
    channel_keys = contact_options + ([other] if _OTHER_CODE in by_contact else [])
    channels = pd.DataFrame(channel_keys, columns=["node", "option"], dtype="str")
    channels["sessions"] = pd.Series(
        [by_contact.get(_OTHER_CODE if k == other else i, 0) for i, k in enumerate(channel_keys, 1)],
        dtype="int64")
    channels["share"] = _share(channels["sessions"], int(channels["sessions"].sum()))

    def channel_name(code: int | None) -> str:
        if code is None:
            return NO_CHANNEL
        return OTHER if code == _OTHER_CODE else contact_options[code - 1][1]

    def outcome_name(code: int) -> str:
        return OTHER if code == _OTHER_CODE else OUTCOMES[code - 1]

    # Channels in flow order, then (other), then (none); outcomes in OUTCOMES order.
    outcome_keys = sorted(by_outcome, key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    outcomes = pd.DataFrame({
        "channel": pd.Series([channel_name(c) for c, _ in outcome_keys], dtype="str"),
        "outcome": pd.Series([outcome_name(o) for _, o in outcome_keys], dtype="str"),
        "sessions": pd.Series([by_outcome[k] for k in outcome_keys], dtype="int64"),
    })
    outcomes["share"] = _share(outcomes["sessions"],
                               outcomes.groupby("channel")["sessions"].transform("sum"))

    # Outcomes by path: the answers at each path step in flow order, then (other), then (none).
    by_path: dict[tuple[Any, ...], int] = {}
    for *codes, outcome, n in q.paths(path_nodes, path_options, contact_nodes, contact_options, OUTCOMES):
        key = (*(None if c is None else int(c) for c in codes), int(outcome))
        by_path[key] = by_path.get(key, 0) + int(n)

    def answer_name(options: Sequence[str], code: int | None) -> str:
        if code is None:
            return NO_ANSWER
        return OTHER if code == _OTHER_CODE else options[code - 1]

    path_keys = sorted(by_path, key=lambda k: (*((c is None, c or 0) for c in k[:-1]), k[-1]))
    paths = pd.DataFrame({
        node: pd.Series([answer_name(options, k[i]) for k in path_keys], dtype="str")
        for i, (node, options) in enumerate(zip(path_nodes, path_options))
    })
    paths["outcome"] = pd.Series([outcome_name(k[-1]) for k in path_keys], dtype="str")
    paths["sessions"] = pd.Series([by_path[k] for k in path_keys], dtype="int64")
    within = paths.groupby(list(path_nodes))["sessions"].transform("sum") if path_nodes \
        else int(paths["sessions"].sum())
    paths["share"] = _share(paths["sessions"], within)

    contact_steps = _contact_steps(contact_options)
    followups, followup_paths = _followups(
        q.followup_groups([node for node, _ in contact_steps], [options for _, options in contact_steps],
                          path_nodes, path_options), contact_options, path_nodes, path_options)

    # Median time per node (the nodes of the funnel: a session leaves only nodes it entered).
    medians = {node: (int(n), float(m)) for node, n, m in q.medians(nodes)}
    time_table = pd.DataFrame({
        "node": pd.Series(nodes, dtype="str"),
        "leaves": pd.Series([medians.get(n, (0, 0.0))[0] for n in nodes], dtype="int64"),
        "median_ms": pd.Series([medians.get(n, (0, math.nan))[1] for n in nodes], dtype="float64"),
    })

    return Summary(overview=overview, daily=daily, funnel=funnel, choices=choices,
                   channels=channels, languages=languages, time=time_table, outcomes=outcomes,
                   paths=paths, followups=followups, followup_paths=followup_paths,
                   start=start_utc, end=end_utc, lang=lang)


def _contact_steps(contact_options: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """The contact steps of ``contact_options`` in order, each with its options."""
    steps: dict[str, list[str]] = {}
    for node, option in contact_options:
        steps.setdefault(node, []).append(option)
    return list(steps.items())


def _followups(groups: Sequence[tuple[Any, ...]], contact_options: Sequence[tuple[str, str]],
               path_nodes: Sequence[str], path_options: Sequence[Sequence[str]]
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``followups`` and ``followup_paths`` tables (module docstring) from
    ``_Query.followup_groups`` for the contact steps in ``_contact_steps(contact_options)``:
    per session, the last recalled answer at each decision and the last followup outcome;
    sessions without a followup are not counted."""
    contact_steps = _contact_steps(contact_options)
    known_contacts = set(contact_options)
    by_channel: dict[tuple[int, str, int], int] = {}
    by_path: dict[tuple[Any, ...], int] = {}
    rank = {key: i for i, key in enumerate(OUTCOMES)}

    def name(options: Sequence[str], code: Any) -> str:
        if code is None:
            return NO_ANSWER
        return options[int(code) - 1] if int(code) != _OTHER_CODE else OTHER

    for outcome_code, *codes, n in groups:
        outcome = name(OUTCOMES, outcome_code)
        channel = NO_CHANNEL
        for (node, options), code in zip(contact_steps, codes):  # the last contact step answered
            if code is not None:
                channel = name(options, code)
                channel = channel if (node, channel) in known_contacts else OTHER
        order = (0, [o for _, o in contact_options].index(channel)) if channel not in (
            OTHER, NO_CHANNEL) else ((1, 0) if channel == OTHER else (2, 0))
        key = (*order, channel, rank.get(outcome, len(rank)), outcome)
        by_channel[key] = by_channel.get(key, 0) + int(n)
        path = tuple(name(options, code) for options, code in zip(path_options, codes[len(contact_steps):]))
        pkey = (*path, outcome)
        by_path[pkey] = by_path.get(pkey, 0) + int(n)
    keys = sorted(by_channel)
    by, outcome_column, sessions = _COLUMNS["followups"][:3]  # the channel, like ``outcomes``
    channels = pd.DataFrame({
        by: pd.Series([k[2] for k in keys], dtype="str"),
        outcome_column: pd.Series([k[4] for k in keys], dtype="str"),
        sessions: pd.Series([by_channel[k] for k in keys], dtype="int64"),
    })
    channels["share"] = _share(channels[sessions],
                               channels.groupby(by)[sessions].transform("sum"))

    def path_rank(key: tuple[Any, ...]) -> tuple[Any, ...]:
        ranked = []
        for answer, options in zip(key[:-1], path_options):
            ranked.append(list(options).index(answer) if answer in options
                          else len(options) + (answer == NO_ANSWER))
        return (*ranked, rank.get(key[-1], len(rank)))

    pkeys = sorted(by_path, key=path_rank)
    paths = pd.DataFrame({node: pd.Series([k[i] for k in pkeys], dtype="str")
                          for i, node in enumerate(path_nodes)})
    paths["outcome"] = pd.Series([k[-1] for k in pkeys], dtype="str")
    paths["sessions"] = pd.Series([by_path[k] for k in pkeys], dtype="int64")
    within = paths.groupby(list(path_nodes))["sessions"].transform("sum") if path_nodes \
        else int(paths["sessions"].sum())
    paths["share"] = _share(paths["sessions"], within)
    return channels, paths


# --------------------------------------------------------------------------- transitions


TRANSITION_COLUMNS = ["node", "option", "to", "sessions", "moves"]


def transitions(store: Any, start: dt.date | dt.datetime | str | None = None,
                end: dt.date | dt.datetime | str | None = None, lang: str | None = None,
                flow: Flow | None = None) -> pd.DataFrame:
    """Where sessions went after each answer: one row per (node, option, to), ``option``
    None for an info step's Next.

    A *move* is a ``choose`` or ``next`` event whose session's next event (by id) is an
    ``enter``: the visitor left ``node`` by that answer and arrived at ``to``. ``sessions``
    counts the sessions that made the move at least once, ``moves`` every time it was made
    (after Back, a session can make it again). The filters select sessions as
    :func:`summarize`'s do. Every arrow of the flow (``widgets.flowmap.edges``) is listed, in
    the flow's order, with 0 when nobody took it; moves the flow does not have (an older
    flow, a lost event) come after, as they are. The flow map draws its arrows from this
    table. It reads every event of the selected sessions once (a window over each session's
    events in id order), so it is not part of :func:`summarize`.
    """
    if isinstance(store, str):
        from .log import open_store

        with open_store(store) as opened:
            return transitions(opened, start, end, lang, flow)
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {list(LANGUAGES)}")
    from .flowmap import edges

    flow = flow if flow is not None else default_flow()
    q = _Query(store, _utc(start, "start"), _utc(end, "end"), lang)
    counted: dict[tuple[str, str | None, str], list[int]] = {}
    for node, option, to, sessions, moves in q.transitions():
        key = (_as_text(node), None if option is None else _as_text(option), _as_text(to))
        numbers = counted.setdefault(key, [0, 0])
        numbers[0] += int(sessions)
        numbers[1] += int(moves)
    keys = [edge.key for edge in edges(flow)]
    keys += sorted(set(counted) - set(keys), key=lambda k: (k[0], k[1] or "", k[2]))
    frame = pd.DataFrame({
        "node": pd.Series([k[0] for k in keys], dtype="object"),
        "option": pd.Series([k[1] for k in keys], dtype="object"),
        "to": pd.Series([k[2] for k in keys], dtype="object"),
        "sessions": pd.Series([counted.get(k, [0, 0])[0] for k in keys], dtype="int64"),
        "moves": pd.Series([counted.get(k, [0, 0])[1] for k in keys], dtype="int64"),
    }, columns=TRANSITION_COLUMNS)
    return frame
