#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each
# (default 8) on the stable toolchain, from its committed seed corpus; new
# inputs go to a temporary directory, so the committed corpus stays as it is.
# A crash fails the run and leaves the input in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The targets are built unoptimised (a few minutes from nothing, against
# some twenty for cargo-fuzz's optimised single-unit build), enough for a
# bounded run from the seeds; FUZZ_OPTIMISED=1 builds them optimised, for
# long runs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-8}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# `--sanitizer none`: libFuzzer's coverage guidance without the sanitizers,
# which need the nightly toolchain.
build=(--sanitizer none --dev)
if [ "${FUZZ_OPTIMISED:-0}" = 1 ]; then
    build=(--sanitizer none)
fi
cargo fuzz build "${build[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    if cargo fuzz run "${build[@]}" "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo '?')"
        echo "fuzz $target: ${seconds}s, $runs executions, no crash"
        passed=$((passed + 1))
    else
        tail -n 40 "$work/$target.log"
        echo "fuzz $target: FAILED (input kept in fuzz/artifacts/$target/)"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
