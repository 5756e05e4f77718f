-- DAG-level state that outlives the DAG files (pause flag).
CREATE TABLE dags (
    dag_id      TEXT PRIMARY KEY,
    is_paused   INTEGER NOT NULL DEFAULT 0,
    fileloc     TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE backfills (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id          TEXT NOT NULL,
    from_date       TEXT NOT NULL,
    to_date         TEXT NOT NULL,
    reprocess       TEXT NOT NULL,
    max_active_runs INTEGER NOT NULL,
    run_backwards   INTEGER NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    completed_at    TEXT
);
CREATE INDEX backfills_dag ON backfills (dag_id, id);

CREATE TABLE dag_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    run_type            TEXT NOT NULL,
    logical_date        TEXT NOT NULL,
    ds                  TEXT NOT NULL,
    data_interval_start TEXT NOT NULL,
    data_interval_end   TEXT NOT NULL,
    state               TEXT NOT NULL,
    conf                TEXT NOT NULL DEFAULT '{}',
    backfill_id         INTEGER REFERENCES backfills (id),
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    ended_at            TEXT,
    owner               TEXT,
    heartbeat_at        TEXT,
    UNIQUE (dag_id, logical_date),
    UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_runs_recent ON dag_runs (dag_id, logical_date DESC);
CREATE INDEX dag_runs_state ON dag_runs (state);

CREATE TABLE task_instances (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_pk        INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT,
    try_number    INTEGER NOT NULL DEFAULT 0,
    max_tries     INTEGER NOT NULL,
    next_retry_at TEXT,
    started_at    TEXT,
    ended_at      TEXT,
    duration_ms   INTEGER,
    error         TEXT,
    updated_at    TEXT NOT NULL,
    UNIQUE (run_pk, task_id)
);
CREATE INDEX task_instances_state ON task_instances (state);

CREATE TABLE task_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ti_pk            INTEGER NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    run_pk           INTEGER NOT NULL,
    task_id          TEXT NOT NULL,
    try_number       INTEGER NOT NULL,
    state            TEXT NOT NULL,
    hostname         TEXT NOT NULL,
    pid              INTEGER NOT NULL,
    lease_expires_at TEXT,
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    duration_ms      INTEGER,
    error            TEXT,
    output           TEXT,
    log              TEXT NOT NULL DEFAULT '',
    UNIQUE (ti_pk, try_number)
);
CREATE INDEX task_attempts_run ON task_attempts (run_pk, task_id, try_number);

CREATE TABLE backfill_dates (
    backfill_id  INTEGER NOT NULL REFERENCES backfills (id) ON DELETE CASCADE,
    logical_date TEXT NOT NULL,
    ds           TEXT NOT NULL,
    run_pk       INTEGER,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    PRIMARY KEY (backfill_id, logical_date)
);

-- Every bronze ingest decision (accepted, skipped as duplicate, rejected, superseded).
CREATE TABLE ingestion_registry (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    layer          TEXT NOT NULL,
    course_id      TEXT,
    ingest_date    TEXT,
    filename       TEXT NOT NULL,
    sha256         TEXT,
    size_bytes     INTEGER,
    row_count      INTEGER,
    status         TEXT NOT NULL,
    reason         TEXT,
    landing_key    TEXT,
    quarantine_key TEXT,
    run_pk         INTEGER,
    task_id        TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX ingestion_registry_file ON ingestion_registry (course_id, ingest_date, filename);
CREATE INDEX ingestion_registry_sha ON ingestion_registry (sha256);

-- Alerts waiting for (or done with) the SMTP sender. dedup_key makes enqueueing idempotent.
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_pk          INTEGER,
    task_id         TEXT,
    try_number      INTEGER,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (state, next_attempt_at);
