#!/usr/bin/env bash
# How often an echo server's threads sleep and wake, per echo, on the machine itself (not
# simulated): starts `peers serve SERVER`, warms it up with one second of `sockeye bench`,
# then counts with `perf stat` (kernel tracepoints) over a load of CONNECTIONS x SIZE for
# DURATION: the server's `epoll_wait` and `futex` calls (a worker thread that runs out of
# tasks parks in one of them), its threads' context switches, its `recvfrom` calls and
# its writes (`writev`, `sendto` and `write`), its minor page faults and its CPU time; the
# load generator's context switches; and, where `nstat` is installed, the TCP segments sent
# on the machine (both ends, over loopback) and how many of them were pure ACKs: each
# divided by the echoes of the load. With several SERVERs and --rounds N, the servers
# alternate, N rounds of each.
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   bash benches/wakeups.sh [--rounds N] [--duration TIME] CONNECTIONS SIZE SERVER...
#
# e.g. `bash benches/wakeups.sh --rounds 4 200 16KiB sockeye tokio-websockets
# fastwebsockets` (about 5 s per round and server). SERVER is one of `peers serve`'s.
# Needs perf and access to the syscalls and sched tracepoints (root, or a
# kernel.perf_event_paranoid that allows them).
set -euo pipefail

usage() {
    sed -n '2,19p' "$0" >&2
    exit 2
}

rounds=1
duration=3s
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; rounds=$2; shift 2 ;;
        --duration) [[ $# -ge 2 ]] || usage; duration=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ $# -ge 3 ]] || usage
connections=$1 size=$2
shift 2
servers=("$@")

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
release_builds "$root"
command -v perf > /dev/null || { echo "perf is not installed" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

events=syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,sched:sched_switch
events+=,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_sendto
events+=,syscalls:sys_enter_write,minor-faults,task-clock
# nstat's own history of the counters, apart from the user's.
export NSTAT_HISTORY=$work/nstat.history
segments() {
    if command -v nstat > /dev/null; then
        nstat -z TcpOutSegs TcpExtTCPPureAcks | awk '$1 ~ /^Tcp/ { printf "%s=%s ", $1, $2 }'
    fi
}

echo "$connections connections x $size, per echo:"
for round in $(seq 1 "$rounds"); do
    for server in "${servers[@]}"; do
        "$peers" serve "$server" --addr 127.0.0.1:0 > "$work/server.log" 2>&1 &
        pid=$!
        addr=$(wait_for_address "$work/server.log" "$pid" 100)
        "$generator" bench --url "ws://$addr" -c "$connections" -s "$size" -d 1s > /dev/null
        # The counts cover the whole load, its connections' set-up and closing included
        # (a few hundred calls against the hundreds of thousands of an echo load).
        segments > /dev/null
        perf stat -x, -e "$events" -o "$work/stat.csv" -p "$pid" -- \
            perf stat -x, -e sched:sched_switch -o "$work/generator.csv" -- \
            "$generator" bench --url "ws://$addr" -c "$connections" -s "$size" \
            -d "$duration" --json > "$work/bench.json"
        sent=$(segments)
        kill -TERM "$pid"
        wait "$pid" 2> /dev/null || true
        pid=""
        python3 - "$server" "$round" "$work/stat.csv" "$work/generator.csv" \
            "$work/bench.json" "$sent" << 'EOF'
import json, sys

server, round_, stat, generator_stat, bench, sent = sys.argv[1:]
result = json.load(open(bench))
if result["errors"]:
    sys.exit(f"the load against {server} had {result['errors']} errors")
echoes = result["messages"]

def counted(path):
    counts = {}
    for line in open(path):
        fields = line.strip().split(",")
        if len(fields) > 2 and fields[0] and fields[0][0].isdigit():
            counts[fields[2].split(":")[-1].replace("sys_enter_", "")] = float(fields[0])
    return counts

counts, generator = counted(stat), counted(generator_stat)
wanted = {"epoll_wait", "futex", "sched_switch", "recvfrom", "writev", "sendto", "write",
          "minor-faults", "task-clock"}
missing = wanted - set(counts) | {"sched_switch"} - set(generator)
if missing:
    sys.exit(f"perf counted no {', '.join(sorted(missing))} (are the tracepoints readable?)")
per = {name: value / echoes for name, value in counts.items()}
writes = per["writev"] + per["sendto"] + per["write"]
segments = dict(item.split("=") for item in sent.split())
tcp = (
    f"  segments {int(segments['TcpOutSegs']) / echoes:.3f}"
    f" (pure ACKs {int(segments.get('TcpExtTCPPureAcks', 0)) / echoes:.3f})"
    if "TcpOutSegs" in segments else ""
)
print(
    f"  round {round_} {server:17} epoll_wait {per['epoll_wait']:.3f}  futex {per['futex']:.3f}"
    f"  switches {per['sched_switch']:.3f}  recvfrom {per['recvfrom']:.2f}"
    f"  writes {writes:.2f}  faults {per['minor-faults']:.3f}"
    f"  CPU {per['task-clock'] * 1000:.2f} µs"
    f"  | generator switches {generator['sched_switch'] / echoes:.3f}{tcp}"
    f"  ({result['msgs_per_s'] / 1000:.1f}k msg/s)"
)
EOF
    done
done
