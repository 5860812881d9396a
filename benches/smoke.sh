#!/usr/bin/env bash
# Smoke test of the benchmark tool: a few hundred messages through `sockeye bench` against
# `sockeye serve` on loopback; fails unless every message was echoed and the result block
# reports zero errors. Bounded: the echo timeout is 10 s and the whole run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=benches/common.sh
source benches/common.sh

cargo build --quiet -p sockeye-cli
bin=target/debug/sockeye
messages=400

log=$(mktemp)
serve_pid=
cleanup() {
    if [[ -n "$serve_pid" ]]; then kill "$serve_pid" 2>/dev/null || true; fi
    rm -f "$log"
}
trap cleanup EXIT

# The address is read from whole lines only: a line still being written gives nothing
# (its address may be cut short), the finished line gives the address.
printf 'listening on 127.0' > "$log"
[[ -z $(listening_address "$log") ]] || { echo "smoke: a line cut short was read" >&2; exit 1; }
printf '.0.1:5\n' >> "$log"
[[ $(listening_address "$log") == 127.0.0.1:5 ]] ||
    { echo "smoke: the finished line was not read" >&2; exit 1; }

"$bin" serve --addr 127.0.0.1:0 2>"$log" &
serve_pid=$!
addr=$(wait_for_address "$log" "$serve_pid" 100) || { echo "smoke: no server" >&2; exit 1; }

status=0
out=$("$bin" bench --url "ws://$addr/" --connections 4 --size 1KiB --messages "$messages" \
    --timeout 10s) || status=$?
echo "$out"
if [[ $status -ne 0 ]]; then
    echo "smoke: sockeye bench exited with $status" >&2
    exit 1
fi
grep -Eq '^errors +0$' <<<"$out" || { echo "smoke: the result block reports errors" >&2; exit 1; }
grep -Eq "^messages +$messages echoed" <<<"$out" ||
    { echo "smoke: not every one of the $messages messages was echoed" >&2; exit 1; }
echo "smoke: ok, $messages messages echoed with zero errors"
