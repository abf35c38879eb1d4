-- Log schema version 1 (postgresql). Part of the schema's history: never edit;
-- change the schema with a new file. One statement per paragraph (blank lines separate
-- statements; lines starting with '--' are comments).

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)

CREATE TABLE IF NOT EXISTS events ( id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, session TEXT NOT NULL, node TEXT NOT NULL, action TEXT NOT NULL, option TEXT, lang TEXT NOT NULL, elapsed_ms BIGINT)

CREATE INDEX IF NOT EXISTS events_ts ON events (ts)

CREATE INDEX IF NOT EXISTS events_session ON events (session, id)

CREATE TABLE IF NOT EXISTS log_gaps ( id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, session TEXT NOT NULL, dropped INTEGER NOT NULL)
