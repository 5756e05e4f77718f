-- How often a task instance was run again because the process running its try died (kill -9,
-- OOM, power loss) rather than because the task failed: such restarts do not count against
-- `retries` for kinds that are safe to repeat, and this counter bounds them (crash loops).
ALTER TABLE task_instances ADD COLUMN crash_restarts INTEGER NOT NULL DEFAULT 0;
