CREATE TABLE used_oidc_states_old (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO used_oidc_states_old SELECT state_hash, expires_at FROM used_oidc_states;
DROP TABLE used_oidc_states;
ALTER TABLE used_oidc_states_old RENAME TO used_oidc_states;

CREATE TABLE audit_events_old (
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
INSERT INTO audit_events_old SELECT id, at, kind, outcome, username, actor, ip, user_agent, detail FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_old RENAME TO audit_events;
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_username_at ON audit_events (username, at DESC, id DESC);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at DESC, id DESC);
