-- tmctl serve: daemons that are alive, leases on runs, backfills owned by a daemon, and the
-- alert outbox's sender claims.

-- One row per `tmctl serve` process; `heartbeat_at` is renewed while it lives.
CREATE TABLE daemons (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    url          TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    stopped_at   TEXT
);

-- A run executing in some process is leased to its owner until this time (renewed by heartbeat);
-- an expired lease may be taken over by any daemon.
ALTER TABLE dag_runs ADD COLUMN lease_expires_at TEXT;
CREATE INDEX dag_runs_claim ON dag_runs (state, created_at);

-- A backfill submitted to the daemons (state `queued`) is driven by one of them at a time; its
-- run conf is kept so whichever daemon drives it creates the runs with it.
ALTER TABLE backfills ADD COLUMN owner TEXT;
ALTER TABLE backfills ADD COLUMN lease_expires_at TEXT;
ALTER TABLE backfills ADD COLUMN conf TEXT NOT NULL DEFAULT '{}';

-- The sender that claimed an alert, and until when (another sender may take it after that).
ALTER TABLE alert_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE alert_outbox ADD COLUMN claimed_until TEXT;
