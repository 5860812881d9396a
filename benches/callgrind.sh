#!/usr/bin/env bash
# Counts what one echo server executes for a fixed load, under valgrind's callgrind: its
# instructions and, with --cache, its simulated cache misses (first-level instruction and
# data caches as valgrind finds them, and a last level set to 1 MiB, 8-way, one core's L2
# on the project's machine), in all and per echo. The counts are of the whole server
# process, start-up and handshakes included: "per echo" is the total over ECHOES, set-up
# and all. For an echo alone, run twice with different ECHOES and divide the difference
# of the totals by the difference of the echoes (over 200 connections the set-up is
# about 1.3 k of the 7.2 k instructions per 16 KiB echo that 10,000 echoes show);
# benches/callgrind-steady.sh does that, function by function.
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   bash benches/callgrind.sh [--cache] [--i1 SIZE,WAYS,LINE] [--instr] [--out FILE] \
#       SERVER CONNECTIONS SIZE ECHOES
#
# e.g. `bash benches/callgrind.sh --cache sockeye 200 16KiB 10000`. SERVER is one of
# `peers serve`'s (sockeye, sockeye-endpoint, tungstenite, fastwebsockets,
# tokio-websockets); the load is `sockeye bench -c CONNECTIONS -s SIZE -n ECHOES`. FILE
# keeps callgrind's output for `callgrind_annotate` (by default it is removed). --i1
# simulates a first-level instruction cache of that geometry instead of the host's
# (implies --cache); --instr records the counts instruction by instruction, by address
# (benches/hot-code.sh reads them). Needs valgrind.
set -euo pipefail

usage() {
    sed -n '2,22p' "$0" >&2
    exit 2
}

cache=0
out=""
i1=""
instr=0
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --cache) cache=1; shift ;;
        --i1) [[ $# -ge 2 && $2 =~ ^[0-9]+,[0-9]+,[0-9]+$ ]] || usage; i1=$2; cache=1; shift 2 ;;
        --instr) instr=1; shift ;;
        --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ $# -eq 4 ]] || usage
server=$1 connections=$2 size=$3 echoes=$4

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
release_builds "$root"
command -v valgrind > /dev/null || { echo "valgrind is not installed" >&2; exit 1; }

work=$(mktemp -d)
keep_out=${out:-$work/callgrind.out}
pid=""
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

options=(--tool=callgrind "--callgrind-out-file=$keep_out")
((cache)) && options+=(--cache-sim=yes --LL=1048576,8,64)
[[ -n $i1 ]] && options+=("--I1=$i1")
((instr)) && options+=(--dump-instr=yes --compress-pos=no)
valgrind "${options[@]}" "$peers" serve "$server" --addr 127.0.0.1:0 \
    > "$work/server.log" 2>&1 &
pid=$!

addr=$(wait_for_address "$work/server.log" "$pid" 300)

"$generator" bench --url "ws://$addr" -c "$connections" -s "$size" -n "$echoes" --json \
    > "$work/bench.json"
errors=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["errors"])' \
    "$work/bench.json")
[[ $errors == 0 ]] || { echo "the load had $errors errors" >&2; exit 1; }

# Valgrind writes its counts when the server exits on SIGTERM.
kill -TERM "$pid"
wait "$pid" 2> /dev/null || true
pid=""

echo "$server, $connections connections, $echoes echoes of $size:"
callgrind_annotate "$keep_out" 2> /dev/null | python3 -c '
import re, sys
events, totals = None, None
for line in sys.stdin:
    if line.startswith("Events shown:"):
        events = line.split(":", 1)[1].split()
    elif "PROGRAM TOTALS" in line:
        totals = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) \(", line)]
if not events or not totals:
    sys.exit("no totals in the callgrind output")
echoes = int(sys.argv[1])
names = {"Ir": "instructions", "I1mr": "L1 instruction misses",
         "D1mr": "L1 data read misses", "D1mw": "L1 data write misses",
         "DLmr": "last-level data read misses", "DLmw": "last-level data write misses",
         "ILmr": "last-level instruction misses"}
for event, total in zip(events, totals):
    if event in names:
        print(f"  {names[event]:<30} {total:>14,} {total / echoes:>10,.1f} per echo")
' "$echoes"
