-- schema version 7: retention, schedules, store-wide leases and queue limits.
-- instances_finished finds finished instances by the time they finished (updated_at), for
-- purges by age. It is partial: a running instance's turns never write it.
CREATE INDEX IF NOT EXISTS instances_finished ON instances (updated_at)
    WHERE status IN ('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED');
-- small named leases for work one worker of a store does at a time (the retention sweep)
CREATE TABLE IF NOT EXISTS leases (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL
);
-- durable schedules (see treadle/store/schedules.py): spec is JSON, next_slot the next time
-- to fire (NULL: no slot left), last_instance_id the instance its last slot started.
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id      text PRIMARY KEY,
    workflow         text NOT NULL,
    spec             text NOT NULL,
    input            text,
    app_id           text NOT NULL DEFAULT '',
    paused           boolean NOT NULL DEFAULT false,
    next_slot        timestamptz,
    buffered_slot    timestamptz,
    last_instance_id text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_slot) WHERE NOT paused;
-- one row per slot that fired (or was skipped): the unique key that makes a slot fire once
CREATE TABLE IF NOT EXISTS schedule_runs (
    schedule_id text NOT NULL,
    slot        timestamptz NOT NULL,
    instance_id text,
    fired_at    timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, slot)
);
-- the claims of activity tasks of a queue with a rate limit (see treadle/store/queues.py),
-- kept for the queue's period
CREATE TABLE IF NOT EXISTS queue_starts (
    queue      text NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_starts_by ON queue_starts (queue, started_at);
-- the instances of a workflow on a queue admitted to run (see treadle/store/queues.py): a
-- slot is live while its instance runs, and ends when the instance finishes
CREATE TABLE IF NOT EXISTS queue_slots (
    instance_id text PRIMARY KEY,
    queue       text NOT NULL,
    admitted_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_slots_by ON queue_slots (queue);
