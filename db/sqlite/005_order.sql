-- apubid store, schema version 5: one order per destination.
-- dest_key is the destination as a byte string that makes overlap a prefix
-- test: "/" + dest_path + "/" ("/" alone for the root itself), so that
-- "/show/" is a prefix of "/show/v1/seg1.ts/" but not of "/show2/". Two
-- tasks overlap when either key is a prefix of the other. A task is claimed
-- only when no unfinished task with a lower seq overlaps it; seq is the
-- order of acceptance (an operator's retry gives the task a new one).
-- The key is a BLOB: substr() and length() then count bytes, and equality
-- is byte for byte, whatever the names hold.
ALTER TABLE task ADD COLUMN dest_key BLOB;
UPDATE task SET dest_key = CAST('/' || dest_path || CASE WHEN dest_path = '' THEN '' ELSE '/' END
				AS BLOB);
-- The unfinished tasks in acceptance order with their keys: the claim's
-- overlap test reads this index alone, however many finished tasks are kept.
CREATE INDEX task_order ON task (seq, dest_key) WHERE state < 3;
