-- Users with roles (viewer | operator | admin) and argon2id password hashes; per-user API tokens
-- (only the SHA-256 of a token is stored); the audit log of every mutating action; the idle
-- timeout of web sessions (last_seen_at) and the role a session was opened with.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash   TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    UNIQUE (username, name)
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

ALTER TABLE web_sessions ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer';
ALTER TABLE web_sessions ADD COLUMN last_seen_at TEXT;
CREATE INDEX web_sessions_username ON web_sessions (username);
