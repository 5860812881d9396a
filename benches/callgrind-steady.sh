#!/usr/bin/env bash
# What one echo costs in steady state, function by function: runs benches/callgrind.sh
# twice for one server and load, with ECHOES and with three times as many, and divides the
# difference of the two counts by the difference of the echoes, so that start-up and the
# connections' handshakes drop out. Prints the instructions per echo in all and the TOP
# functions (default 40) by their own instructions per echo (not counting their callees),
# a function's inlined copies in other files counted as one; with --inclusive, by their
# instructions with their callees' (a task's future, say, with all it calls).
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   bash benches/callgrind-steady.sh [--top N] [--inclusive] SERVER CONNECTIONS SIZE ECHOES
#
# e.g. `bash benches/callgrind-steady.sh sockeye 200 16KiB 10000` (under a minute), then
# the same with `tokio-websockets` to set the two side by side. Needs valgrind.
set -euo pipefail

usage() {
    sed -n '2,14p' "$0" >&2
    exit 2
}

top=40
inclusive=no
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --top) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; top=$2; shift 2 ;;
        --inclusive) inclusive=yes; shift ;;
        *) usage ;;
    esac
done
[[ $# -eq 4 && $4 =~ ^[1-9][0-9]*$ ]] || usage
server=$1 connections=$2 size=$3 echoes=$4

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# callgrind.sh prints the process's total; the listing gives each function's count.
totals=()
for n in "$echoes" $((3 * echoes)); do
    totals+=("$(bash "$here/callgrind.sh" --out "$work/$n.out" "$server" "$connections" \
        "$size" "$n" | awk '$1 == "instructions" { gsub(",", "", $2); print $2 }')")
    callgrind_annotate --auto=no --threshold=100 "--inclusive=$inclusive" "$work/$n.out" \
        > "$work/$n.txt" 2> /dev/null
done

echo "$server, $connections connections, $size, one echo in steady state" \
    "($echoes and $((3 * echoes)) echoes):"
python3 - "$work/$echoes.txt" "$work/$((3 * echoes)).txt" $((2 * echoes)) "$top" \
    "$inclusive" "${totals[@]}" << 'EOF'
import collections, re, sys

def costs(path, inclusive):
    """Instructions by function, from callgrind_annotate's per-function listing. A
    function listed under several files (its inlined copies) is one: their own counts
    add up; their inclusive counts overlap, and the largest stands for them."""
    by_function = collections.Counter()
    for line in open(path):
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        name = re.sub(r" \[[^]]*\]$", "", name)  # the object file
        prefix, sep, rest = name.partition(":")
        if sep and ("/" in prefix or prefix == "???"):
            name = rest  # the source file
        if inclusive:
            by_function[name] = max(by_function[name], count)
        else:
            by_function[name] += count
    if not by_function:
        sys.exit(f"no functions in {path}")
    return by_function

echoes, top, inclusive = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "yes"
# `echoes` is the difference of the two runs' echoes, twice the first run's.
first, second = int(sys.argv[6]), int(sys.argv[7])
print(f"  {(second - first) / echoes:,.0f} instructions per echo")
print(f"  ({first / (echoes // 2):,.0f} per echo of the first run as a whole, start-up and"
      " handshakes included)")
short, long = costs(sys.argv[1], inclusive), costs(sys.argv[2], inclusive)
per_echo = {name: (long[name] - short[name]) / echoes for name in set(short) | set(long)}
for name, cost in sorted(per_echo.items(), key=lambda item: -item[1])[:top]:
    print(f"  {cost:8,.1f}  {name[:140]}")
EOF
