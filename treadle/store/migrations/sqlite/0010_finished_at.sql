-- schema version 10: finished_at, the time an instance finished (NULL while it has not), set
-- only by a write that gives it a finished status. instances_finished indexes it instead of
-- updated_at, which every turn writes (as on PostgreSQL, where that made no turn HOT).
ALTER TABLE instances ADD COLUMN finished_at REAL;
UPDATE instances SET finished_at = updated_at
    WHERE status IN ('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED');
DROP INDEX IF EXISTS instances_finished;
CREATE INDEX IF NOT EXISTS instances_finished ON instances (finished_at)
    WHERE finished_at IS NOT NULL
