#!/usr/bin/env bash
# Load benchmark of the request path, against release builds on 127.0.0.1
# only: GET /healthz, cookie-authenticated GET /me and bearer GET /me, on
# SQLite and on PostgreSQL (where the revocation listener runs), with the
# server's peak resident memory. Each variant gets a fresh database, a user,
# a signed-in cookie and an API token; wrk runs for DURATION each.
#
# Variants, measured in the same run:
#   baseline   BASELINE_BIN, when given (e.g. a release build of an earlier commit), metrics off
#   metrics off   this tree's build
#   metrics on    this tree's build with [metrics] bind set (a scrape is checked)
#
#   bench/load.sh                       # wrk -t2 -c64 -d10s, as in shared/BENCHMARKS.md
#   DURATION=5s bench/load.sh
#   BIN=/path/to/other/doorman bench/load.sh            (measure another build instead of this tree's)
#   BASELINE_BIN=/path/to/old/doorman bench/load.sh     (also measure an earlier build, metrics off)
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/load.sh   (the default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
BASELINE_BIN="${BASELINE_BIN:-}"

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is needed for the PostgreSQL run" >&2; exit 1; }

# BIN=path/to/doorman measures that build instead of this tree's.
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/doorman"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
PG_DBS=()
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    for db in "${PG_DBS[@]}"; do psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
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
# bench_variant LABEL BINARY BACKEND METRICS(on|off)
bench_variant() {
    local label="$1" bin="$2" backend="$3" metrics="$4" port db_url metrics_conf="" metrics_port=""
    port="$(free_port)"
    case "$backend" in
        sqlite) db_url="sqlite://${WORK}/${label// /_}.db" ;;
        postgres)
            local db="doorman_bench_${$}_${#PG_DBS[@]}"
            psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
            PG_DBS+=("$db")
            db_url="${PG_ADMIN_URL%/*}/${db}" ;;
    esac
    if [ "$metrics" = on ]; then
        metrics_port="$(free_port)"
        metrics_conf=$'[metrics]\nbind = "127.0.0.1:'"${metrics_port}"'"'
    fi
    local conf="$WORK/${backend}-${label// /_}.toml"
    cat >"$conf" <<CONF
[server]
bind = "127.0.0.1:${port}"
[database]
url = "${db_url}"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
${metrics_conf}
CONF
    export DOORMAN_CONFIG="$conf" RUST_LOG=warn
    echo 'bench password' | "$bin" create-user bench >/dev/null
    "$bin" serve & SERVER_PID=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:${port}/healthz" >/dev/null && break; sleep 0.1; done
    local cookies="$WORK/cookies"
    curl -fs -c "$cookies" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench password"}' "http://127.0.0.1:${port}/me/login" >/dev/null
    local access csrf session token
    access="$(awk '$6 == "doorman_access" {print $7}' "$cookies")"
    session="$(awk '$6 == "doorman_session" {print $7}' "$cookies")"
    csrf="$(awk '$6 == "csrftoken" {print $7}' "$cookies")"
    token="$(curl -fs -X POST -H "Cookie: doorman_access=${access}; doorman_session=${session}; csrftoken=${csrf}" \
        -H "X-CSRFToken: ${csrf}" "http://127.0.0.1:${port}/api-token-tap" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    curl -fs -H "Cookie: doorman_access=${access}" "http://127.0.0.1:${port}/me" >/dev/null
    curl -fs -H "Authorization: Bearer ${token}" "http://127.0.0.1:${port}/me" >/dev/null

    read -r h_rps h_p99 < <(run_wrk "http://127.0.0.1:${port}/healthz")
    read -r c_rps c_p99 < <(run_wrk -H "Cookie: doorman_access=${access}" "http://127.0.0.1:${port}/me")
    read -r b_rps b_p99 < <(run_wrk -H "Authorization: Bearer ${token}" "http://127.0.0.1:${port}/me")
    if [ -n "$metrics_port" ]; then
        curl -fs "http://127.0.0.1:${metrics_port}/metrics" | grep -q 'doorman_http_requests_total{' \
            || { echo "the metrics scrape is missing request counts" >&2; exit 1; }
    fi
    local peak_kb
    peak_kb="$(awk '/VmHWM/ {print $2}' "/proc/${SERVER_PID}/status")"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local ratios
    ratios="$(python3 -c "print(f'{$c_rps / $h_rps:.2f} | {$b_rps / $h_rps:.2f}')")"
    results+=("| $backend | $label | $h_rps | $h_p99 | $c_rps | $c_p99 | $b_rps | $b_p99 | $ratios | $((peak_kb / 1024)) MB |")
}

for backend in sqlite postgres; do
    if [ -n "$BASELINE_BIN" ]; then bench_variant "baseline" "$BASELINE_BIN" "$backend" off; fi
    bench_variant "metrics off" "$BIN" "$backend" off
    bench_variant "metrics on" "$BIN" "$backend" on
done

echo
echo "wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}, release builds, $(nproc) cores"
echo
echo "| backend | build | /healthz req/s | p99 | /me cookie req/s | p99 | /me bearer req/s | p99 | cookie ÷ healthz | bearer ÷ healthz | peak RSS |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
