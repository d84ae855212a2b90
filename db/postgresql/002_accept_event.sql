-- apubid store on PostgreSQL, schema version 2: a task's "accepted" event
-- is written by the statement that inserts the task (store_pg.c's batch
-- insert, a data-modifying CTE), not by a row trigger. A row trigger runs
-- a PL/pgSQL call and a separately planned INSERT per task; the batch
-- inserts every event of a group commit in one set. Changes of state after
-- that stay with the trigger task_moved.
DROP TRIGGER task_accepted ON task;

CREATE OR REPLACE FUNCTION task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.state IS DISTINCT FROM NEW.state THEN
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
