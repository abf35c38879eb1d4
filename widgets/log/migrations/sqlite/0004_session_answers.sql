-- Log schema version 4 (sqlite): a rollup that names no step of the flow.
--
-- session_answers: one row per session and step (node) where the session made a choice: the
-- option and event id of its last `choose` event there (highest id, whatever order writers
-- commit in). Which steps matter (the contact decision, the path dimensions) is decided by the
-- flow when the summary runs, so renaming, adding or moving a step needs no schema change.
--
-- sessions keeps only what is the same for every flow: firsts, first_ts/_lang, last_id/_node,
-- finishes, switches, outcome_id/_option, entered. The columns named after steps
-- (contact_*, problem_*, order_*) are dropped: everything in them is in session_answers, which
-- is filled here from the stored events (every event row is kept). Both tables are kept by
-- triggers on each inserted event, in the transaction that inserts it.
-- Part of the schema's history: never edit; change the schema with a new file. One statement
-- per paragraph (blank lines separate statements; lines starting with '--' are comments).

DROP TRIGGER IF EXISTS events_sessions

ALTER TABLE sessions DROP COLUMN contact_id

ALTER TABLE sessions DROP COLUMN contact_node

ALTER TABLE sessions DROP COLUMN contact_option

ALTER TABLE sessions DROP COLUMN problem_id

ALTER TABLE sessions DROP COLUMN problem_option

ALTER TABLE sessions DROP COLUMN order_id

ALTER TABLE sessions DROP COLUMN order_option

CREATE TABLE IF NOT EXISTS session_answers (
 session TEXT NOT NULL,
 node TEXT NOT NULL,
 option TEXT,
 event_id INTEGER NOT NULL,
 PRIMARY KEY (session, node)) WITHOUT ROWID

INSERT INTO session_answers (session, node, option, event_id)
SELECT e.session, e.node, e.option, e.id
FROM (SELECT max(id) AS id FROM events WHERE action = 'choose' GROUP BY session, node) AS m
JOIN events AS e ON e.id = m.id

CREATE TRIGGER events_sessions AFTER INSERT ON events BEGIN
INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
 outcome_id, outcome_option, entered)
VALUES (NEW.session,
 CASE WHEN NEW.elapsed_ms IS NULL THEN 1 ELSE 0 END,
 CASE WHEN NEW.elapsed_ms IS NULL THEN NEW.ts END,
 CASE WHEN NEW.elapsed_ms IS NULL THEN NEW.lang END,
 NEW.id, NEW.node,
 CASE WHEN NEW.action = 'finish' THEN 1 ELSE 0 END,
 CASE WHEN NEW.action = 'language' THEN 1 ELSE 0 END,
 CASE WHEN NEW.action = 'outcome' THEN NEW.id END,
 CASE WHEN NEW.action = 'outcome' THEN NEW.option END,
 CASE WHEN NEW.action = 'enter' THEN '|' || NEW.node || '|' ELSE '|' END)
ON CONFLICT (session) DO UPDATE SET
 firsts = sessions.firsts + excluded.firsts,
 first_ts = CASE WHEN sessions.first_ts IS NULL THEN excluded.first_ts ELSE sessions.first_ts END,
 first_lang = CASE WHEN sessions.first_ts IS NULL THEN excluded.first_lang ELSE sessions.first_lang END,
 last_id = CASE WHEN excluded.last_id > sessions.last_id THEN excluded.last_id ELSE sessions.last_id END,
 last_node = CASE WHEN excluded.last_id > sessions.last_id THEN excluded.last_node ELSE sessions.last_node END,
 finishes = sessions.finishes + excluded.finishes,
 switches = sessions.switches + excluded.switches,
 outcome_id = CASE WHEN excluded.outcome_id > sessions.outcome_id OR sessions.outcome_id IS NULL THEN excluded.outcome_id ELSE sessions.outcome_id END,
 outcome_option = CASE WHEN excluded.outcome_id > sessions.outcome_id OR sessions.outcome_id IS NULL THEN excluded.outcome_option ELSE sessions.outcome_option END,
 entered = CASE WHEN replace(sessions.entered, excluded.entered, '') <> sessions.entered THEN sessions.entered ELSE sessions.entered || substr(excluded.entered, 2) END;
END

CREATE TRIGGER events_session_answers AFTER INSERT ON events WHEN NEW.action = 'choose' BEGIN
INSERT INTO session_answers (session, node, option, event_id)
VALUES (NEW.session, NEW.node, NEW.option, NEW.id)
ON CONFLICT (session, node) DO UPDATE SET option = excluded.option, event_id = excluded.event_id
WHERE excluded.event_id > session_answers.event_id;
END
