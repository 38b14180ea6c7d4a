#!/usr/bin/env bash
# Hostile-load benchmark, on 127.0.0.1 only, bounded in time (DURATION per
# run) and so in count: a legitimate client loads cookie GET /me with wrk,
# first alone, then while three attackers run at once:
#   - 150 concurrent password sign-ins with random names (POST /me/login);
#   - a spray of random `dmn_` bearer tokens (GET /me);
#   - compressed request bodies (61 KB of gzip that would inflate to 63 MB)
#     on /me/login and /oidc/backchannel-logout.
# Reports the legitimate req/s and p99 of both runs and doorman's peak
# resident memory (VmHWM) over the attacked run.
#
#   bench/hostile.sh                    # DURATION=10s, SQLite, release build
#   DURATION=5s bench/hostile.sh
#   PROFILE=dev bench/hostile.sh        # the debug build (dependencies optimised), no release build needed
#   FAILURE_DELAY=0s bench/hostile.sh   # failed guesses answered at once (server.failure_delay)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

PROFILE="${PROFILE:-release}"
if [ "$PROFILE" = release ]; then
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/doorman"
else
    cargo build --quiet
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/doorman"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    for pid in ${a1:-} ${a2:-} ${a3:-}; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:${port}"
cat >"$WORK/doorman.toml" <<CONF
[server]
bind = "127.0.0.1:${port}"
failure_delay = "${FAILURE_DELAY:-1s}"
[database]
url = "sqlite://${WORK}/doorman.db"
[auth]
secret_key = "bench-secret-key-0123456789abcdef-0123456789"
CONF
export DOORMAN_CONFIG="$WORK/doorman.toml" RUST_LOG=error
echo 'bench password' | "$BIN" create-user bench >/dev/null
"$BIN" serve & SERVER_PID=$!
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
curl -fs -c "$WORK/cookies" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench password"}' "$BASE/me/login" >/dev/null
ACCESS="$(awk '$6 == "doorman_access" {print $7}' "$WORK/cookies")"
curl -fs -H "Cookie: doorman_access=${ACCESS}" "$BASE/me" >/dev/null

# The attackers' wrk scripts.
python3 - "$WORK/bomb.gz" <<'PY'
import gzip, sys
with open(sys.argv[1], "wb") as f:
    f.write(gzip.compress(b"\0" * (63 * 1024 * 1024), 9))
PY
cat >"$WORK/signins.lua" <<'LUA'
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local name = string.format("x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return wrk.format(nil, "/me/login", nil, '{"username":"' .. name .. '","password":"guess-' .. name .. '"}')
end
LUA
cat >"$WORK/tokens.lua" <<'LUA'
math.randomseed(os.time() + 1)
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
request = function()
  local t = {}
  for i = 1, 43 do local n = math.random(1, #chars); t[i] = chars:sub(n, n) end
  return wrk.format("GET", "/me", { ["Authorization"] = "Bearer dmn_" .. table.concat(t) })
end
LUA
cat >"$WORK/bombs.lua" <<LUA
local f = io.open("$WORK/bomb.gz", "rb"); local bomb = f:read("*a"); f:close()
local paths = { "/me/login", "/oidc/backchannel-logout" }
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", paths[i % 2 + 1], { ["Content-Encoding"] = "gzip", ["Content-Type"] = "application/json" }, bomb)
end
LUA

# "<req/s> <p99> <non-2xx>" of the legitimate client.
legit() {
    local out
    out="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: doorman_access=${ACCESS}" "$BASE/me")"
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out") $(awk '/Non-2xx/ {print $5}' <<<"$out")"
}
attack_summary() { awk '/requests in/ {r=$1} /Non-2xx/ {n=$5} END {printf "%s requests, %s non-2xx", r, n+0}' "$1"; }

read -r base_rps base_p99 _ < <(legit)
base_hwm="$(awk '/VmHWM/ {print $2}' "/proc/${SERVER_PID}/status")"

# Attacked: the three attackers for the same DURATION (plus a second to start).
wrk -t1 -c150 -d"$DURATION" -s "$WORK/signins.lua" "$BASE" >"$WORK/a1" 2>&1 & a1=$!
wrk -t1 -c16 -d"$DURATION" -s "$WORK/tokens.lua" "$BASE" >"$WORK/a2" 2>&1 & a2=$!
wrk -t1 -c16 -d"$DURATION" -s "$WORK/bombs.lua" "$BASE" >"$WORK/a3" 2>&1 & a3=$!
sleep 1
read -r hot_rps hot_p99 hot_errors < <(legit)
wait "$a1" "$a2" "$a3" 2>/dev/null || true
peak_kb="$(awk '/VmHWM/ {print $2}' "/proc/${SERVER_PID}/status")"

echo
echo "wrk -t1 -c${CONNECTIONS} -d${DURATION} on cookie GET /me, ${PROFILE} build, SQLite, $(nproc) cores, failure_delay ${FAILURE_DELAY:-1s}"
echo
echo "| run | /me req/s | p99 | peak RSS (VmHWM) |"
echo "| --- | ---: | ---: | ---: |"
echo "| alone | $base_rps | $base_p99 | $((base_hwm / 1024)) MB |"
echo "| under attack | $hot_rps | $hot_p99 | $((peak_kb / 1024)) MB |"
echo
echo "legitimate non-2xx under attack: ${hot_errors:-0}; throughput kept: $(python3 -c "print(f'{$hot_rps / $base_rps:.2f}')")"
echo "attacker 1 (150 sign-ins, random names): $(attack_summary "$WORK/a1")"
echo "attacker 2 (random dmn_ tokens):         $(attack_summary "$WORK/a2")"
echo "attacker 3 (gzip bodies):                $(attack_summary "$WORK/a3")"
