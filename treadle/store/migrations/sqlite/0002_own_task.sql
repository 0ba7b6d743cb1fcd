-- schema version 2: an instance's own activity task lives in its row (see OWN_TASK_RULES in
-- treadle/store/base.py). instances_held finds the instances whose lease lapsed, and a step
-- that keeps its lease no longer rewrites an index of the lease owner.
ALTER TABLE instances ADD COLUMN own_task TEXT;
DROP INDEX IF EXISTS instances_lease;
CREATE INDEX IF NOT EXISTS instances_held ON instances (lease_expires_at)
    WHERE lease_owner IS NOT NULL
