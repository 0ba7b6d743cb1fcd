-- treadle schema, version 1 (PostgreSQL). Times are timestamptz on the database's clock.
-- Applied inside one transaction, under an advisory lock, in the schema the store's URL names.
CREATE TABLE IF NOT EXISTS instances (
    instance_id        text PRIMARY KEY,
    name               text NOT NULL,
    status             text NOT NULL,
    execution_id       text NOT NULL,
    input              text,
    output             text,
    custom_status      text,
    failure            text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    parent_instance_id text,
    history_len        integer NOT NULL DEFAULT 0,
    version            bigint NOT NULL DEFAULT 0,
    lease_owner        text,
    lease_expires_at   timestamptz
);
-- list_instances pages newest first, by (created_at, instance_id)
CREATE INDEX IF NOT EXISTS instances_created ON instances (created_at DESC, instance_id DESC);
CREATE INDEX IF NOT EXISTS instances_parent ON instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS instances_lease ON instances (lease_owner, lease_expires_at)
    WHERE lease_owner IS NOT NULL;

CREATE TABLE IF NOT EXISTS history (
    instance_id text NOT NULL,
    seq         integer NOT NULL,
    event       text NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

CREATE TABLE IF NOT EXISTS inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  text NOT NULL,
    execution_id text,
    event        text NOT NULL,
    visible_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox (visible_at);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox (instance_id, id);

CREATE TABLE IF NOT EXISTS activity_tasks (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id       text NOT NULL,
    execution_id      text NOT NULL,
    task_id           integer NOT NULL,
    name              text NOT NULL,
    input             text,
    task_execution_id text NOT NULL,
    visible_at        timestamptz NOT NULL,
    lease_owner       text,
    lease_expires_at  timestamptz
);
-- claim_activities scans unleased tasks in id order; expired leases are found by expiry
CREATE INDEX IF NOT EXISTS activity_unleased ON activity_tasks (id) WHERE lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS activity_lease ON activity_tasks (lease_expires_at)
    WHERE lease_owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS activity_instance ON activity_tasks (instance_id);
