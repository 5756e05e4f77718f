-- Web UI logins. The cookie holds a random session id; only its SHA-256 is stored, with the
-- session's CSRF token for the forms it renders.
CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
