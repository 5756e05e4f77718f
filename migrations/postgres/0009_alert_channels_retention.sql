-- Alerts beyond e-mail, and state-DB retention (`tmctl db clean`, `[retention] keep_days`).

-- Where an outbox row goes: `email` (the SMTP sender; recipients are addresses) or `webhook`
-- (the webhook sender; recipients is the one URL, body the JSON payload).
ALTER TABLE alert_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
CREATE INDEX alert_outbox_channel_due ON alert_outbox (channel, state, next_attempt_at);
-- Retention asks "does this run still have a pending alert?" and deletes sent alerts by age.
CREATE INDEX alert_outbox_run ON alert_outbox (run_pk);
CREATE INDEX alert_outbox_sent ON alert_outbox (state, sent_at);
-- Retention finds finished runs by end time, and keeps the newest run of each DAG and run type.
CREATE INDEX dag_runs_ended ON dag_runs (state, ended_at);
CREATE INDEX dag_runs_type_recent ON dag_runs (dag_id, run_type, logical_date);

-- Periodic daemon jobs done once per period by whichever daemon claims them first (the daily
-- state-DB clean): who holds the job and until when, and when it was last done.
CREATE TABLE daemon_jobs (
    name             TEXT PRIMARY KEY,
    owner            TEXT,
    lease_expires_at TEXT,
    last_done_at     TEXT
);
