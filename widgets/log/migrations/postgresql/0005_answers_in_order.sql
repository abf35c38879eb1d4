-- Log schema version 5 (postgresql): each session's answers in one column, so that the summary
-- reads them without joining another table.
--
-- sessions.answers: the session's last answer at each step where it made a choice, in the order
-- those answers were given (the order of their event ids), as '|node=option|node=option|' ('|'
-- for none; 'node=' for a choice without an option). A new choice at a step moves that step's
-- entry to the end. It holds what session_answers holds, ordered; session_answers is kept as it
-- is. Like every rollup column it names no step of the flow: which steps matter is decided by
-- the flow when the summary runs. Filled here from session_answers (every event row is kept),
-- then kept by the statement trigger's function, once per INSERT statement. The events are
-- first locked against inserts, so that no event committed during the migration is left out.
-- Part of the schema's history: never edit; change the schema with a new file. One statement
-- per paragraph (blank lines separate statements; lines starting with '--' are comments).

LOCK TABLE events IN SHARE MODE

ALTER TABLE sessions ADD COLUMN answers TEXT NOT NULL DEFAULT '|'

UPDATE sessions AS s SET answers = '|' || a.entries || '|'
FROM (SELECT session, string_agg(node || '=' || coalesce(option, ''), '|' ORDER BY event_id) AS entries
 FROM session_answers GROUP BY session) AS a
WHERE a.session = s.session

CREATE OR REPLACE FUNCTION events_to_sessions() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$ BEGIN
IF (SELECT count(*) FROM new_events) = 1 THEN
 INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
  outcome_id, outcome_option, entered, answers)
 SELECT session,
  CASE WHEN elapsed_ms IS NULL THEN 1 ELSE 0 END,
  CASE WHEN elapsed_ms IS NULL THEN ts END,
  CASE WHEN elapsed_ms IS NULL THEN lang END,
  id, node,
  CASE WHEN action = 'finish' THEN 1 ELSE 0 END,
  CASE WHEN action = 'language' THEN 1 ELSE 0 END,
  CASE WHEN action = 'outcome' THEN id END,
  CASE WHEN action = 'outcome' THEN option END,
  CASE WHEN action = 'enter' THEN '|' || node || '|' ELSE '|' END,
  CASE WHEN action = 'choose' THEN '|' || node || '=' || coalesce(option, '') || '|' ELSE '|' END
 FROM new_events
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
   ELSE '|' || coalesce((SELECT string_agg(e, '|' ORDER BY n) FROM unnest(string_to_array(trim(BOTH '|' FROM sessions.answers), '|')) WITH ORDINALITY AS kept (e, n) WHERE strpos(excluded.answers, '|' || split_part(e, '=', 1) || '=') = 0) || '|', '') || substr(excluded.answers, 2) END;
ELSE
 INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
  outcome_id, outcome_option, entered, answers)
 SELECT session,
  count(*) FILTER (WHERE elapsed_ms IS NULL),
  (array_agg(ts ORDER BY id) FILTER (WHERE elapsed_ms IS NULL))[1],
  (array_agg(lang ORDER BY id) FILTER (WHERE elapsed_ms IS NULL))[1],
  max(id),
  (array_agg(node ORDER BY id DESC))[1],
  count(*) FILTER (WHERE action = 'finish'),
  count(*) FILTER (WHERE action = 'language'),
  max(id) FILTER (WHERE action = 'outcome'),
  (array_agg(option ORDER BY id DESC) FILTER (WHERE action = 'outcome'))[1],
  '|' || coalesce(string_agg(DISTINCT node, '|') FILTER (WHERE action = 'enter') || '|', ''),
  '|' || coalesce(string_agg(node || '=' || coalesce(option, ''), '|' ORDER BY id) FILTER (WHERE last_choice) || '|', '')
 FROM (SELECT *, action = 'choose' AND id = max(id) FILTER (WHERE action = 'choose') OVER (PARTITION BY session, node) AS last_choice
  FROM new_events) AS batch GROUP BY session
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
  entered = sessions.entered || coalesce((SELECT string_agg(n, '|') || '|' FROM unnest(string_to_array(trim(BOTH '|' FROM excluded.entered), '|')) AS n WHERE strpos(sessions.entered, '|' || n || '|') = 0), ''),
  answers = CASE WHEN excluded.answers = '|' THEN sessions.answers
   ELSE '|' || coalesce((SELECT string_agg(e, '|' ORDER BY n) FROM unnest(string_to_array(trim(BOTH '|' FROM sessions.answers), '|')) WITH ORDINALITY AS kept (e, n) WHERE strpos(excluded.answers, '|' || split_part(e, '=', 1) || '=') = 0) || '|', '') || substr(excluded.answers, 2) END;
END IF;
INSERT INTO session_answers (session, node, option, event_id)
SELECT DISTINCT ON (session, node) session, node, option, id
FROM new_events WHERE action = 'choose' ORDER BY session, node, id DESC
ON CONFLICT (session, node) DO UPDATE SET option = excluded.option, event_id = excluded.event_id
WHERE excluded.event_id > session_answers.event_id;
RETURN NULL; END $$
