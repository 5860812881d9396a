#!/usr/bin/env bash
# Runs the Autobahn|TestSuite against Sockeye in both roles and fails unless every case
# passed strictly.
#
#   server role: our echo server on 127.0.0.1:9002, `wstest -m fuzzingclient` against it
#   client role: `wstest -m fuzzingserver` on 127.0.0.1:9001, our test client against it
#
# Then conformance/report.py prints the per-section tables of both roles and the results
# are written to docs/conformance.md (between its RESULTS markers). Exits non-zero if a
# role could not run or any case is not OK/INFORMATIONAL. Needs `wstest`
# (conformance/install-wstest.sh), cargo and python3; runs unattended.
#
# The two roles run at the same time (they share nothing but the machine).
#
# Environment: AUTOBAHN_ROLE_TIMEOUT (seconds one role may take, default 1800),
# AUTOBAHN_SKIP_DOCS=1 to leave docs/conformance.md untouched, AUTOBAHN_SEQUENTIAL=1 to run
# the client role after the server role instead of alongside it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# Fixed by conformance/config/*.json.
SERVER_PORT=9002
FUZZINGSERVER_PORT=9001
ROLE_TIMEOUT=${AUTOBAHN_ROLE_TIMEOUT:-1800}
PORT_WAIT=30
REPORTS=conformance/reports
LOGS=$REPORTS/logs
DOC=docs/conformance.md

log() { printf 'run.sh: %s\n' "$*" >&2; }

WSTEST=$(command -v wstest 2>/dev/null || true)
[[ -z "$WSTEST" && -x /usr/local/bin/wstest ]] && WSTEST=/usr/local/bin/wstest
if [[ -z "$WSTEST" ]]; then
    log "wstest not found: run conformance/install-wstest.sh first"
    exit 2
fi

# ----- processes we start, stopped on any exit -----
PIDS=()
cleanup() {
    local pid n
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((n = 0; n < 50; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

forget() {
    local p rest=()
    for p in "${PIDS[@]}"; do
        [[ "$p" != "$1" ]] && rest+=("$p")
    done
    PIDS=("${rest[@]}")
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits (bounded) until `pid` listens on `port`; fails if it exits first.
wait_port() {
    local port=$1 pid=$2 n
    for ((n = 0; n < PORT_WAIT * 10; n++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "process $pid exited before listening on port $port"
            return 1
        fi
        port_open "$port" && return 0
        sleep 0.1
    done
    log "nothing listening on port $port after ${PORT_WAIT}s"
    return 1
}

require_free() {
    if port_open "$1"; then
        log "port $1 is already in use; stop whatever listens on it"
        exit 2
    fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

show_logs() {
    local f
    for f in "$@"; do
        [[ -f "$f" ]] || continue
        log "last lines of $f:"
        tail -n 30 "$f" >&2
    done
}

# ----- build -----
log "building the harness (release)"
cargo build --release -p sockeye-autobahn
HARNESS=${CARGO_TARGET_DIR:-$ROOT/target}/release/sockeye-autobahn
[[ -x "$HARNESS" ]] || { log "no harness binary at $HARNESS"; exit 2; }

rm -rf "$REPORTS/server" "$REPORTS/client" "$LOGS"
mkdir -p "$LOGS"
require_free "$SERVER_PORT"
require_free "$FUZZINGSERVER_PORT"
failed=0

# ----- both roles, side by side -----
# The two roles use different ports and processes, and each is mostly a ping-pong between
# a single-threaded wstest and our harness, so they run at the same time: sections 12 and
# 13 (permessage-deflate, 1000 messages per case) take most of the time, nearly all of it
# in wstest. AUTOBAHN_SEQUENTIAL=1 runs the client role only after the server role.
log "server role: sockeye-autobahn server + wstest -m fuzzingclient"
log "client role: wstest -m fuzzingserver + sockeye-autobahn client"
client_failed=0
"$HARNESS" server "127.0.0.1:$SERVER_PORT" </dev/null >"$LOGS/server-harness.log" 2>&1 &
server_pid=$!
PIDS+=("$server_pid")
"$WSTEST" -m fuzzingserver -s conformance/config/fuzzingserver.json \
    </dev/null >"$LOGS/fuzzingserver.log" 2>&1 &
fuzzingserver_pid=$!
PIDS+=("$fuzzingserver_pid")
wait_port "$SERVER_PORT" "$server_pid" || failed=1
wait_port "$FUZZINGSERVER_PORT" "$fuzzingserver_pid" || client_failed=1

# Starts a driver (bounded by ROLE_TIMEOUT) in the background; its pid is in DRIVER_PID.
start_driver() {
    local log=$1
    shift
    timeout --signal=TERM --kill-after=10 "$ROLE_TIMEOUT" "$@" </dev/null >"$log" 2>&1 &
    DRIVER_PID=$!
    PIDS+=("$DRIVER_PID")
}

# Waits (polling, so that signals are handled at once) until the driver `pid` exits;
# sets DRIVER_END to the time it ended and DRIVER_STATUS to its exit status.
wait_driver() {
    local pid=$1
    DRIVER_STATUS=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.5
    done
    DRIVER_END=$(now)
    wait "$pid" || DRIVER_STATUS=$?
    forget "$pid"
}

start=$(now)
server_driver='' client_driver=''
if ((!failed)); then
    start_driver "$LOGS/fuzzingclient.log" \
        "$WSTEST" -m fuzzingclient -s conformance/config/fuzzingclient.json
    server_driver=$DRIVER_PID
fi
start_client_driver() {
    if ((!client_failed)); then
        start_driver "$LOGS/client-harness.log" \
            "$HARNESS" client "ws://127.0.0.1:$FUZZINGSERVER_PORT" sockeye
        client_driver=$DRIVER_PID
    fi
}
[[ "${AUTOBAHN_SEQUENTIAL:-}" == 1 ]] || start_client_driver

SERVER_TIME=0
if [[ -n "$server_driver" ]]; then
    wait_driver "$server_driver"
    SERVER_TIME=$(elapsed "$start" "$DRIVER_END")
    if ((DRIVER_STATUS != 0)); then
        log "wstest -m fuzzingclient failed or timed out (${ROLE_TIMEOUT}s)"
        failed=1
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "the test server exited during the run"
        failed=1
    fi
fi
stop "$server_pid"
((failed)) && show_logs "$LOGS/server-harness.log" "$LOGS/fuzzingclient.log"
log "server role: ${SERVER_TIME} s"

if [[ "${AUTOBAHN_SEQUENTIAL:-}" == 1 ]]; then
    client_start=$(now)
    start_client_driver
else
    client_start=$start
fi
CLIENT_TIME=0
if [[ -n "$client_driver" ]]; then
    wait_driver "$client_driver"
    CLIENT_TIME=$(elapsed "$client_start" "$DRIVER_END")
    if ((DRIVER_STATUS != 0)); then
        log "the test client failed or timed out (${ROLE_TIMEOUT}s)"
        client_failed=1
    fi
fi
stop "$fuzzingserver_pid"
((client_failed)) && show_logs "$LOGS/fuzzingserver.log" "$LOGS/client-harness.log"
log "client role: ${CLIENT_TIME} s"
((client_failed)) && failed=1
TOTAL_TIME=$(elapsed "$start" "$(now)")

# ----- server role over wss:// (sections 1-7) -----
# The same test server behind TLS (rustls, a self-signed certificate made at start;
# wstest does not verify it), against wstest -m fuzzingclient with a wss:// URL.
WSS_PORT=9003
WSS_TIME=0
wss_failed=0
rm -rf "$REPORTS/server-wss"
require_free "$WSS_PORT"
log "server role over wss://: sockeye-autobahn server-tls + wstest -m fuzzingclient (sections 1-7)"
"$HARNESS" server-tls "127.0.0.1:$WSS_PORT" </dev/null >"$LOGS/server-tls-harness.log" 2>&1 &
wss_pid=$!
PIDS+=("$wss_pid")
if wait_port "$WSS_PORT" "$wss_pid"; then
    wss_start=$(now)
    start_driver "$LOGS/fuzzingclient-wss.log" \
        "$WSTEST" -m fuzzingclient -s conformance/config/fuzzingclient-wss.json
    wait_driver "$DRIVER_PID"
    WSS_TIME=$(elapsed "$wss_start" "$DRIVER_END")
    ((DRIVER_STATUS != 0)) && wss_failed=1
else
    wss_failed=1
fi
stop "$wss_pid"
((wss_failed)) && show_logs "$LOGS/server-tls-harness.log" "$LOGS/fuzzingclient-wss.log"
if ((!wss_failed)) && ! python3 conformance/report.py --server "$REPORTS/server-wss"; then
    wss_failed=1
fi
log "server role over wss://: ${WSS_TIME} s"
((wss_failed)) && failed=1

# ----- results -----
summary=$(mktemp)
trap 'cleanup; rm -f "$summary"' EXIT
set +e
python3 conformance/report.py --server "$REPORTS/server" --client "$REPORTS/client" \
    --markdown "$summary"
report_status=$?
set -e
if ((report_status == 2)); then
    log "the reports could not be read"
    exit 1
fi
((report_status != 0)) && failed=1

if [[ "${AUTOBAHN_SKIP_DOCS:-}" != 1 ]]; then
    WSTEST_VERSION=$("$WSTEST" -a 2>/dev/null | sed -n 's/.*AutobahnTestSuite \([0-9.]*\).*/\1/p' | head -n 1)
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    MODE=$([[ "${AUTOBAHN_SEQUENTIAL:-}" == 1 ]] && echo "one after the other" || echo "side by side")
    python3 - "$DOC" "$summary" "$SERVER_TIME" "$CLIENT_TIME" "${WSTEST_VERSION:-unknown}" \
        "$COMMIT" "$REPORTS" "$TOTAL_TIME" "$MODE" <<'PY'
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

doc, summary, server_time, client_time, wstest, commit, reports, total_time, mode = sys.argv[1:]
begin, end = "<!-- RESULTS:BEGIN (written by conformance/run.sh) -->", "<!-- RESULTS:END -->"
text = Path(doc).read_text(encoding="utf-8")
if begin not in text or end not in text:
    sys.exit("run.sh: {} has no RESULTS markers".format(doc))
lines = []
for line in Path(summary).read_text(encoding="utf-8").splitlines():
    if line.startswith("# "):
        continue  # the document has its own title
    lines.append("#" + line if line.startswith("## ") else line)
while lines and not lines[0].strip():
    lines.pop(0)
generated = [
    begin,
    "",
    "Last run {} on commit `{}`, AutobahnTestSuite {}.".format(
        datetime.now(timezone.utc).strftime("%Y-%m-%d"), commit, wstest
    ),
    "",
    "| Role | Tested by | Wall time |",
    "|---|---|---|",
    "| server | `wstest -m fuzzingclient` | {} s |".format(server_time),
    "| client | `wstest -m fuzzingserver` | {} s |".format(client_time),
    "| both ({}) | | {} s |".format(mode, total_time),
    "",
]
slowest = []
for role in ("server", "client"):
    try:
        index = json.loads((Path(reports) / role / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        continue
    for cases in index.values():
        top = sorted(cases.items(), key=lambda kv: -kv[1].get("duration", 0))[:5]
        slowest.append("{}: {}".format(
            role, ", ".join("{} ({} ms)".format(k, v.get("duration")) for k, v in top)))
if slowest:
    generated += ["Slowest cases: " + "; ".join(slowest) + ".", ""]
generated += lines + ["", end]
head, rest = text.split(begin, 1)
tail = rest.split(end, 1)[1]
Path(doc).write_text(head + "\n".join(generated) + tail, encoding="utf-8")
PY
    log "results written to $DOC"
fi

log "wall time: server role ${SERVER_TIME} s, client role ${CLIENT_TIME} s, both ${TOTAL_TIME} s"
if ((failed)); then
    log "FAILED (see the tables above and the logs in $LOGS)"
    exit 1
fi
log "all cases passed in both roles"
