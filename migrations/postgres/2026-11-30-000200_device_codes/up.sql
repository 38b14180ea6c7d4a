-- RFC 8628 device authorization requests: codes stored only as SHA-256.
CREATE TABLE device_codes (
    id TEXT PRIMARY KEY NOT NULL,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scopes TEXT,
    status TEXT NOT NULL,
    interval_secs INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_polled_at TIMESTAMP,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    granted_scopes TEXT,
    decided_at TIMESTAMP
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
CREATE INDEX device_codes_user ON device_codes (user_id);
