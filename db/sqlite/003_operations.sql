-- apubid store, schema version 3: what operators see and do.
-- Every change of a task's state is kept in `event`, written by triggers so
-- that no code path can forget it. Operators can retry a failed task
-- (attempt_base: the retry budget counts from there) and cancel a running
-- one (cancel_requested: the daemon running it stops it). A final task's
-- notification is delivered by the daemon: notify_state 0 none,
-- 1 pending, 2 delivered, 3 failed.
ALTER TABLE task ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN notify_state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN notify_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN notify_next_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN notify_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task ADD COLUMN notify_error TEXT;

CREATE INDEX task_notify ON task (notify_next_ms) WHERE notify_state = 1;
CREATE INDEX task_cancel ON task (seq) WHERE cancel_requested = 1 AND state = 1;
CREATE INDEX task_state_seq ON task (state, seq);

-- One row that /healthz rewrites to prove the store takes writes.
CREATE TABLE health (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);

CREATE TABLE event (
	task_id TEXT NOT NULL,
	at_ms   INTEGER NOT NULL,
	state   INTEGER NOT NULL,
	detail  TEXT
);
CREATE INDEX event_task ON event (task_id);

CREATE TRIGGER task_accepted AFTER INSERT ON task BEGIN
	INSERT INTO event (task_id, at_ms, state, detail)
	VALUES (new.id, new.created_ms, new.state, 'accepted');
END;

CREATE TRIGGER task_moved AFTER UPDATE OF state ON task
WHEN old.state IS NOT new.state BEGIN
	INSERT INTO event (task_id, at_ms, state, detail)
	VALUES (new.id, new.updated_ms, new.state,
		CASE new.state
		WHEN 0 THEN CASE WHEN old.state = 1 THEN 'interrupted, queued again'
				 ELSE 'queued again by an operator' END
		WHEN 1 THEN 'attempt ' || new.attempts
		WHEN 3 THEN coalesce(new.result, new.note)
		ELSE new.reason END);
END;

DROP TRIGGER task_pruned;
CREATE TRIGGER task_pruned AFTER DELETE ON task BEGIN
	DELETE FROM item WHERE task_id = old.id;
	DELETE FROM attempt WHERE task_id = old.id;
	DELETE FROM event WHERE task_id = old.id;
END;
