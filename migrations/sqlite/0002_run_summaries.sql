-- One JSON summary per lakehouse task try (rows in/out, quarantined by reason, snapshot ids,
-- data-test results), also written to the observability bucket.
CREATE TABLE run_summaries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_pk       INTEGER NOT NULL,
    dag_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    try_number   INTEGER NOT NULL,
    ds           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    object_key   TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (run_pk, task_id, try_number)
);
CREATE INDEX run_summaries_recent ON run_summaries (dag_id, ds);
