-- schema version 8: poison work. deliveries counts the times an activity task was handed to a
-- worker (leased by a claim, or leased at its creation) without its result coming back: a
-- task handed out more often than the runtime allows is failed instead of run again.
ALTER TABLE activity_tasks ADD COLUMN IF NOT EXISTS deliveries integer NOT NULL DEFAULT 0;
