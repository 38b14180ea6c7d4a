#!/usr/bin/env bash
# Revocation delay across two instances: two release-build doorman processes
# on one fresh PostgreSQL database, with auth.cache_ttl = 1h so that only the
# LISTEN/NOTIFY channel can make instance B refuse what instance A revoked.
# For each of COUNT rounds: B caches a credential as valid, A revokes it, and
# B is asked again and again (one keep-alive connection) until it answers
# 401; the delay runs from A's answer to B's first 401. Token revocations
# (DELETE /api-tokens/{id}) and logouts (POST /me/logout) are measured apart.
#
#   bench/revocation.sh                 # COUNT=200
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/revocation.sh   (the default)
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT="${COUNT:-200}"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v psql >/dev/null || { echo "psql is needed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/doorman"
WORK="$(mktemp -d)"
PIDS=()
PG_DB="doorman_bench_revocation_$$"
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
DB_URL="${PG_ADMIN_URL%/*}/${PG_DB}"
ports=()
for name in a b; do
    port="$(free_port)"
    ports+=("$port")
    cat >"$WORK/$name.toml" <<CONF
[server]
bind = "127.0.0.1:${port}"
workers = 2
[database]
url = "${DB_URL}"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
cache_ttl = "1h"
CONF
done
export RUST_LOG=warn
echo 'bench password' | DOORMAN_CONFIG="$WORK/a.toml" "$BIN" create-user bench >/dev/null
for name in a b; do
    DOORMAN_CONFIG="$WORK/$name.toml" "$BIN" serve & PIDS+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:${port}/healthz" >/dev/null && break; sleep 0.1; done
done

python3 - "${ports[0]}" "${ports[1]}" "$COUNT" <<'PY'
import http.client, json, statistics, sys, time

port_a, port_b, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
a = http.client.HTTPConnection("127.0.0.1", port_a)
b = http.client.HTTPConnection("127.0.0.1", port_b)

def call(conn, method, path, body=None, headers=None):
    headers = dict(headers or {})
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("Set-Cookie", ""), data

def login():
    status, _, _ = None, None, None
    a.request("POST", "/me/login", body=json.dumps({"username": "bench", "password": "bench password"}),
              headers={"Content-Type": "application/json"})
    r = a.getresponse(); r.read()
    assert r.status == 200, r.status
    cookies = {}
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            name, _, rest = v.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    return cookies

def cookie_header(c):
    return "; ".join(f"{k}={v}" for k, v in c.items())

def wait_refused(headers):
    start = time.perf_counter()
    while True:
        status, _, _ = call(b, "GET", "/me", headers=headers)
        if status == 401:
            return time.perf_counter() - start
        if time.perf_counter() - start > 30:
            raise SystemExit("B never refused the revoked credential")

session = login()
auth = {"Cookie": cookie_header(session), "X-CSRFToken": session["csrftoken"]}
token_delays, logout_delays = [], []
for _ in range(count):
    status, _, body = call(a, "POST", "/api-token-tap", body={}, headers=auth)
    assert status == 200, status
    minted = json.loads(body)
    bearer = {"Authorization": "Bearer " + minted["token"]}
    assert call(b, "GET", "/me", headers=bearer)[0] == 200
    assert call(a, "DELETE", "/api-tokens/" + minted["id"], headers=auth)[0] == 204
    token_delays.append(wait_refused(bearer))
for _ in range(count):
    c = login()
    headers = {"Cookie": cookie_header(c), "X-CSRFToken": c["csrftoken"]}
    access = {"Cookie": "doorman_access=" + c["doorman_access"]}
    assert call(b, "GET", "/me", headers=access)[0] == 200
    assert call(a, "POST", "/me/logout", headers=headers)[0] == 200
    logout_delays.append(wait_refused(access))

def row(name, d):
    d = sorted(d)
    p99 = d[min(len(d) - 1, int(round(0.99 * len(d))) - 1)]
    return f"| {name} | {len(d)} | {statistics.median(d) * 1000:.2f} ms | {p99 * 1000:.2f} ms | {d[-1] * 1000:.2f} ms |"

print()
print("two release-build instances, one PostgreSQL database, auth.cache_ttl = 1h")
print()
print("| revocation on A, refused on B | count | median | p99 | max |")
print("| --- | ---: | ---: | ---: | ---: |")
print(row("API token (DELETE /api-tokens/{id})", token_delays))
print(row("browser session (POST /me/logout)", logout_delays))
PY
