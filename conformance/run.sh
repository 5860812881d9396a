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
# Environment: AUTOBAHN_ROLE_TIMEOUT (seconds one role may take, default 1800),
# AUTOBAHN_SKIP_DOCS=1 to leave docs/conformance.md untouched.
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

# Runs a command for at most ROLE_TIMEOUT seconds, in the background so that a signal
# to this script is handled at once (bash runs traps only between foreground commands).
# Usage: bounded LOG COMMAND...; returns the command's status.
bounded() {
    local log=$1 pid status=0
    shift
    timeout --signal=TERM --kill-after=10 "$ROLE_TIMEOUT" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    forget "$pid"
    return "$status"
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

# ----- server role: wstest's fuzzing client against our server -----
log "server role: sockeye-autobahn server + wstest -m fuzzingclient"
start=$(now)
"$HARNESS" server "127.0.0.1:$SERVER_PORT" </dev/null >"$LOGS/server-harness.log" 2>&1 &
server_pid=$!
PIDS+=("$server_pid")
if wait_port "$SERVER_PORT" "$server_pid"; then
    if ! bounded "$LOGS/fuzzingclient.log" \
        "$WSTEST" -m fuzzingclient -s conformance/config/fuzzingclient.json; then
        log "wstest -m fuzzingclient failed or timed out (${ROLE_TIMEOUT}s)"
        failed=1
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "the test server exited during the run"
        failed=1
    fi
else
    failed=1
fi
stop "$server_pid"
SERVER_TIME=$(elapsed "$start" "$(now)")
((failed)) && show_logs "$LOGS/server-harness.log" "$LOGS/fuzzingclient.log"
log "server role: ${SERVER_TIME} s"

# ----- client role: our client against wstest's fuzzing server -----
log "client role: wstest -m fuzzingserver + sockeye-autobahn client"
client_failed=0
start=$(now)
"$WSTEST" -m fuzzingserver -s conformance/config/fuzzingserver.json \
    </dev/null >"$LOGS/fuzzingserver.log" 2>&1 &
fuzzingserver_pid=$!
PIDS+=("$fuzzingserver_pid")
if wait_port "$FUZZINGSERVER_PORT" "$fuzzingserver_pid"; then
    if ! bounded "$LOGS/client-harness.log" \
        "$HARNESS" client "ws://127.0.0.1:$FUZZINGSERVER_PORT" sockeye; then
        log "the test client failed or timed out (${ROLE_TIMEOUT}s)"
        client_failed=1
    fi
else
    client_failed=1
fi
stop "$fuzzingserver_pid"
CLIENT_TIME=$(elapsed "$start" "$(now)")
((client_failed)) && show_logs "$LOGS/fuzzingserver.log" "$LOGS/client-harness.log"
log "client role: ${CLIENT_TIME} s"
((client_failed)) && failed=1

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
    python3 - "$DOC" "$summary" "$SERVER_TIME" "$CLIENT_TIME" "${WSTEST_VERSION:-unknown}" \
        "$COMMIT" "$REPORTS" <<'PY'
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

doc, summary, server_time, client_time, wstest, commit, reports = sys.argv[1:]
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

log "wall time: server role ${SERVER_TIME} s, client role ${CLIENT_TIME} s"
if ((failed)); then
    log "FAILED (see the tables above and the logs in $LOGS)"
    exit 1
fi
log "all cases passed in both roles"
