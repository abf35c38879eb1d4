-- Log schema version 4 (postgresql): a rollup that names no step of the flow.
--
-- session_answers: one row per session and step (node) where the session made a choice: the
-- option and event id of its last `choose` event there (highest id, whatever order writers
-- commit in). Which steps matter (the contact decision, the path dimensions) is decided by the
-- flow when the summary runs, so renaming, adding or moving a step needs no schema change.
--
-- sessions keeps only what is the same for every flow: firsts, first_ts/_lang, last_id/_node,
-- finishes, switches, outcome_id/_option, entered. The columns named after steps
-- (contact_*, problem_*, order_*) are dropped: everything in them is in session_answers, which
-- is filled here from the stored events (every event row is kept). Both tables are kept by the
-- statement trigger's function, once per INSERT statement. The events are first locked against
-- inserts, so that no event committed during the migration is left out.
-- Part of the schema's history: never edit; change the schema with a new file. One statement
-- per paragraph (blank lines separate statements; lines starting with '--' are comments).

LOCK TABLE events IN SHARE MODE

ALTER TABLE sessions DROP COLUMN contact_id, DROP COLUMN contact_node, DROP COLUMN contact_option,
 DROP COLUMN problem_id, DROP COLUMN problem_option, DROP COLUMN order_id, DROP COLUMN order_option

CREATE TABLE IF NOT EXISTS session_answers (
 session TEXT NOT NULL,
 node TEXT NOT NULL,
 option TEXT,
 event_id BIGINT NOT NULL,
 PRIMARY KEY (session, node))

INSERT INTO session_answers (session, node, option, event_id)
SELECT DISTINCT ON (session, node) session, node, option, id
FROM events WHERE action = 'choose' ORDER BY session, node, id DESC

CREATE OR REPLACE FUNCTION events_to_sessions() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$ BEGIN
IF (SELECT count(*) FROM new_events) = 1 THEN
 INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
  outcome_id, outcome_option, entered)
 SELECT session,
  CASE WHEN elapsed_ms IS NULL THEN 1 ELSE 0 END,
  CASE WHEN elapsed_ms IS NULL THEN ts END,
  CASE WHEN elapsed_ms IS NULL THEN lang END,
  id, node,
  CASE WHEN action = 'finish' THEN 1 ELSE 0 END,
  CASE WHEN action = 'language' THEN 1 ELSE 0 END,
  CASE WHEN action = 'outcome' THEN id END,
  CASE WHEN action = 'outcome' THEN option END,
  CASE WHEN action = 'enter' THEN '|' || node || '|' ELSE '|' END
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
  entered = CASE WHEN replace(sessions.entered, excluded.entered, '') <> sessions.entered THEN sessions.entered ELSE sessions.entered || substr(excluded.entered, 2) END;
ELSE
 INSERT INTO sessions (session, firsts, first_ts, first_lang, last_id, last_node, finishes, switches,
  outcome_id, outcome_option, entered)
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
  '|' || coalesce(string_agg(DISTINCT node, '|') FILTER (WHERE action = 'enter') || '|', '')
 FROM new_events GROUP BY session
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
  entered = sessions.entered || coalesce((SELECT string_agg(n, '|') || '|' FROM unnest(string_to_array(trim(BOTH '|' FROM excluded.entered), '|')) AS n WHERE strpos(sessions.entered, '|' || n || '|') = 0), '');
END IF;
INSERT INTO session_answers (session, node, option, event_id)
SELECT DISTINCT ON (session, node) session, node, option, id
FROM new_events WHERE action = 'choose' ORDER BY session, node, id DESC
ON CONFLICT (session, node) DO UPDATE SET option = excluded.option, event_id = excluded.event_id
WHERE excluded.event_id > session_answers.event_id;
RETURN NULL; END $$
