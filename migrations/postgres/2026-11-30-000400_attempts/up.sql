-- Guessing limits shared by every instance: one row per counted key
-- (a name and client address, or a client address), counting attempts in a
-- fixed window that starts at window_start (seconds since the epoch).
CREATE TABLE login_attempts (
    key TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE INDEX login_attempts_window ON login_attempts (window_start);
