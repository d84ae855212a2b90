-- apubid store, schema version 1.
-- One row per task. Times are milliseconds since the epoch (UTC).
-- state: 0 queued, 1 running, 2 retry, 3 succeeded, 4 failed, 5 cancelled.
-- kind: 1 load, 2 purge.
CREATE TABLE task (
	seq          INTEGER PRIMARY KEY,          -- claim order
	id           TEXT NOT NULL UNIQUE,         -- the TaskId the WFM holds
	kind         INTEGER NOT NULL,
	state        INTEGER NOT NULL DEFAULT 0,
	source       TEXT,
	destination  TEXT NOT NULL,
	dest_path    TEXT NOT NULL,
	dest_is_dir  INTEGER NOT NULL DEFAULT 0,
	result       TEXT,
	reason       TEXT,
	note         TEXT,
	attempts     INTEGER NOT NULL DEFAULT 0,
	created_ms   INTEGER NOT NULL,
	updated_ms   INTEGER NOT NULL
);
-- Workers look for unfinished tasks only; the partial index stays small
-- however many finished tasks are kept for the retention period.
CREATE INDEX task_active ON task (state, seq) WHERE state < 3;
CREATE INDEX task_updated ON task (updated_ms) WHERE state >= 3;
