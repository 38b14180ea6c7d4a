#!/usr/bin/env bash
# A release build guided by a profile of the sign-in (profile-guided
# optimisation, rustc's -Cprofile-generate / -Cprofile-use with the
# toolchain's own llvm-profdata).
#
#   scripts/pgo.sh profile   # an instrumented build of the signin bench, run
#                            # (PGO_LOGINS=300, no peer), its counts merged into
#                            # target/pgo/doorman.profdata
#   scripts/pgo.sh build     # with that profile: target/pgo/use/release/doorman
#                            # and the signin bench (bench/signin_vs_peer.sh PGO=1)
#   scripts/pgo.sh           # both
#
# The profile comes from the sign-in and what the bench asks after it (the
# flow cookie, the callback, the provider's client, one transaction, the
# session cookies, `GET /me`); code it never ran is compiled for size. It
# belongs to the source it was taken from: take it again after a change.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/pgo
profdata="$PWD/$out/doorman.profdata"

llvm_profdata() {
    local sysroot bin
    sysroot="$(rustc --print sysroot)"
    bin="$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f | head -n 1)"
    if [ -z "$bin" ]; then
        rustup component add llvm-tools >&2
        bin="$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f | head -n 1)"
    fi
    [ -n "$bin" ] || { echo "llvm-profdata not found (rustup component add llvm-tools)" >&2; exit 1; }
    echo "$bin"
}

# Prints the path of the signin bench's executable a `cargo bench --no-run` built.
bench_executable() {
    sed -n 's/.*Executable benches\/signin.rs (\(.*\))$/\1/p' | tail -n 1
}

profile() {
    local profdata_bin raw gen_bench
    profdata_bin="$(llvm_profdata)"
    [ -d tests/idp/node_modules/oidc-provider ] || (cd tests/idp && npm ci --silent)
    raw="$PWD/$out/raw"
    rm -rf "$raw"
    mkdir -p "$raw"
    gen_bench="$(RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR="$out/gen" \
        cargo bench --bench signin --no-run 2>&1 | tee /dev/stderr | bench_executable)"
    [ -x "$gen_bench" ] || { echo "the instrumented bench was not built" >&2; exit 1; }
    # Only the bench's own run counts: the build scripts' counts are dropped.
    rm -rf "$raw"
    mkdir -p "$raw"
    env -u PEER_PYTHON LOGINS="${PGO_LOGINS:-300}" "$gen_bench" --bench
    "$profdata_bin" merge -o "$profdata" "$raw"
    echo "profile: $profdata"
}

build() {
    [ -f "$profdata" ] || { echo "no profile yet: scripts/pgo.sh profile" >&2; exit 1; }
    export RUSTFLAGS="-Cprofile-use=$profdata" CARGO_TARGET_DIR="$out/use"
    cargo build --release --bin doorman
    cargo bench --bench signin --no-run 2>&1 | tee /dev/stderr | bench_executable > "$out/signin-bench"
    echo "doorman: $out/use/release/doorman"
    echo "signin bench: $(cat "$out/signin-bench")"
}

case "${1:-all}" in
    profile) profile ;;
    build) build ;;
    all) profile && build ;;
    *) echo "usage: scripts/pgo.sh [profile|build]" >&2; exit 2 ;;
esac
