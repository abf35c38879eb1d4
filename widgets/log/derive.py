"""The tables derived from the events, brought up to date in one place for both SQL dialects.

``sessions``       one row per session: how many first events it has (``firsts``), its last
                   event (id and node), its ``finish`` and ``language`` events; from schema 7
                   also its last outcome (``outcome_id``, ``outcome``) and its last answer at
                   each step in the order given (``answers``, see ANSWERS)
``session_steps``  one row per session and step where it entered, left, answered or gave an
                   outcome: whether it entered the step, how often it left it (events of
                   LEAVE_ACTIONS with a time), its last answer there and its last outcome there
                   (event id and option of each; the session's last outcome is the one with the
                   highest id)
``session_days``   (from schema 7) the first events per UTC day (``YYYY-MM-DD``) and language
``step_totals``    (from schema 7) per step, the sessions that entered it and its leaving
                   events: the sums of ``session_steps.entered`` and ``.leaves``, kept with
                   them (a session entering a step again adds nothing)

None names a step of the flow: which steps are the contact decision or the path dimensions
is read from the flow when the summary runs.

:func:`refresh` folds the events past a watermark (``meta`` key ``derived_through``: the highest
event id folded in) into those tables, with the same statements on SQLite and PostgreSQL, and
moves the watermark (only the day of a timestamp and the concatenation of ``answers`` are
written per dialect). Every store write runs it in the transaction that inserts the events (the
store serialises its writes: SQLite's write lock, a PostgreSQL table lock taken before
inserting), so the tables always hold every committed event; rows inserted by other code (an
older kernel during an upgrade) are folded in by the next write, or by ``EventStore.refresh()``.
A new schema version fills them from every stored event the same way, from watermark 0. Only the
standard library is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["refresh", "parse_answers", "ANSWERS", "DAY", "WATERMARK", "SINCE", "TOTALS_SINCE", "LEAVE_ACTIONS"]

#: Actions that leave the step they are logged at (``session_steps.leaves`` counts them).
LEAVE_ACTIONS: tuple[str, ...] = ("choose", "next", "back", "restart")

#: The schema version that made the derived tables as :func:`refresh` keeps them.
SINCE = 6

#: The schema version that added ``session_days`` and ``step_totals``.
TOTALS_SINCE = 7

#: The ``meta`` key holding the id of the last event folded into the derived tables.
WATERMARK = "derived_through"

# The same statements for both dialects (but for the day of a timestamp, see DAY); ``?`` is the
# parameter placeholder (replaced for PostgreSQL). Each groups the new events per session (and step), then merges the groups into the
# rows already there: counts add up, the last ones are the new ones when present. ``WHERE true``
# ends the SELECT before ON CONFLICT (SQLite's parser needs it).
_SESSIONS = """\
INSERT INTO sessions (session, firsts, last_id, last_node, finishes, switches)
SELECT g.session, g.firsts, g.last_id, l.node, g.finishes, g.switches
FROM (SELECT session,
  sum(CASE WHEN elapsed_ms IS NULL THEN 1 ELSE 0 END) AS firsts,
  max(id) AS last_id,
  sum(CASE WHEN action = 'finish' THEN 1 ELSE 0 END) AS finishes,
  sum(CASE WHEN action = 'language' THEN 1 ELSE 0 END) AS switches
 FROM events WHERE id > ? AND id <= ? GROUP BY session) AS g
JOIN events AS l ON l.id = g.last_id
WHERE true
ON CONFLICT (session) DO UPDATE SET
 firsts = sessions.firsts + excluded.firsts,
 last_id = excluded.last_id,
 last_node = excluded.last_node,
 finishes = sessions.finishes + excluded.finishes,
 switches = sessions.switches + excluded.switches"""

# From schema 7, sessions also holds the session's last outcome (event id and option).
_SESSIONS_7 = """\
INSERT INTO sessions (session, firsts, last_id, last_node, finishes, switches, outcome_id, outcome)
SELECT g.session, g.firsts, g.last_id, l.node, g.finishes, g.switches, g.outcome_id, o.option
FROM (SELECT session,
  sum(CASE WHEN elapsed_ms IS NULL THEN 1 ELSE 0 END) AS firsts,
  max(id) AS last_id,
  sum(CASE WHEN action = 'finish' THEN 1 ELSE 0 END) AS finishes,
  sum(CASE WHEN action = 'language' THEN 1 ELSE 0 END) AS switches,
  max(CASE WHEN action = 'outcome' THEN id END) AS outcome_id
 FROM events WHERE id > ? AND id <= ? GROUP BY session) AS g
JOIN events AS l ON l.id = g.last_id
LEFT JOIN events AS o ON o.id = g.outcome_id
WHERE true
ON CONFLICT (session) DO UPDATE SET
 firsts = sessions.firsts + excluded.firsts,
 last_id = excluded.last_id,
 last_node = excluded.last_node,
 finishes = sessions.finishes + excluded.finishes,
 switches = sessions.switches + excluded.switches,
 outcome_id = CASE WHEN excluded.outcome_id IS NULL THEN sessions.outcome_id ELSE excluded.outcome_id END,
 outcome = CASE WHEN excluded.outcome_id IS NULL THEN sessions.outcome ELSE excluded.outcome END"""

# The new events per session and step, as session_steps holds them.
_STEP_GROUPS = """\
SELECT session, node,
  max(CASE WHEN action = 'enter' THEN 1 ELSE 0 END) AS entered,
  sum(CASE WHEN action IN ('choose', 'next', 'back', 'restart') AND elapsed_ms IS NOT NULL
   THEN 1 ELSE 0 END) AS leaves,
  max(CASE WHEN action = 'choose' THEN id END) AS answer_id,
  max(CASE WHEN action = 'outcome' THEN id END) AS outcome_id
 FROM events WHERE id > ? AND id <= ? AND (action IN ('enter', 'choose', 'outcome')
  OR action IN ('next', 'back', 'restart') AND elapsed_ms IS NOT NULL)
 GROUP BY session, node"""

_STEPS = f"""\
INSERT INTO session_steps (session, node, entered, leaves, answer_id, answer, outcome_id, outcome)
SELECT g.session, g.node, g.entered, g.leaves, g.answer_id, a.option, g.outcome_id, o.option
FROM ({_STEP_GROUPS}) AS g
LEFT JOIN events AS a ON a.id = g.answer_id
LEFT JOIN events AS o ON o.id = g.outcome_id
WHERE true
ON CONFLICT (session, node) DO UPDATE SET
 entered = CASE WHEN excluded.entered > session_steps.entered THEN excluded.entered
  ELSE session_steps.entered END,
 leaves = session_steps.leaves + excluded.leaves,
 answer_id = CASE WHEN excluded.answer_id IS NULL THEN session_steps.answer_id ELSE excluded.answer_id END,
 answer = CASE WHEN excluded.answer_id IS NULL THEN session_steps.answer ELSE excluded.answer END,
 outcome_id = CASE WHEN excluded.outcome_id IS NULL THEN session_steps.outcome_id ELSE excluded.outcome_id END,
 outcome = CASE WHEN excluded.outcome_id IS NULL THEN session_steps.outcome ELSE excluded.outcome END"""

# Run before _STEPS: a step counts as viewed once per session, when session_steps does not
# have it entered yet.
_TOTALS = f"""\
INSERT INTO step_totals (node, views, leaves)
SELECT g.node, sum(CASE WHEN g.entered = 1 AND coalesce(s.entered, 0) = 0 THEN 1 ELSE 0 END),
 sum(g.leaves)
FROM ({_STEP_GROUPS}) AS g
LEFT JOIN session_steps AS s ON s.session = g.session AND s.node = g.node
WHERE g.entered = 1 OR g.leaves > 0
GROUP BY g.node
ON CONFLICT (node) DO UPDATE SET
 views = step_totals.views + excluded.views,
 leaves = step_totals.leaves + excluded.leaves"""

# {day}: the UTC day of ``ts`` as YYYY-MM-DD text, per dialect (see DAY).
_DAYS = """\
INSERT INTO session_days (day, lang, firsts)
SELECT {day}, lang, count(*) FROM events WHERE id > ? AND id <= ? AND elapsed_ms IS NULL
GROUP BY 1, 2
ON CONFLICT (day, lang) DO UPDATE SET firsts = session_days.firsts + excluded.firsts"""

# Run after _STEPS: sessions.answers of the sessions with a new answer, made again from their
# rows in session_steps (a few per session). {answers}: see ANSWERS.
_ANSWERS = """\
UPDATE sessions SET answers = ({answers})
WHERE session IN (SELECT session FROM events WHERE id > ? AND id <= ? AND action = 'choose')"""

#: ``sessions.answers``: the session's last answer at each step where it answered, in the order
#: they were given (their event ids), each as ``<length>:<node>`` then ``<length>:<option>``, or
#: ``-`` for a choice without an option (lengths in characters), all joined without separator;
#: NULL without any answer. Per dialect (by placeholder): the ordered concatenation of the
#: session's rows in session_steps. :func:`parse_answers` reads it back.
ANSWERS: dict[str, str] = {
    "?": "SELECT group_concat(entry, '') FROM (SELECT {entry} AS entry FROM session_steps AS s "
         "WHERE s.session = sessions.session AND s.answer_id IS NOT NULL ORDER BY s.answer_id) AS given",
    "%s": "SELECT string_agg({entry}, '' ORDER BY s.answer_id) FROM session_steps AS s "
          "WHERE s.session = sessions.session AND s.answer_id IS NOT NULL",
}
_ENTRY = ("length(s.node) || ':' || s.node || "
          "CASE WHEN s.answer IS NULL THEN '-' ELSE length(s.answer) || ':' || s.answer END")


def parse_answers(text: str | None) -> list[tuple[str, str | None]]:
    """``sessions.answers`` as (node, option or None) pairs, in the order given."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while text and i < len(text):
        colon = text.index(":", i)
        end = colon + 1 + int(text[i:colon])
        node, i = text[colon + 1:end], end
        if text[i] == "-":
            pairs.append((node, None))
            i += 1
            continue
        colon = text.index(":", i)
        end = colon + 1 + int(text[i:colon])
        pairs.append((node, text[colon + 1:end]))
        i = end
    return pairs


#: The UTC day of ``ts`` as text, by placeholder (``?``: SQLite, where ts is ISO 8601 UTC text;
#: ``%s``: PostgreSQL's timestamptz), as the summary reads it.
DAY: dict[str, str] = {"?": "substr(ts, 1, 10)",
                       "%s": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}

_READ_MARK = f"SELECT value FROM meta WHERE key = '{WATERMARK}'"
_SET_MARK = (f"INSERT INTO meta (key, value) VALUES ('{WATERMARK}', ?) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def refresh(execute: Callable[..., Any], placeholder: str = "?", version: int | None = None) -> int:
    """Fold the events past the watermark into the derived tables and move it, through
    ``execute(sql[, params])`` (returning a cursor) inside the caller's write transaction;
    the number of the last event folded in. ``version``: the store's schema version (the
    tables it has; default: the newest)."""

    def run(sql: str, params: tuple[Any, ...] = ()) -> Any:
        return execute(sql.replace("?", placeholder), params)

    row = run(_READ_MARK).fetchone()
    mark = int(row[0]) if row is not None and str(row[0]).isdigit() else 0
    (last,) = run("SELECT max(id) FROM events").fetchone()
    last = int(last) if last is not None else 0
    if last > mark:
        totals = version is None or version >= TOTALS_SINCE
        run(_SESSIONS_7 if totals else _SESSIONS, (mark, last))
        if totals:
            run(_TOTALS, (mark, last))
            run(_DAYS.format(day=DAY[placeholder]), (mark, last))
        run(_STEPS, (mark, last))
        if totals:
            answers = ANSWERS[placeholder].format(entry=_ENTRY)
            run(_ANSWERS.format(answers=answers), (mark, last))
    if row is None or last != mark:
        run(_SET_MARK, (str(last),))
    return last
