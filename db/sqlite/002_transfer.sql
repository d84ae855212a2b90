-- apubid store, schema version 2: transfers with retries, progress and
-- one item per file.
-- A task waiting to be retried (state 2) is claimed again once
-- next_attempt_ms has passed; first_started_ms anchors the task timeout.
ALTER TABLE task ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN first_started_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN bytes_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN files_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN files_done INTEGER NOT NULL DEFAULT 0;

-- One row per file or directory of a load, in transfer order (seq).
-- state: 0 pending, 1 done, 2 failed.
CREATE TABLE item (
	task_id  TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	path     TEXT NOT NULL,      -- relative to the asset; "" for a single file
	is_dir   INTEGER NOT NULL DEFAULT 0,
	size     INTEGER NOT NULL DEFAULT -1,
	state    INTEGER NOT NULL DEFAULT 0,
	sha256   TEXT,
	error    TEXT,
	PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

-- One row per attempt a worker made, with the error that ended it.
CREATE TABLE attempt (
	task_id    TEXT NOT NULL,
	n          INTEGER NOT NULL,
	started_ms INTEGER NOT NULL,
	ended_ms   INTEGER NOT NULL,
	error      TEXT,
	PRIMARY KEY (task_id, n)
) WITHOUT ROWID;

-- Pruning a task takes its items and attempts with it.
CREATE TRIGGER task_pruned AFTER DELETE ON task BEGIN
	DELETE FROM item WHERE task_id = old.id;
	DELETE FROM attempt WHERE task_id = old.id;
END;
