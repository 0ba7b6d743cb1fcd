-- schema version 5: activity heartbeats (call_activity(..., heartbeat_timeout=...)). A task
-- with heartbeat_s is leased for at most that long at a time, renewed by each heartbeat of
-- the activity, so a dead worker's task is taken again after it. heartbeat_details holds the
-- details of the last heartbeat (JSON text), handed to the attempt that takes it over.
ALTER TABLE activity_tasks ADD COLUMN heartbeat_s REAL;
ALTER TABLE activity_tasks ADD COLUMN heartbeat_details TEXT
