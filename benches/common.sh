# Helpers sourced by the benchmark scripts: reading the address a server announces with
# `listening on ADDR` (`sockeye serve`, `peers serve`), and finding the release builds
# that the measuring scripts run.

# Prints the address from the first whole line of LOG that announces it, or nothing yet.
# A line still being written, without its newline, is not read: its address may be cut
# short (`127.0` of `127.0.0.1:PORT`).
listening_address() {
    local line
    while IFS= read -r line; do
        [[ $line == "listening on "* ]] && { echo "${line#listening on }"; return; }
    done < "$1"
    return 0
}

# Waits up to TENTHS tenths of a second for the server PID to announce its address in LOG,
# and prints it; fails, with the log on stderr, if the server exits first or announces
# nothing in time.
wait_for_address() {
    local log=$1 pid=$2 tenths=$3 addr
    for _ in $(seq 1 "$tenths"); do
        addr=$(listening_address "$log")
        [[ -n $addr ]] && { echo "$addr"; return 0; }
        kill -0 "$pid" 2> /dev/null || { cat "$log" >&2; echo "the server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "the server announced no address within $((tenths / 10)) s" >&2
    return 1
}

# Sets `peers` and `generator` to the release builds of `peers` and `sockeye` under ROOT,
# which the scripts that measure a server run; fails if either is not built.
release_builds() {
    peers=$1/target/release/peers
    generator=$1/target/release/sockeye
    local binary
    for binary in "$peers" "$generator"; do
        [[ -x $binary ]] || {
            echo "missing $binary: build it first (cargo build --release -p sockeye-cli -p sockeye-bench-peers)" >&2
            return 1
        }
    done
}
