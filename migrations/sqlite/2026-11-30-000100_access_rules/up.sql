-- Who may enter: a user's status, their last sign-in, usernames unique
-- without regard to case, and several provider identities per user (linking).
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP;
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_status ON users (status);

-- SQLite cannot drop a column's UNIQUE constraint: the table is rebuilt
-- (nothing references it, so foreign keys are not in the way).
CREATE TABLE external_identities_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    valid_until TIMESTAMP NOT NULL,
    refresh_token_enc TEXT,
    refresh_state TEXT NOT NULL DEFAULT 'none',
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    next_refresh_at TIMESTAMP,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (issuer, subject)
);
INSERT INTO external_identities_new SELECT id, user_id, provider_id, issuer, subject, valid_until, refresh_token_enc,
    refresh_state, refresh_failures, next_refresh_at, lease_until, created_at, updated_at FROM external_identities;
DROP TABLE external_identities;
ALTER TABLE external_identities_new RENAME TO external_identities;
CREATE INDEX external_identities_next_refresh ON external_identities (next_refresh_at);
CREATE INDEX external_identities_user ON external_identities (user_id);
