-- apubid store on PostgreSQL, schema version 1: the whole of the SQLite
-- schema's six versions, plus what several nodes sharing the table need.
-- Times are milliseconds since the epoch (UTC).
-- state: 0 queued, 1 running, 2 retry, 3 succeeded, 4 failed, 5 cancelled.
-- kind: 1 load, 2 purge.
-- notify_state: 0 none, 1 pending, 2 delivered, 3 failed.
CREATE TABLE task (
	seq              bigint PRIMARY KEY,          -- claim order (task_seq)
	id               text NOT NULL UNIQUE,        -- the TaskId the WFM holds
	kind             integer NOT NULL,
	state            integer NOT NULL DEFAULT 0,
	source           text,
	destination      text NOT NULL,
	dest_path        text NOT NULL,
	dest_is_dir      integer NOT NULL DEFAULT 0,
	result           text,
	reason           text,
	note             text,
	attempts         integer NOT NULL DEFAULT 0,
	created_ms       bigint NOT NULL,
	updated_ms       bigint NOT NULL,
	next_attempt_ms  bigint NOT NULL DEFAULT 0,
	first_started_ms bigint NOT NULL DEFAULT 0,
	bytes_total      bigint NOT NULL DEFAULT 0,
	bytes_done       bigint NOT NULL DEFAULT 0,
	files_total      integer NOT NULL DEFAULT 0,
	files_done       integer NOT NULL DEFAULT 0,
	attempt_base     integer NOT NULL DEFAULT 0,
	cancel_requested integer NOT NULL DEFAULT 0,
	notify_state     integer NOT NULL DEFAULT 0,
	notify_attempts  integer NOT NULL DEFAULT 0,
	notify_next_ms   bigint NOT NULL DEFAULT 0,
	notify_ms        bigint NOT NULL DEFAULT 0,
	notify_error     text,
	rule             text,
	rule_fail        text,
	rule_result      text,
	rule_polls       integer NOT NULL DEFAULT 0,
	-- "/" + dest_path + "/" ("/" alone for the root): two tasks overlap
	-- when either key is a prefix of the other (order.c). bytea, so that
	-- length() and substr() count bytes and equality is byte for byte.
	dest_key         bytea NOT NULL,
	-- The node running the task ("host pid start"), the end of its lease
	-- and the token of its claim: each claim draws a new token, and the
	-- writes of a running task name it, so that a node whose lease was
	-- taken over writes nothing any more.
	node             text,
	lease_until_ms   bigint NOT NULL DEFAULT 0,
	lease_token      bigint NOT NULL DEFAULT 0
);
CREATE SEQUENCE task_seq;
CREATE SEQUENCE lease_token_seq;

-- The unfinished tasks in acceptance order with their keys: the claim's
-- overlap test reads this index alone, however many finished tasks are kept.
CREATE INDEX task_order ON task (seq) INCLUDE (dest_key, state, next_attempt_ms)
	WHERE state < 3;
CREATE INDEX task_updated ON task (updated_ms) WHERE state >= 3;
CREATE INDEX task_lease ON task (lease_until_ms) WHERE state = 1;
CREATE INDEX task_notify ON task (notify_next_ms) WHERE notify_state = 1;
CREATE INDEX task_cancel ON task (seq) WHERE cancel_requested = 1 AND state = 1;
CREATE INDEX task_state_seq ON task (state, seq);

-- One row per file or directory of a load, in transfer order (seq).
-- state: 0 pending, 1 done, 2 failed.
CREATE TABLE item (
	task_id  text NOT NULL REFERENCES task (id) ON DELETE CASCADE,
	seq      integer NOT NULL,
	path     text NOT NULL,
	is_dir   integer NOT NULL DEFAULT 0,
	size     bigint NOT NULL DEFAULT -1,
	state    integer NOT NULL DEFAULT 0,
	sha256   text,
	error    text,
	version  text,
	PRIMARY KEY (task_id, seq)
);

-- One row per attempt a worker made, with the error that ended it.
CREATE TABLE attempt (
	task_id    text NOT NULL REFERENCES task (id) ON DELETE CASCADE,
	n          integer NOT NULL,
	started_ms bigint NOT NULL,
	ended_ms   bigint NOT NULL,
	error      text,
	PRIMARY KEY (task_id, n)
);

-- One row per node that /healthz rewrites to prove the store takes writes.
CREATE TABLE health (node text PRIMARY KEY, at_ms bigint NOT NULL);

-- Every change of a task's state, written by triggers so that no code path
-- can forget it.
CREATE TABLE event (
	id      bigserial PRIMARY KEY,
	task_id text NOT NULL REFERENCES task (id) ON DELETE CASCADE,
	at_ms   bigint NOT NULL,
	state   integer NOT NULL,
	detail  text
);
CREATE INDEX event_task ON event (task_id);

CREATE FUNCTION task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO event (task_id, at_ms, state, detail)
		VALUES (NEW.id, NEW.created_ms, NEW.state, 'accepted');
	ELSIF OLD.state IS DISTINCT FROM NEW.state THEN
		INSERT INTO event (task_id, at_ms, state, detail)
		VALUES (NEW.id, NEW.updated_ms, NEW.state,
			CASE NEW.state
			WHEN 0 THEN CASE WHEN OLD.state = 1 THEN 'interrupted, queued again'
					 ELSE 'queued again by an operator' END
			WHEN 1 THEN 'attempt ' || NEW.attempts
			WHEN 3 THEN coalesce(NEW.result, NEW.note)
			ELSE NEW.reason END);
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER task_accepted AFTER INSERT ON task FOR EACH ROW EXECUTE FUNCTION task_event();
CREATE TRIGGER task_moved AFTER UPDATE OF state ON task FOR EACH ROW EXECUTE FUNCTION task_event();
