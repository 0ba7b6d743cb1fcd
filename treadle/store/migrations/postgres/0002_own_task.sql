-- schema version 2: an instance's own activity task lives in its row (see OWN_TASK_RULES in
-- treadle/store/base.py). instances_lease finds the instances whose lease lapsed.
ALTER TABLE instances ADD COLUMN IF NOT EXISTS own_task text;
