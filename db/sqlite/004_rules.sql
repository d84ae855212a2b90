-- apubid store, schema version 4: scripted outcomes for staging.
-- A task accepted under a [staging] rule carries the rule's name and what
-- it scripts, copied at acceptance so that reloading the rules never
-- changes a task already accepted. rule_polls: scripted IN_PROGRESS
-- answers still to give, -1 for ever.
ALTER TABLE task ADD COLUMN rule TEXT;
ALTER TABLE task ADD COLUMN rule_fail TEXT;
ALTER TABLE task ADD COLUMN rule_result TEXT;
ALTER TABLE task ADD COLUMN rule_polls INTEGER NOT NULL DEFAULT 0;
