-- Log schema version 6 (sqlite): the derived tables are brought up to date by the store's write
-- path (widgets/log/derive.py, the same statements for both dialects) from the events past a
-- watermark, instead of by triggers.
--
-- sessions: one row per session (firsts, last_id/_node, finishes, switches). session_steps:
-- one row per session and step where it entered, left, answered or gave an outcome (entered,
-- leaves, answer_id/answer, outcome_id/outcome): the plain shape of what sessions.entered and
-- sessions.answers held as text. session_answers (read by nothing) and the triggers go.
-- New indexes serve the summary: the first events (each session's start), the few
-- recall/followup events, the steps entered and left, the answers and outcomes per session. The derived tables are dropped and made again;
-- right after these statements the store fills them from every stored event (watermark 0).
-- Every event and log_gaps row is kept.
-- Part of the schema's history: never edit; change the schema with a new file. One statement
-- per paragraph (blank lines separate statements; lines starting with '--' are comments).

DROP TRIGGER IF EXISTS events_sessions

DROP TRIGGER IF EXISTS events_session_answers

DROP TABLE IF EXISTS session_answers

DROP TABLE IF EXISTS sessions

CREATE TABLE sessions (
 session TEXT PRIMARY KEY,
 firsts INTEGER NOT NULL,
 last_id INTEGER NOT NULL,
 last_node TEXT NOT NULL,
 finishes INTEGER NOT NULL,
 switches INTEGER NOT NULL) WITHOUT ROWID

CREATE TABLE session_steps (
 session TEXT NOT NULL,
 node TEXT NOT NULL,
 entered INTEGER NOT NULL,
 leaves INTEGER NOT NULL,
 answer_id INTEGER,
 answer TEXT,
 outcome_id INTEGER,
 outcome TEXT,
 PRIMARY KEY (session, node)) WITHOUT ROWID

CREATE INDEX events_first ON events (ts, lang, session) WHERE elapsed_ms IS NULL

CREATE INDEX events_followup ON events (session, id, node, action, option) WHERE action IN ('recall', 'followup')

CREATE INDEX session_steps_nodes ON session_steps (node, entered, leaves)

CREATE INDEX session_steps_given ON session_steps (session, node, answer_id, answer, outcome_id, outcome)
 WHERE answer_id IS NOT NULL OR outcome_id IS NOT NULL

DELETE FROM meta WHERE key = 'derived_through'
