#!/usr/bin/env bash
# Runs every test of doorman on a fresh machine: installs what the tests
# need (Chromium, the npm OpenID Provider and browser driver, Python
# packages for the examples and schemathesis), then `cargo test` on SQLite
# and PostgreSQL, then schemathesis against a live doorman.
#
# PostgreSQL: DOORMAN_TEST_POSTGRES_URL (default: the local server,
# postgres://postgres@127.0.0.1:5432/test). A server that cannot be reached
# fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v pg_config >/dev/null 2>&1 || missing+=(libpq-dev)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

for dir in tests/idp tests/browser; do
    if [ -f "$dir/package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done

if [ -f examples/python/requirements.txt ]; then
    # PIP_BREAK_SYSTEM_PACKAGES: Debian's own Python refuses system-wide installs without it.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
fi
# schemathesis fuzzes the live server against its own /openapi.json (after cargo test).
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt

# The real OpenID Provider checks itself first (its own full flow over HTTP).
node tests/idp/selftest.mjs

# Static checks first: formatting, every lint on every target, no unused dependency.
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
command -v cargo-machete >/dev/null 2>&1 || cargo install --locked --quiet cargo-machete
cargo machete

export DOORMAN_TEST_POSTGRES_URL="${DOORMAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo test --locked "$@"

# The API description against the live server: schemathesis as an anonymous
# caller, a user and an admin; prints its numbers, fails on any failure or
# when no test ran.
cargo build --locked --quiet --bin doorman
python3 tests/schemathesis/run.py --binary "${CARGO_TARGET_DIR:-target}/debug/doorman"
