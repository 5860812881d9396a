#!/usr/bin/env bash
# A/B comparison of two builds of Sockeye's echo server: runs `peers matrix --servers
# sockeye` from each build in turn (A, B, A, B, ...), all with the same load generator, and
# prints each run's tables. Used to measure one optimisation at a time:
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   cp target/release/peers /tmp/peers-a; cp target/release/sockeye /tmp/sockeye-gen
#   ...change, rebuild...
#   benches/ab.sh /tmp/peers-a target/release/peers /tmp/sockeye-gen [peers matrix options]
#
# Default options: --cells 100x20B,10x16KiB,10x1MiB --duration 3s --rounds 1, 2 pairs of
# runs (PAIRS=N to change), and no idle-memory step unless --idle N is given.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
a=$1 b=$2 generator=$3
shift 3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# A default is added only where the caller did not give that option (the runner takes
# each option once).
options=(--servers sockeye)
[[ " $* " == *" --cells "* ]] || options+=(--cells 100x20B,10x16KiB,10x1MiB)
[[ " $* " == *" --duration "* ]] || options+=(--duration 3s)
[[ " $* " == *" --warmup "* ]] || options+=(--warmup 1s)
[[ " $* " == *" --rounds "* ]] || options+=(--rounds 1)
[[ " $* " == *" --idle "* ]] || options+=(--idle 0)
for ((i = 1; i <= ${PAIRS:-2}; i++)); do
    for build in "$a" "$b"; do
        echo "== $build (pair $i)"
        "$build" matrix --sockeye "$generator" "${options[@]}" "$@" 2>/dev/null |
            grep -E '^\| [0-9]|^\| sockeye|^Server|^Echo|^Idle' || true
    done
done
