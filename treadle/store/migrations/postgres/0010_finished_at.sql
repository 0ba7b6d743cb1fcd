-- schema version 10: finished_at, the time an instance finished (NULL while it has not), set
-- only by a write that gives it a finished status. instances_finished indexes it instead of
-- updated_at: every turn writes updated_at, and an update that changes an indexed column
-- (or one in an index's predicate) cannot be HOT, so each turn of a running instance wrote
-- new entries in every index of instances. A running instance's turns now change no indexed
-- column (its lease is kept as it is while more than half of it is left): they can be HOT.
ALTER TABLE instances ADD COLUMN IF NOT EXISTS finished_at timestamptz;
UPDATE instances SET finished_at = updated_at
    WHERE status IN ('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED') AND finished_at IS NULL;
DROP INDEX IF EXISTS instances_finished;
CREATE INDEX IF NOT EXISTS instances_finished ON instances (finished_at)
    WHERE finished_at IS NOT NULL;
