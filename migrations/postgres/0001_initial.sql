-- DAG-level state that outlives the DAG files (pause flag).
CREATE TABLE dags (
    dag_id      TEXT PRIMARY KEY,
    is_paused   BIGINT NOT NULL DEFAULT 0,
    fileloc     TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE backfills (
    id              BIGSERIAL PRIMARY KEY,
    dag_id          TEXT NOT NULL,
    from_date       TEXT NOT NULL,
    to_date         TEXT NOT NULL,
    reprocess       TEXT NOT NULL,
    max_active_runs BIGINT NOT NULL,
    run_backwards   BIGINT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    completed_at    TEXT
);
CREATE INDEX backfills_dag ON backfills (dag_id, id);

CREATE TABLE dag_runs (
    id                  BIGSERIAL PRIMARY KEY,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    run_type            TEXT NOT NULL,
    logical_date        TEXT NOT NULL,
    ds                  TEXT NOT NULL,
    data_interval_start TEXT NOT NULL,
    data_interval_end   TEXT NOT NULL,
    state               TEXT NOT NULL,
    conf                TEXT NOT NULL DEFAULT '{}',
    backfill_id         BIGINT REFERENCES backfills (id),
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
    id            BIGSERIAL PRIMARY KEY,
    run_pk        BIGINT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT,
    try_number    BIGINT NOT NULL DEFAULT 0,
    max_tries     BIGINT NOT NULL,
    next_retry_at TEXT,
    started_at    TEXT,
    ended_at      TEXT,
    duration_ms   BIGINT,
    error         TEXT,
    updated_at    TEXT NOT NULL,
    UNIQUE (run_pk, task_id)
);
CREATE INDEX task_instances_state ON task_instances (state);

CREATE TABLE task_attempts (
    id               BIGSERIAL PRIMARY KEY,
    ti_pk            BIGINT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    run_pk           BIGINT NOT NULL,
    task_id          TEXT NOT NULL,
    try_number       BIGINT NOT NULL,
    state            TEXT NOT NULL,
    hostname         TEXT NOT NULL,
    pid              BIGINT NOT NULL,
    lease_expires_at TEXT,
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    duration_ms      BIGINT,
    error            TEXT,
    output           TEXT,
    log              TEXT NOT NULL DEFAULT '',
    UNIQUE (ti_pk, try_number)
);
CREATE INDEX task_attempts_run ON task_attempts (run_pk, task_id, try_number);

CREATE TABLE backfill_dates (
    backfill_id  BIGINT NOT NULL REFERENCES backfills (id) ON DELETE CASCADE,
    logical_date TEXT NOT NULL,
    ds           TEXT NOT NULL,
    run_pk       BIGINT,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    PRIMARY KEY (backfill_id, logical_date)
);

-- Every bronze ingest decision (accepted, skipped as duplicate, rejected, superseded).
CREATE TABLE ingestion_registry (
    id             BIGSERIAL PRIMARY KEY,
    layer          TEXT NOT NULL,
    course_id      TEXT,
    ingest_date    TEXT,
    filename       TEXT NOT NULL,
    sha256         TEXT,
    size_bytes     BIGINT,
    row_count      BIGINT,
    status         TEXT NOT NULL,
    reason         TEXT,
    landing_key    TEXT,
    quarantine_key TEXT,
    run_pk         BIGINT,
    task_id        TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX ingestion_registry_file ON ingestion_registry (course_id, ingest_date, filename);
CREATE INDEX ingestion_registry_sha ON ingestion_registry (sha256);

-- Alerts waiting for (or done with) the SMTP sender. dedup_key makes enqueueing idempotent.
CREATE TABLE alert_outbox (
    id              BIGSERIAL PRIMARY KEY,
    dedup_key       TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_pk          BIGINT,
    task_id         TEXT,
    try_number      BIGINT,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    tries           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (state, next_attempt_at);
