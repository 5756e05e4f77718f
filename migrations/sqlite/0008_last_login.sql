-- When each user last logged in to the web UI (shown on the admin page and by `tmctl users list`).
ALTER TABLE users ADD COLUMN last_login_at TEXT;
