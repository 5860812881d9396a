#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ and runs each one for a while; fails if any target finds
# a crash (a panic, a broken invariant, a timeout or an out-of-memory).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 30)
#
# Works on stable Rust: cargo-fuzz is installed from crates.io when missing, and the targets
# are built without a sanitizer (`--sanitizer none`), which needs no nightly flag. The crate
# under test forbids `unsafe`, so a sanitizer only adds checks on its dependencies, at about
# a seventh of the speed; FUZZ_SANITIZER=address turns it on (with RUSTC_BOOTSTRAP=1 on a
# stable compiler, since `-Zsanitizer` is unstable).
#
# Debug assertions and overflow checks are on (`-a`): the protocol core checks DESIGN.md's
# invariants with `debug_assert!`, and the targets refuse to start without them.
#
# Environment:
#   FUZZ_TARGETS    space-separated targets to run (default: all of them, in order)
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_JOBS       targets run at the same time (default 1)
#
# Each target reads its committed seeds (fuzz/seeds/<target>/) and keeps what it finds in
# fuzz/corpus/<target>/ (not committed). A crashing input is written to
# fuzz/artifacts/<target>/; replay it with `cargo fuzz run -a -s none <target> <file>`.
# Full libFuzzer output goes to fuzz/logs/<target>.log. Runs unattended (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

SECONDS_PER_TARGET=${1:-30}
if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
ALL_TARGETS="frame_header handshake_request handshake_response server_session client_session inflate"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
SANITIZER=${FUZZ_SANITIZER:-none}
JOBS=${FUZZ_JOBS:-1}
CARGO_FUZZ_VERSION=0.13.2

log() { printf 'fuzz: %s\n' "$*" >&2; }

# cargo-fuzz, installed once.
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked </dev/null
fi
log "$(cargo fuzz --version) with $(rustc --version)"

case "$SANITIZER" in
    none) ;;
    address)
        if ! rustc --version | grep -q -- '-nightly'; then
            export RUSTC_BOOTSTRAP=1
        fi
        ;;
    *)
        echo "FUZZ_SANITIZER must be none or address" >&2
        exit 2
        ;;
esac
BUILD_FLAGS=(--debug-assertions --sanitizer "$SANITIZER")

log "building the targets (sanitizer: $SANITIZER)"
cargo fuzz build "${BUILD_FLAGS[@]}" </dev/null

mkdir -p fuzz/logs

# libFuzzer options of one target beyond the common ones. inflate: decompression must stay
# bounded by the session's 64 KiB message limit whatever the input, so a tight memory limit
# catches a buffer that grows with the inflated size; inputs up to 16 KiB hold a compression
# bomb of several megabytes.
target_options() {
    case $1 in
        inflate) echo "-rss_limit_mb=512 -max_len=16384" ;;
        *) echo "-rss_limit_mb=2048" ;;
    esac
}

# Runs one target; prints one summary line; returns non-zero on a finding.
run_target() {
    local target=$1
    local options
    read -r -a options <<<"$(target_options "$target")"
    local log_file="fuzz/logs/$target.log"
    local start end status=0
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    start=$(date +%s)
    cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 "${options[@]}" \
        -print_final_stats=1 >"$log_file" 2>&1 </dev/null || status=$?
    end=$(date +%s)
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_file" | tail -n 1)
    if [[ $status -eq 0 ]]; then
        printf 'fuzz: %-20s ok     %4ss %12s execs\n' "$target" $((end - start)) "${execs:-?}"
    else
        printf 'fuzz: %-20s FAILED %4ss %12s execs (exit %s)\n' "$target" $((end - start)) \
            "${execs:-?}" "$status"
        # The panic message and the input that caused it.
        grep -E -A 12 "panicked at|ERROR: libFuzzer|SUMMARY" "$log_file" | head -n 60 || true
        grep -E "Test unit written to" "$log_file" || true
    fi
    return "$status"
}

failed=()
pids=()
names=()
for target in $TARGETS; do
    if [[ ! -d "fuzz/seeds/$target" ]]; then
        echo "unknown fuzz target: $target" >&2
        exit 2
    fi
    run_target "$target" &
    pids+=($!)
    names+=("$target")
    # At most FUZZ_JOBS targets at a time.
    if [[ ${#pids[@]} -ge $JOBS ]]; then
        wait "${pids[0]}" || failed+=("${names[0]}")
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done

if [[ ${#failed[@]} -gt 0 ]]; then
    log "findings in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)"
    exit 1
fi
log "no findings"
