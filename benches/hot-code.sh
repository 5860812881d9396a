#!/usr/bin/env bash
# How much code one echo runs, and how it sits in the first-level instruction cache, under
# valgrind's cache simulation: runs benches/callgrind.sh with ECHOES and with three times as
# many, counting instruction by instruction, and takes the difference, so that start-up and
# the connections' handshakes drop out. Prints the echo's hot code (the instructions that run
# at least once per echo on average, the 64-byte lines they are on, and by crate), how those
# lines fall on the cache's sets (a set holds as many lines as the cache has ways; the lines
# beyond that evict each other at every echo), and the misses per echo with the host's cache
# and with a cache of the same size that is fully associative, where only a path longer
# than the cache misses.
#
#   cargo build --release -p sockeye-cli -p sockeye-bench-peers
#   bash benches/hot-code.sh SERVER CONNECTIONS SIZE ECHOES
#
# e.g. `bash benches/hot-code.sh sockeye 200 16KiB 10000` (under a minute), then the
# same with `tokio-websockets`. Needs valgrind.
set -euo pipefail

usage() {
    sed -n '2,16p' "$0" >&2
    exit 2
}

[[ $# -eq 4 && $4 =~ ^[1-9][0-9]*$ ]] || usage
server=$1 connections=$2 size=$3 echoes=$4

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

misses() {
    awk '$1 == "L1" && $2 == "instruction" { gsub(",", "", $4); print $4 }'
}

host=()
for n in "$echoes" $((3 * echoes)); do
    host+=("$(bash "$here/callgrind.sh" --cache --instr --out "$work/$n.out" "$server" \
        "$connections" "$size" "$n" | misses)")
done
geometry=$(sed -n 's/^desc: I1 cache: *\([0-9]*\) B, \([0-9]*\) B, \([0-9]*\)-way.*/\1 \2 \3/p' \
    "$work/$echoes.out")
read -r bytes line ways <<< "$geometry"
[[ -n $ways ]] || { echo "no I1 geometry in callgrind's output" >&2; exit 1; }
full=()
for n in "$echoes" $((3 * echoes)); do
    full+=("$(bash "$here/callgrind.sh" --i1 "$bytes,$((bytes / line)),$line" "$server" \
        "$connections" "$size" "$n" | misses)")
done

echo "$server, $connections connections, $size, one echo in steady state" \
    "($echoes and $((3 * echoes)) echoes):"
python3 - "$work/$echoes.out" "$work/$((3 * echoes)).out" $((2 * echoes)) "$bytes" "$line" \
    "$ways" "${host[@]}" "${full[@]}" << 'EOF'
import collections, re, sys

def counts(path):
    """Instructions run, by (object, address), and the function of each address, from
    callgrind's output with per-instruction positions (`--dump-instr=yes
    --compress-pos=no`): a cost line is `ADDRESS LINE Ir ...`; the line after `calls=`
    is a call's inclusive cost, not the caller's own."""
    runs, function = collections.Counter(), {}
    names = {"ob": {}, "fn": {}}
    ob = fn = None
    skip = False
    for text in open(path):
        if skip:
            skip = False
            continue
        # A name is given once with its number, then by the number alone; a called
        # function's or object's (`cfn=`, `cob=`) counts as given.
        m = re.match(r"(c?)(ob|fn)=(?:\((\d+)\))? ?(.*)", text)
        if m:
            called, kind, ident, name = m.group(1), m.group(2), m.group(3), m.group(4).strip()
            if ident is not None:
                name = names[kind].setdefault(ident, name) if name else names[kind][ident]
            if not called and kind == "ob":
                ob = name
            elif not called:
                fn = name
            continue
        if text.startswith("calls="):
            skip = True
            continue
        if text.startswith("0x"):
            fields = text.split()
            if len(fields) >= 3:
                key = (ob, int(fields[0], 16))
                runs[key] += int(fields[2])
                function[key] = fn
    if not runs:
        sys.exit(f"no per-instruction counts in {path}")
    return runs, function

def owner(ob, fn):
    """The crate a function comes from, or the shared object outside the program."""
    if ob and re.search(r"\.so(\.|$)", ob):
        return ob.rsplit("/", 1)[-1]
    first = re.sub(r"^[<&\s]+", "", fn or "?").split("::", 1)[0]
    return first or "?"

short, _ = counts(sys.argv[1])
long, function = counts(sys.argv[2])
echoes = int(sys.argv[3])
size, line, ways = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
host_short, host_long, full_short, full_long = map(int, sys.argv[7:11])
sets = size // (line * ways)

hot = [key for key in long if (long[key] - short.get(key, 0)) / echoes >= 0.5]
lines = {}
for ob, address in hot:
    lines.setdefault((ob, address // line), owner(ob, function[(ob, address)]))
per_set = collections.Counter(number % sets for _, number in lines)
crowded = sorted((n for n in per_set.values() if n > ways), reverse=True)
by_owner = collections.Counter(lines.values())

print(f"  first-level instruction cache: {size} B, {ways}-way, {line} B lines, {sets} sets")
print(f"  hot code: {len(hot):,} instructions on {len(lines)} lines"
      f" ({len(lines) * line / 1024:.1f} KiB), each run at least once per echo")
print("    lines by crate: " + ", ".join(f"{name} {n}" for name, n in by_owner.most_common(8)))
print(f"  lines per set: at most {max(per_set.values())}; {len(crowded)} of {sets} sets"
      f" hold more than {ways}" + (f" ({', '.join(map(str, crowded))})" if crowded else ""))
print(f"  misses per echo: {(host_long - host_short) / echoes:.1f} with {ways} ways,"
      f" {(full_long - full_short) / echoes:.1f} with the same {size // 1024} KiB fully"
      " associative")
EOF
