-- Who may enter: a user's status, their last sign-in, usernames unique
-- without regard to case, and several provider identities per user (linking).
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP;
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_status ON users (status);

ALTER TABLE external_identities DROP CONSTRAINT external_identities_user_id_key;
CREATE INDEX external_identities_user ON external_identities (user_id);
