#!/usr/bin/env bash
# The side-by-side benchmark: Sockeye's echo server and its peers' (tokio-tungstenite,
# fastwebsockets, tokio-websockets), all on a multi-thread tokio runtime with 2 workers and
# TCP_NODELAY, measured by `sockeye bench` (release build) over the matrix of loads, the
# servers taking turns in a rotating order each round; then the idle memory per connection.
# Prints Markdown tables: each server's msg/s (p99) and Sockeye's ratio to the best peer, with
# the lowest and highest of the rounds' own ratios.
#
# Every option is passed to `peers matrix`; see `benches/run.sh --help`. For example:
#   benches/run.sh                                    # the full matrix, 2 rounds of 5 s
#   benches/run.sh --duration 2s --rounds 1 --idle 0  # a quick look
#   benches/run.sh --cells 10x1KiB,10x1MiB --servers sockeye,fastwebsockets
#   benches/run.sh --json target/bench/peers.json     # keep every figure
#   target/release/peers pool A.json B.json           # several runs pooled: ratios to each peer, with intervals
#
# The server and the load generator share the machine's cores: the figures compare the
# servers with each other on one machine, they are not absolute capacities.
set -euo pipefail
cd "$(dirname "$0")/.."

# 10,000 idle connections need that many descriptors in the runner and in each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt 10100 ]]; then
    echo "run.sh: ulimit -n is $(ulimit -n); the idle-memory step needs 10100 (pass --idle N to use fewer)" >&2
fi

cargo build --release --quiet -p sockeye-cli -p sockeye-bench-peers
exec target/release/peers matrix --sockeye target/release/sockeye "$@"
