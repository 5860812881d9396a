#!/usr/bin/env bash
# What one echo costs in steady state, function by function: runs benches/callgrind.sh
# twice for one server and load, with ECHOES and with three times as many, and divides the
# difference of the two counts by the difference of the echoes, so that start-up and the
# connections' handshakes drop out. Prints the instructions per echo in all and the TOP
# functions (default 40) by their own instructions per echo (not counting their callees),
# a function's inlined copies in other files counted as one.
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   bash benches/callgrind-steady.sh [--top N] SERVER CONNECTIONS SIZE ECHOES
#
# e.g. `bash benches/callgrind-steady.sh sockeye 200 16KiB 10000` (under a minute), then
# the same with `tokio-websockets` to set the two side by side. Needs valgrind.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" >&2
    exit 2
}

top=40
if [[ ${1-} == --top ]]; then
    [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
    top=$2
    shift 2
fi
[[ $# -eq 4 && $4 =~ ^[1-9][0-9]*$ ]] || usage
server=$1 connections=$2 size=$3 echoes=$4

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for n in "$echoes" $((3 * echoes)); do
    bash "$here/callgrind.sh" --out "$work/$n.out" "$server" "$connections" "$size" "$n" \
        > /dev/null
    callgrind_annotate --auto=no --threshold=100 "$work/$n.out" > "$work/$n.txt" 2> /dev/null
done

echo "$server, $connections connections, $size, one echo in steady state" \
    "($echoes and $((3 * echoes)) echoes):"
python3 - "$work/$echoes.txt" "$work/$((3 * echoes)).txt" $((2 * echoes)) "$top" << 'EOF'
import collections, re, sys

def own_costs(path):
    """Instructions by function, from callgrind_annotate's per-function listing."""
    costs, total = collections.Counter(), None
    for line in open(path):
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)", line)
        if not m:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in name:
            total = count
            continue
        name = re.sub(r" \[[^]]*\]$", "", name)  # the object file
        prefix, sep, rest = name.partition(":")
        if sep and ("/" in prefix or prefix == "???"):
            name = rest  # the source file: inlined copies are one function
        costs[name] += count
    if total is None:
        sys.exit(f"no totals in {path}")
    return costs, total

(short, short_total), (long, long_total) = own_costs(sys.argv[1]), own_costs(sys.argv[2])
echoes, top = int(sys.argv[3]), int(sys.argv[4])
print(f"  {(long_total - short_total) / echoes:,.0f} instructions per echo")
per_echo = {name: (long[name] - short[name]) / echoes for name in set(short) | set(long)}
for name, cost in sorted(per_echo.items(), key=lambda item: -item[1])[:top]:
    print(f"  {cost:8,.1f}  {name[:140]}")
EOF
