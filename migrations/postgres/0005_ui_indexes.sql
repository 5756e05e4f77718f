-- Indexes for the web UI's pages (keyset pagination over a long history).
-- The registry page filters by status or course and pages by id.
CREATE INDEX ingestion_registry_status ON ingestion_registry (status, id);
CREATE INDEX ingestion_registry_course ON ingestion_registry (course_id, id);
-- A backfill's runs.
CREATE INDEX dag_runs_backfill ON dag_runs (backfill_id);
-- The tries of a run in start order (gantt).
CREATE INDEX task_attempts_run_start ON task_attempts (run_pk, started_at);
