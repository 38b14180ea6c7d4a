-- How and where each browser session started, and when it was last refreshed.
ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'password';
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE sessions SET method = 'sso:' || provider_id WHERE provider_id IS NOT NULL;
UPDATE sessions SET last_seen_at = created_at;

-- Audit events: newest first, by user, by kind; detail is a JSON object.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    username TEXT,
    actor TEXT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_username_at ON audit_events (username, at DESC, id DESC);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at DESC, id DESC);
