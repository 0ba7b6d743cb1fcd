-- schema version 4: apps and workers (see treadle/store/apps.py). Every instance and activity
-- task belongs to an app ('' for none) and is claimed only by its app's workers, an instance
-- says why it waits for a worker (waiting), and workers advertise what they take (workers).
ALTER TABLE instances ADD COLUMN IF NOT EXISTS app_id text NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN IF NOT EXISTS waiting text;
ALTER TABLE activity_tasks ADD COLUMN IF NOT EXISTS app_id text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS instances_waiting ON instances (instance_id) WHERE waiting IS NOT NULL;
CREATE TABLE IF NOT EXISTS workers (
    owner      text PRIMARY KEY,
    app_id     text NOT NULL,
    workflows  text,            -- JSON list of names, NULL: any
    activities text,            -- likewise
    seen_at    timestamptz NOT NULL,
    stopped    boolean NOT NULL DEFAULT false
);
