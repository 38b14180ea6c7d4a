#!/usr/bin/env bash
# Runs every test of doorman on a fresh machine: installs what the tests
# need (Chromium, the npm OpenID Provider and browser driver, Python
# packages for the examples, the client package with pytest, and
# schemathesis), then `cargo test` on SQLite and PostgreSQL, schemathesis
# against a live doorman among them (its numbers are shown at the end);
# with no arguments, then the whole-run check for secrets in logs and audit
# events, and a bounded run of every fuzz target (scripts/fuzz.sh).
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

# The Python client package and pytest, which tests/api/python_client.rs runs
# against a live doorman; a missing one fails here, loudly.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check "./clients/python[test]"
python3 -c "import doorman_client, pytest" || { echo "the Python client package or pytest is missing" >&2; exit 1; }
command -v doorman-login >/dev/null 2>&1 || echo "note: doorman-login is not on PATH (pip's script directory)" >&2

# schemathesis, which tests/api/schemathesis.rs runs against a live doorman
# on its own /openapi.json; a missing one fails that test, loudly.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt
python3 -c "import schemathesis" || { echo "schemathesis is missing" >&2; exit 1; }

# The real OpenID Provider checks itself first (its own full flow over HTTP).
node tests/idp/selftest.mjs

# Static checks first: formatting, every lint on every target, no unused dependency.
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
command -v cargo-machete >/dev/null 2>&1 || cargo install --locked --quiet cargo-machete
cargo machete

export DOORMAN_TEST_POSTGRES_URL="${DOORMAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
# The run's record (secrets it created, its logs and audit events), read
# after the run by the whole-run check below.
export DOORMAN_TEST_RECORD="$PWD/target/tmp/run-record"
rm -rf "$DOORMAN_TEST_RECORD"
# The schemathesis test writes its numbers here (cargo shows a passing test's output only on failure).
summary="${CARGO_TARGET_DIR:-target}/tmp/schemathesis-summary.txt"
rm -f "$summary"
cargo test --locked "$@"
if [ -f "$summary" ]; then
    echo "schemathesis against the live server (operations, examples, failures per caller):"
    cat "$summary"
fi

if [ $# -eq 0 ]; then
    # After the whole run: no log line or audit event holds a secret it created.
    cargo test --locked --test api -- --ignored --exact whole_run::no_secret_in_any_log_line_or_audit_event --nocapture
    # Every parser fuzz target, a few seconds each from its committed seeds.
    scripts/fuzz.sh 8
fi
