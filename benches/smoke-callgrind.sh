#!/usr/bin/env bash
# Smoke test of the instruction counts behind docs/performance.md ("Where the instructions
# go"): runs benches/callgrind-steady.sh (and with it benches/callgrind.sh) on a small load,
# so that the scripts cannot rot unnoticed, and checks what they print: the instructions
# per echo of a Sockeye server in steady state, below the average of a whole run (start-up
# included, which callgrind-steady.sh prints too), and functions of the library among the
# costliest; and benches/hot-code.sh, whose hot code must include the library's and fit the
# counts it prints. Also checks that a server `peers serve` refuses makes the scripts fail.
#
#   bash benches/smoke-callgrind.sh
#
# Builds the release binaries, and installs valgrind from Debian's packages if it is
# missing (as root, unattended). Takes a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "smoke-callgrind: $*" >&2
    exit 1
}

if ! command -v valgrind > /dev/null || ! command -v callgrind_annotate > /dev/null; then
    [[ $(id -u) -eq 0 ]] || fail "valgrind is not installed, and installing it needs root"
    echo "smoke-callgrind: installing valgrind"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind \
        < /dev/null || {
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            valgrind < /dev/null
    }
fi

cargo build --quiet --release -p sockeye-cli -p sockeye-bench-peers

out=$(bash benches/callgrind-steady.sh --top 15 sockeye 4 20 300) ||
    fail "callgrind-steady.sh failed"
echo "$out"
per_echo=$(awk '$2 == "instructions" && $3 == "per" { gsub(",", "", $1); print $1 }' <<< "$out")
[[ $per_echo =~ ^-?[0-9]+$ ]] || fail "no count of instructions per echo"
# An echo alone costs less than the average echo of a whole run, whose count includes the
# server's start-up and the handshakes (callgrind.sh's "per echo"); a count above that
# average, or implausibly small, means the totals or their difference were read wrong.
average=$(awk '$2 == "per" && $4 == "of" { gsub("[(,]", "", $1); print $1 }' <<< "$out")
[[ $average =~ ^[0-9]+$ ]] || fail "no average count per echo of a whole run"
((per_echo >= 1000 && per_echo < average)) ||
    fail "$per_echo instructions per echo alone, against $average per echo of a whole run"
grep -Eq '^ +[0-9,.]+ +sockeye(_proto)?::' <<< "$out" ||
    fail "no function of the library among the costliest"

hot=$(bash benches/hot-code.sh sockeye 4 20 300) || fail "hot-code.sh failed"
echo "$hot"
# The hot code is instructions that run at least once per echo, so no more of them than an
# echo executes, on at least one line for every 16 of them (a line holds at most 64 bytes),
# and some of them the library's.
read -r hot_instructions hot_lines < <(awk '$1 == "hot" && $2 == "code:" {
    gsub(",", "", $3); print $3, $6 }' <<< "$hot")
[[ $hot_instructions =~ ^[0-9]+$ && $hot_lines =~ ^[0-9]+$ ]] || fail "no count of hot code"
((hot_instructions >= 500 && hot_instructions <= per_echo && hot_lines * 16 >= hot_instructions)) ||
    fail "$hot_instructions hot instructions on $hot_lines lines, $per_echo per echo"
grep -Eq 'lines by crate: .*sockeye(_proto)? [0-9]' <<< "$hot" ||
    fail "no line of the library's among the hot code"
grep -Eq 'misses per echo: -?[0-9.]+ with [0-9]+ ways, -?[0-9.]+ with the same' <<< "$hot" ||
    fail "no misses per echo"

if bash benches/callgrind.sh peers 4 20 300 > /dev/null 2>&1; then
    fail "callgrind.sh succeeded with a server that does not exist"
fi
echo "smoke-callgrind: ok, $per_echo instructions per 20 B echo, $hot_lines lines of hot code"
