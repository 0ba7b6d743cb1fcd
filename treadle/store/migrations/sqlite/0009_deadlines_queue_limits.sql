-- schema version 9: start-to-close activity timeouts (call_activity(..., timeout=...)), and
-- queue limits kept in the store.
-- timeout_s is the attempt's timeout, and deadline_at is set when a worker first takes the attempt
-- (its claim: now + timeout_s) and kept when the task is taken again after its worker died, so
-- the attempt fails at its deadline whoever runs it. Every runtime of the store fails the
-- attempts past their deadline (see treadle/store/deadlines.py) through this partial index.
ALTER TABLE activity_tasks ADD COLUMN timeout_s REAL;
ALTER TABLE activity_tasks ADD COLUMN deadline_at REAL;
CREATE INDEX IF NOT EXISTS activity_deadlines ON activity_tasks (deadline_at)
    WHERE deadline_at IS NOT NULL
;
-- the limits of each named queue, shared by every worker of the store (see
-- treadle/store/queues.py): written by each worker's registration (the last one wins) unless
-- pinned by an operator (client.set_queue_limits, treadle queue set), read by every claim
CREATE TABLE IF NOT EXISTS queue_limits (
    queue       TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_limit  INTEGER,
    period_s    REAL NOT NULL,
    pinned      INTEGER NOT NULL DEFAULT 0,
    updated_by  TEXT NOT NULL,
    updated_at  REAL NOT NULL
)
