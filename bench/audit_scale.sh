#!/usr/bin/env bash
# Does a full audit table slow doorman down? Against a release build on
# 127.0.0.1 and a fresh PostgreSQL database: times a password sign-in
# (POST /me/login, which writes its audit event in the sign-in transaction)
# and the first page of GET /audit-events (plain and filtered by username),
# first on a small audit table (a full page of each listing), then after
# filling it with 10 million more
# events (generate_series), with EXPLAIN ANALYZE of the listing queries.
#
#   bench/audit_scale.sh
#   EVENTS=1000000 ROUNDS=50 bench/audit_scale.sh
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/audit_scale.sh   (the default)
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${EVENTS:-10000000}"
ROUNDS="${ROUNDS:-100}"
LOGINS="${LOGINS:-30}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

for tool in curl psql python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

# 10 million events take about 3 GB with their indexes, plus the WAL written
# while filling: refuse to start without room (a full disk crashes PostgreSQL).
MIN_FREE_GB="${MIN_FREE_GB:-$(( EVENTS / 1000000 + 4 ))}"
DATA_DIR="$(psql -qtA "$PG_ADMIN_URL" -c 'SHOW data_directory' 2>/dev/null || echo /)"
FREE_GB="$(( $(df -Pk "$DATA_DIR" | awk 'NR == 2 {print $4}') / 1048576 ))"
if [ "$FREE_GB" -lt "$MIN_FREE_GB" ]; then
    echo "only ${FREE_GB} GB free under $DATA_DIR; $EVENTS events need about ${MIN_FREE_GB} GB (set EVENTS lower)" >&2
    exit 1
fi

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/doorman"
WORK="$(mktemp -d)"
SERVER_PID=""
PG_DB="doorman_audit_bench_$$"
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
DB_URL="$(python3 -c "import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path='/$PG_DB').geturl())" "$PG_ADMIN_URL")"
cat >"$WORK/doorman.toml" <<CONF
[server]
bind = "127.0.0.1:${PORT}"
[database]
url = "${DB_URL}"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
CONF
export DOORMAN_CONFIG="$WORK/doorman.toml" RUST_LOG=warn
echo 'bench password' | "$BIN" create-user bench --admin >/dev/null
"$BIN" serve & SERVER_PID=$!
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

JAR="$WORK/cookies"
curl -fs -c "$JAR" -H 'content-type: application/json' -d '{"username":"bench","password":"bench password"}' "$BASE/me/login" >/dev/null
CSRF="$(awk '$6 == "csrftoken" {print $7}' "$JAR")"
TOKEN="$(curl -fs -b "$JAR" -H "X-CSRFToken: $CSRF" -X POST "$BASE/api-token-tap" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

# "median p90" in milliseconds of N timings (seconds, one a line).
summary() {
    python3 -c '
import statistics, sys
t = sorted(float(x) * 1000 for x in sys.stdin.read().split())
print(f"median {statistics.median(t):.2f} ms, p90 {t[int(len(t) * 0.9) - 1]:.2f} ms (n={len(t)})")'
}

time_logins() {
    for _ in $(seq "$LOGINS"); do
        curl -fs -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
            -d '{"username":"bench","password":"bench password"}' "$BASE/me/login"
    done | summary
}

time_listing() {
    local query="$1"
    for _ in $(seq "$ROUNDS"); do
        curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$BASE/audit-events$query"
    done | summary
}

measure() {
    local label="$1"
    local count
    count="$(psql -qtA "$DB_URL" -c 'SELECT count(*) FROM audit_events')"
    echo "== $label: $count audit events"
    # Warm up the connection pool and caches.
    for _ in $(seq 10); do curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/audit-events"; done
    echo "POST /me/login (password sign-in):          $(time_logins)"
    echo "GET /audit-events (first page, 100):        $(time_listing '')"
    echo "GET /audit-events?username=user42:          $(time_listing '?username=user42')"
    echo "GET /audit-events?kind=sign_in&limit=1000:  $(time_listing '?kind=sign_in&limit=1000')"
}

explain() {
    echo "-- EXPLAIN ANALYZE: first page"
    psql -qtA "$DB_URL" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM audit_events ORDER BY at DESC, id DESC LIMIT 101"
    echo "-- EXPLAIN ANALYZE: first page for one user"
    psql -qtA "$DB_URL" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM audit_events WHERE username = 'user42' ORDER BY at DESC, id DESC LIMIT 101"
    echo "-- EXPLAIN ANALYZE: a later page (cursor)"
    psql -qtA "$DB_URL" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM audit_events WHERE at <= now() - interval '30 days' AND (at < now() - interval '30 days' OR id < 'm') ORDER BY at DESC, id DESC LIMIT 101"
    echo "-- EXPLAIN ANALYZE: one insert (the sign-in's event)"
    psql -qtA "$DB_URL" -c "BEGIN; EXPLAIN (ANALYZE) INSERT INTO audit_events VALUES (gen_random_uuid()::text, now(), 'sign_in', 'success', 'bench', 'bench', '127.0.0.1', 'curl', '{}'); ROLLBACK;"
}

# The small table holds a full page of each listing (2,200 events: 220 of
# user42, 1,100 sign-ins), so that both sides answer the same number of rows.
psql -q "$DB_URL" <<SQL
INSERT INTO audit_events (id, at, kind, outcome, username, actor, ip, user_agent, detail)
SELECT md5('small' || i)::uuid::text,
       (now() AT TIME ZONE 'UTC') - make_interval(secs => i) - interval '1 minute',
       (ARRAY['sign_in','sign_out'])[1 + i % 2],
       'success',
       'user' || (40 + i % 10),
       'user' || (40 + i % 10),
       '10.0.0.1',
       'Mozilla/5.0 (X11; Linux x86_64) bench/small',
       '{"method":"password"}'
FROM generate_series(1, 2200) AS i;
ANALYZE audit_events;
SQL
measure "small"
explain

echo "== filling $EVENTS events (spread over the last 80 days, inside the 90-day retention)"
started=$(date +%s)
psql -q "$DB_URL" <<SQL
DROP INDEX audit_events_at;
DROP INDEX audit_events_username_at;
DROP INDEX audit_events_kind_at;
SQL
# In batches of a million rows, each its own transaction, so checkpoints can recycle the WAL.
for from in $(seq 1 1000000 "$EVENTS"); do
    to=$(( from + 999999 < EVENTS ? from + 999999 : EVENTS ))
    psql -q "$DB_URL" <<SQL
INSERT INTO audit_events (id, at, kind, outcome, username, actor, ip, user_agent, detail)
SELECT md5(i::text)::uuid::text,
       (now() AT TIME ZONE 'UTC') - make_interval(secs => (i::double precision * 80 * 86400 / $EVENTS)) - interval '1 minute',
       (ARRAY['sign_in','sign_out','session_ended','user_signed_out','identity_linked','user_created','user_changed',
              'user_disabled','user_deleted','user_approved','password_changed','api_token_created','api_token_revoked',
              'device_approved','device_denied','client_credentials_failed','provider_refresh','backchannel_logout',
              'key_rotated'])[1 + i % 19],
       CASE WHEN i % 7 = 0 THEN 'failure' ELSE 'success' END,
       'user' || (i % 10000),
       'user' || (i % 10000),
       '10.' || (i % 250) || '.' || (i / 250 % 250) || '.1',
       'Mozilla/5.0 (X11; Linux x86_64) bench/' || (i % 50),
       '{"method":"password"}'
FROM generate_series($from, $to) AS i;
SQL
done
psql -q "$DB_URL" <<SQL
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_username_at ON audit_events (username, at DESC, id DESC);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at DESC, id DESC);
ANALYZE audit_events;
SQL
echo "filled in $(( $(date +%s) - started ))s; table with indexes: $(psql -qtA "$DB_URL" -c "SELECT pg_size_pretty(pg_total_relation_size('audit_events'))")"

measure "full"
explain
