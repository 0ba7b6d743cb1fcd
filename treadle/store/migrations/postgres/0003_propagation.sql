-- schema version 3: the history a workflow propagates to an activity it calls
-- (call_activity(..., propagation=...)), as JSON text, or NULL for none.
ALTER TABLE activity_tasks ADD COLUMN IF NOT EXISTS propagated text;
