-- treadle schema, version 1 (SQLite). Times are seconds since the epoch (UTC).
CREATE TABLE IF NOT EXISTS instances (
    instance_id        TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    execution_id       TEXT NOT NULL,
    input              TEXT,
    output             TEXT,
    custom_status      TEXT,
    failure            TEXT,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    parent_instance_id TEXT,
    history_len        INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_expires_at   REAL
);
CREATE INDEX IF NOT EXISTS instances_created ON instances (created_at);
CREATE INDEX IF NOT EXISTS instances_parent ON instances (parent_instance_id);
CREATE INDEX IF NOT EXISTS instances_lease ON instances (lease_owner);

CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    event       TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    execution_id TEXT,
    event        TEXT NOT NULL,
    visible_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox (visible_at);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox (instance_id, id);

CREATE TABLE IF NOT EXISTS activity_tasks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id       TEXT NOT NULL,
    execution_id      TEXT NOT NULL,
    task_id           INTEGER NOT NULL,
    name              TEXT NOT NULL,
    input             TEXT,
    task_execution_id TEXT NOT NULL,
    visible_at        REAL NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  REAL
);
CREATE INDEX IF NOT EXISTS activity_claim ON activity_tasks (lease_expires_at, id);
CREATE INDEX IF NOT EXISTS activity_instance ON activity_tasks (instance_id);
