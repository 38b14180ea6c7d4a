#!/usr/bin/env bash
# Load benchmark of the request path, against a release build on 127.0.0.1
# only: cookie-authenticated GET /me against GET /healthz, on SQLite and on
# PostgreSQL, with the server's peak resident memory. Each backend gets a
# fresh database, a user, and a signed-in cookie; wrk runs for DURATION.
#
#   bench/load.sh                       # wrk -t2 -c64 -d10s, as in shared/BENCHMARKS.md
#   DURATION=5s bench/load.sh
#   BIN=/path/to/other/doorman bench/load.sh     (measure another build)
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/load.sh   (the default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is needed for the PostgreSQL run" >&2; exit 1; }

# BIN=path/to/doorman measures that build instead (e.g. an older one, for a comparison in one run).
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN="$PWD/target/release/doorman"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
PG_DB="doorman_bench_$$"
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wrk's summary: "<req/s> <p99>".
run_wrk() {
    local out
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")"
    local rps p99
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    echo "$rps $p99"
}

results=()
bench_backend() {
    local name="$1" db_url="$2" port
    port="$(free_port)"
    cat >"$WORK/$name.toml" <<CONF
[server]
bind = "127.0.0.1:${port}"
[database]
url = "${db_url}"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
CONF
    export DOORMAN_CONFIG="$WORK/$name.toml" RUST_LOG=warn
    echo 'bench password' | "$BIN" create-user bench >/dev/null
    "$BIN" serve & SERVER_PID=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:${port}/healthz" >/dev/null && break; sleep 0.1; done
    local cookies="$WORK/$name.cookies"
    curl -fs -c "$cookies" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench password"}' "http://127.0.0.1:${port}/me/login" >/dev/null
    local access
    access="$(awk '$6 == "doorman_access" {print $7}' "$cookies")"
    curl -fs -H "Cookie: doorman_access=${access}" "http://127.0.0.1:${port}/me" >/dev/null

    read -r h_rps h_p99 < <(run_wrk "http://127.0.0.1:${port}/healthz")
    read -r m_rps m_p99 < <(run_wrk -H "Cookie: doorman_access=${access}" "http://127.0.0.1:${port}/me")
    local peak_kb
    peak_kb="$(awk '/VmHWM/ {print $2}' "/proc/${SERVER_PID}/status")"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local ratio
    ratio="$(python3 -c "print(f'{$m_rps / $h_rps:.2f}')")"
    results+=("| $name | $h_rps | $h_p99 | $m_rps | $m_p99 | $ratio | $((peak_kb / 1024)) MB |")
}

bench_backend sqlite "sqlite://${WORK}/doorman.db"
psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
bench_backend postgres "${PG_ADMIN_URL%/*}/${PG_DB}"

echo
echo "wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}, release build, $(nproc) cores"
echo
echo "| backend | /healthz req/s | p99 | /me (cookie) req/s | p99 | /me ÷ /healthz | peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
