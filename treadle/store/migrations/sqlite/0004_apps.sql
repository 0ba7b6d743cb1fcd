-- schema version 4: apps and workers (see treadle/store/apps.py). Every instance and activity
-- task belongs to an app ('' for none) and is claimed only by its app's workers, an instance
-- says why it waits for a worker (waiting), and workers advertise what they take (workers).
ALTER TABLE instances ADD COLUMN app_id TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN waiting TEXT;
ALTER TABLE activity_tasks ADD COLUMN app_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS instances_waiting ON instances (instance_id) WHERE waiting IS NOT NULL;
CREATE TABLE IF NOT EXISTS workers (
    owner      TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    workflows  TEXT,            -- JSON list of names, NULL: any
    activities TEXT,            -- likewise
    seen_at    REAL NOT NULL,   -- the last heartbeat (or the shutdown)
    stopped    INTEGER NOT NULL DEFAULT 0
)
