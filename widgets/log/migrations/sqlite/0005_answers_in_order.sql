-- Log schema version 5 (sqlite): each session's answers in one column, so that the summary reads
-- them without joining another table.
--
-- sessions.answers: the session's last answer at each step where it made a choice, in the order
-- those answers were given (the order of their event ids), as '|node=option|node=option|' ('|'
-- for none; 'node=' for a choice without an option). A new choice at a step moves that step's
-- entry to the end. It holds what session_answers holds, ordered; session_answers is kept as it
-- is. Like every rollup column it names no step of the flow: which steps matter is decided by
-- the flow when the summary runs. Filled here from session_answers (every event row is kept),
-- then kept by the events_sessions trigger in the transaction that inserts each event.
-- Part of the schema's history: never edit; change the schema with a new file. One statement
-- per paragraph (blank lines separate statements; lines starting with '--' are comments).

ALTER TABLE sessions ADD COLUMN answers TEXT NOT NULL DEFAULT '|'

UPDATE sessions SET answers = '|' || (SELECT group_concat(entry, '|') FROM (
 SELECT a.node || '=' || coalesce(a.option, '') AS entry FROM session_answers AS a
 WHERE a.session = sessions.session ORDER BY a.event_id)) || '|'
WHERE session IN (SELECT session FROM session_answers)

DROP TRIGGER IF EXISTS events_sessions

CREATE TRIGGER events_sessions AFTER INSERT ON events BEGIN
INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
 outcome_id, outcome_option, entered, answers)
VALUES (NEW.session,
 CASE WHEN NEW.elapsed_ms IS NULL THEN 1 ELSE 0 END,
 CASE WHEN NEW.elapsed_ms IS NULL THEN NEW.ts END,
 CASE WHEN NEW.elapsed_ms IS NULL THEN NEW.lang END,
 NEW.id, NEW.node,
 CASE WHEN NEW.action = 'finish' THEN 1 ELSE 0 END,
 CASE WHEN NEW.action = 'language' THEN 1 ELSE 0 END,
 CASE WHEN NEW.action = 'outcome' THEN NEW.id END,
 CASE WHEN NEW.action = 'outcome' THEN NEW.option END,
 CASE WHEN NEW.action = 'enter' THEN '|' || NEW.node || '|' ELSE '|' END,
 CASE WHEN NEW.action = 'choose' THEN '|' || NEW.node || '=' || coalesce(NEW.option, '') || '|' ELSE '|' END)
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
 entered = CASE WHEN replace(sessions.entered, excluded.entered, '') <> sessions.entered THEN sessions.entered ELSE sessions.entered || substr(excluded.entered, 2) END,
 answers = CASE WHEN excluded.answers = '|' THEN sessions.answers
  WHEN instr(sessions.answers, '|' || NEW.node || '=') = 0 THEN sessions.answers || substr(excluded.answers, 2)
  ELSE substr(sessions.answers, 1, instr(sessions.answers, '|' || NEW.node || '='))
   || substr(sessions.answers, instr(sessions.answers, '|' || NEW.node || '=') + 1
      + instr(substr(sessions.answers, instr(sessions.answers, '|' || NEW.node || '=') + 1), '|'))
   || substr(excluded.answers, 2) END;
END
