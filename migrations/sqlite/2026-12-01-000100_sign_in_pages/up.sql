-- Fewer pages written per sign-in. Every index of a table is one more page
-- in each commit that inserts into it, so the two tables written at every
-- sign-in that only need one key are kept in that key's own b-tree
-- (WITHOUT ROWID): the redeemed states by their hash, and the audit events
-- by (at, id), which is also the order they are listed in. Their rows are
-- small, which is what WITHOUT ROWID suits.

CREATE TABLE used_oidc_states_new (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
) WITHOUT ROWID;
INSERT INTO used_oidc_states_new SELECT state_hash, expires_at FROM used_oidc_states;
DROP TABLE used_oidc_states;
ALTER TABLE used_oidc_states_new RENAME TO used_oidc_states;

CREATE TABLE audit_events_new (
    id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    username TEXT,
    actor TEXT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (at, id)
) WITHOUT ROWID;
INSERT INTO audit_events_new SELECT id, at, kind, outcome, username, actor, ip, user_agent, detail FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_username_at ON audit_events (username, at DESC, id DESC);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at DESC, id DESC);
