#!/usr/bin/env bash
# Benchmark of the token paths, against a release build on 127.0.0.1 only:
#   1. GET /healthz                      (what the machine allows)
#   2. GET /me with a bearer token       (aim: at least half of 1)
#   3. POST /token with a bearer token   (service JWTs issued per second)
#   4. POST /token, client credentials   (same, for a machine client)
# It sets up its own data in a temporary folder (SQLite, a user, a token from
# /api-token-tap, a client), runs each for DURATION with wrk, prints the
# figures and their ratios to /healthz, and stops the server it started.
#
#   bench/tokens.sh            # wrk -t2 -c64 -d10s, as in shared/BENCHMARKS.md
#   DURATION=5s CONNECTIONS=32 bench/tokens.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
PORT="${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
URL="http://127.0.0.1:${PORT}"

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

cargo build --release --quiet
BIN="$PWD/target/release/doorman"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/doorman.toml" <<EOF
[server]
bind = "127.0.0.1:${PORT}"
[database]
url = "sqlite://${WORK}/doorman.db"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
EOF
export DOORMAN_CONFIG="$WORK/doorman.toml"
export RUST_LOG=warn

echo 'bench password' | "$BIN" create-user bench >/dev/null
"$BIN" create-client bench-client --scopes queue:submit --claims '{"queues": {"gpu": 10}}' >"$WORK/client.txt"
CLIENT_ID="$(sed -n 's/^client_id: //p' "$WORK/client.txt")"
CLIENT_SECRET="$(sed -n 's/^client_secret: //p' "$WORK/client.txt")"

"$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fs "$URL/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$URL/healthz" >/dev/null || { echo "doorman did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

# A browser session, then a bearer token from /api-token-tap.
JAR="$WORK/cookies.txt"
curl -fs -c "$JAR" -H 'content-type: application/json' \
    -d '{"username": "bench", "password": "bench password"}' "$URL/me/login" >/dev/null
TOKEN="$(curl -fs -b "$JAR" "$URL/api-token-tap" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
curl -fs -H "Authorization: Bearer $TOKEN" "$URL/me" >/dev/null
curl -fs -X POST -H "Authorization: Bearer $TOKEN" "$URL/token" >/dev/null
BASIC="$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)"
curl -fs -H "Authorization: Basic $BASIC" -d grant_type=client_credentials "$URL/token" >/dev/null

cat >"$WORK/post_token.lua" <<'EOF'
-- POST /token; the Authorization header comes from the command line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = os.getenv("TOKEN_BODY") or ""
EOF

# Runs wrk and prints "req/s p99"; fails when any response was not 2xx.
run() {
    local out
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")"
    if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx responses:" >&2; echo "$out" >&2; exit 1; fi
    local rps p99
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    echo "$rps $p99"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION against doorman $("$BIN" --version | awk '{print $2}') (release) on 127.0.0.1, SQLite"
read -r HEALTH HEALTH_P99 < <(run "$URL/healthz")
read -r ME ME_P99 < <(run -H "Authorization: Bearer $TOKEN" "$URL/me")
read -r JWT JWT_P99 < <(run -H "Authorization: Bearer $TOKEN" -s "$WORK/post_token.lua" "$URL/token")
read -r CC CC_P99 < <(TOKEN_BODY="grant_type=client_credentials" run -H "Authorization: Basic $BASIC" -s "$WORK/post_token.lua" "$URL/token")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
printf '%-44s %10s %9s %8s\n' "route" "req/s" "p99" "/healthz"
printf '%-44s %10.0f %9s %8s\n' "GET /healthz" "$HEALTH" "$HEALTH_P99" "1.00"
printf '%-44s %10.0f %9s %8s\n' "GET /me (bearer token)" "$ME" "$ME_P99" "$(ratio "$ME" "$HEALTH")"
printf '%-44s %10.0f %9s %8s\n' "POST /token (bearer token -> EdDSA JWT)" "$JWT" "$JWT_P99" "$(ratio "$JWT" "$HEALTH")"
printf '%-44s %10.0f %9s %8s\n' "POST /token (client credentials -> JWT)" "$CC" "$CC_P99" "$(ratio "$CC" "$HEALTH")"
