#!/usr/bin/env bash
# doorman's sign-in side by side with the peer's, in one run: the signin
# bench with the peer (bench/peer: Substra's stack, Django with
# mozilla-django-oidc and simplejwt under gunicorn with 2 workers) started
# next to doorman at the same oidc-provider, their logins alternated, each
# callback's own time taken from its Server-Timing header.
#
#   bench/signin_vs_peer.sh               # LOGINS=150
#   LOGINS=300 bench/signin_vs_peer.sh
#   BLOCK=1 bench/signin_vs_peer.sh       # alternate login by login (default: 25 at a time)
#   PGO=1 bench/signin_vs_peer.sh         # doorman built with the sign-in's profile (scripts/pgo.sh)
#
# The peer's packages go into a virtual environment under target/ (pinned in
# bench/peer/requirements.txt); the provider's from tests/idp's lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/peer-venv
if ! "$venv/bin/python" -c 'import django, mozilla_django_oidc, rest_framework_simplejwt, gunicorn' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/peer/requirements.txt
fi
[ -d tests/idp/node_modules/oidc-provider ] || (cd tests/idp && npm ci --silent)

export LOGINS="${LOGINS:-150}" PEER_PYTHON="$PWD/$venv/bin/python"
if [ "${PGO:-0}" = 1 ]; then
    [ -f target/pgo/doorman.profdata ] || scripts/pgo.sh profile
    scripts/pgo.sh build
    "$(cat target/pgo/signin-bench)" --bench
else
    cargo bench --bench signin
fi
