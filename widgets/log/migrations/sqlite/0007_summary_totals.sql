-- Log schema version 7 (sqlite): small derived tables for the summary of the whole log, so that it
-- reads a few rows per day and per step instead of every first event and every session step.
--
-- sessions gains each session's last outcome (outcome_id, outcome) and its last answer at each
-- step in the order given (answers: see ANSWERS in widgets/log/derive.py; NULL without answers),
-- filled from session_steps. session_days: first events (elapsed_ms NULL: the sessions' starts)
-- per UTC day (the first ten characters of ts) and language. step_totals: per step, the sessions
-- that entered it and its leaving events (the sums of session_steps.entered and .leaves).
-- sessions_given and sessions_ends: sessions by their answers and outcome, and by the step of
-- their last event, with what the summary adds up per session. Like every derived table they name
-- no step of the flow; widgets/log/derive.py keeps them from the events past the watermark, in
-- each write's transaction. Filled here from the events and session_steps up to the watermark; the
-- store then folds in any event past it. Every event and log_gaps row is kept. Part of the
-- schema's history: never edit; change the schema with a new file. One statement per paragraph
-- (blank lines separate statements; lines starting with '--' are comments).

CREATE TABLE session_days (
 day TEXT NOT NULL,
 lang TEXT NOT NULL,
 firsts INTEGER NOT NULL,
 PRIMARY KEY (day, lang)) WITHOUT ROWID

CREATE TABLE step_totals (
 node TEXT PRIMARY KEY,
 views INTEGER NOT NULL,
 leaves INTEGER NOT NULL) WITHOUT ROWID

ALTER TABLE sessions ADD COLUMN outcome_id INTEGER

ALTER TABLE sessions ADD COLUMN outcome TEXT

ALTER TABLE sessions ADD COLUMN answers TEXT

UPDATE sessions SET
 outcome_id = (SELECT max(outcome_id) FROM session_steps AS s WHERE s.session = sessions.session),
 answers = (SELECT group_concat(entry, '') FROM (SELECT length(s.node) || ':' || s.node || CASE WHEN s.answer IS NULL THEN '-' ELSE length(s.answer) || ':' || s.answer END AS entry FROM session_steps AS s
 WHERE s.session = sessions.session AND s.answer_id IS NOT NULL ORDER BY s.answer_id) AS given)

UPDATE sessions SET outcome = (SELECT s.outcome FROM session_steps AS s
 WHERE s.session = sessions.session AND s.outcome_id = sessions.outcome_id)
WHERE outcome_id IS NOT NULL

CREATE INDEX sessions_given ON sessions (answers, outcome, outcome_id)
 WHERE answers IS NOT NULL OR outcome_id IS NOT NULL

CREATE INDEX sessions_ends ON sessions (last_node, finishes, firsts, switches)

INSERT INTO session_days (day, lang, firsts)
SELECT substr(ts, 1, 10), lang, count(*) FROM events
WHERE elapsed_ms IS NULL AND id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'derived_through')
GROUP BY 1, 2

INSERT INTO step_totals (node, views, leaves)
SELECT node, sum(entered), sum(leaves) FROM session_steps GROUP BY node
