#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, the independent peers of the interop
# tests:
#   - a Python virtual environment at target/interop-venv with the `websockets` package
#     (crates/sockeye/tests/interop_python.rs);
#   - the Node.js package `ws` at target/interop-node, at the version that
#     crates/sockeye/tests/interop/node/package-lock.json pins
#     (crates/sockeye/tests/interop_node.rs).
#
# Safe to run again: it does nothing for a peer already installed at its pinned version.
# Works unattended (CI=true, no stdin); needs python3 (3.9 or newer) with its venv module
# and PyPI, and Node.js (18 or newer) with npm and the npm registry. Set PYTHON to use
# another interpreter for creating the venv.
set -euo pipefail

WEBSOCKETS_VERSION=17.4

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/interop-venv"
python=${PYTHON:-python3}
node_src="$root/crates/sockeye/tests/interop/node"
node_dir="$root/target/interop-node"

log() { printf 'test-deps: %s\n' "$*" >&2; }

# True when the venv's interpreter runs and imports the pinned websockets.
venv_ready() {
    [[ -x "$venv/bin/python" ]] &&
        "$venv/bin/python" - "$WEBSOCKETS_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import websockets
sys.exit(0 if websockets.__version__ == sys.argv[1] else 1)
PY
}

python_peer() {
    if venv_ready; then
        log "websockets $WEBSOCKETS_VERSION already installed in $venv"
        return 0
    fi
    if ! command -v "$python" >/dev/null 2>&1; then
        log "no $python on PATH: install Python 3 (with its venv module), or set PYTHON"
        exit 1
    fi
    # A venv whose interpreter does not run (its base Python was removed or upgraded) is
    # rebuilt from scratch; a working one only gets the package (re)installed.
    if [[ -e "$venv" ]] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
        log "removing a broken venv at $venv"
        rm -rf "$venv"
    fi
    if [[ ! -e "$venv" ]]; then
        log "creating a venv at $venv with $("$python" --version 2>&1)"
        mkdir -p "$root/target"
        "$python" -m venv "$venv"
    fi
    log "installing websockets==$WEBSOCKETS_VERSION"
    PIP_NO_INPUT=1 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "websockets==$WEBSOCKETS_VERSION" </dev/null
    if ! venv_ready; then
        log "websockets was installed but $venv/bin/python cannot import it"
        exit 1
    fi
    log "websockets $WEBSOCKETS_VERSION installed in $venv"
}

# True when target/interop-node was installed from the current package files and `ws`
# loads there.
node_ready() {
    cmp -s "$node_src/package-lock.json" "$node_dir/package-lock.json" &&
        (cd "$node_dir" && node -e "require('ws')") >/dev/null 2>&1
}

node_peer() {
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "no $tool on PATH: install Node.js (18 or newer) with npm"
            exit 1
        fi
    done
    if node_ready; then
        log "ws already installed in $node_dir"
        return 0
    fi
    log "installing ws (crates/sockeye/tests/interop/node/package-lock.json) in $node_dir"
    mkdir -p "$node_dir"
    cp "$node_src/package.json" "$node_src/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
    if ! node_ready; then
        log "ws was installed but node cannot load it from $node_dir"
        exit 1
    fi
    log "ws $(cd "$node_dir" && node -p "require('ws/package.json').version") installed in $node_dir"
}

python_peer
node_peer
