-- schema version 6: indexes for the dashboard's list. Counting instances by workflow name and
-- status reads (name, status) alone, and a list filtered by them walks its rows newest first,
-- on a store of any size, and so does a list filtered by status alone.
CREATE INDEX IF NOT EXISTS instances_name_status ON instances (name, status, created_at DESC);
CREATE INDEX IF NOT EXISTS instances_status ON instances (status, created_at DESC);
