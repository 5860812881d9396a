#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, the independent peers of the interop
# tests:
#   - a Python virtual environment at target/interop-venv with the `websockets` package
#     (crates/sockeye/tests/interop_python.rs);
#   - the Node.js packages `ws` and `playwright-core` at target/interop-node, at the
#     versions that crates/sockeye/tests/interop/node/package-lock.json pins
#     (crates/sockeye/tests/interop_node.rs, and interop_browser.rs, where
#     playwright-core drives the browser);
#   - Chromium, from Debian's package `chromium` (interop_browser.rs), unless $CHROMIUM
#     names another build.
#
# Safe to run again: it does nothing for a peer already installed at its pinned version.
# Works unattended (CI=true, no stdin); needs python3 (3.9 or newer) with its venv module
# and PyPI, Node.js (18 or newer) with npm and the npm registry, and for Chromium apt-get
# with root rights (or a Chromium already installed). Set PYTHON to use another
# interpreter for creating the venv.
set -euo pipefail

WEBSOCKETS_VERSION=17.4

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/interop-venv"
python=${PYTHON:-python3}
node_src="$root/crates/sockeye/tests/interop/node"
node_dir="$root/target/interop-node"
chromium=${CHROMIUM:-/usr/bin/chromium}

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

# True when target/interop-node was installed from the current package files and its
# packages load there.
node_ready() {
    cmp -s "$node_src/package-lock.json" "$node_dir/package-lock.json" &&
        (cd "$node_dir" && node -e "require('ws'); require('playwright-core')") >/dev/null 2>&1
}

node_peer() {
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "no $tool on PATH: install Node.js (18 or newer) with npm"
            exit 1
        fi
    done
    if node_ready; then
        log "ws and playwright-core already installed in $node_dir"
        return 0
    fi
    log "installing ws and playwright-core (crates/sockeye/tests/interop/node/package-lock.json) in $node_dir"
    mkdir -p "$node_dir"
    cp "$node_src/package.json" "$node_src/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
    if ! node_ready; then
        log "the packages were installed but node cannot load them from $node_dir"
        exit 1
    fi
    log "ws and playwright-core installed in $node_dir"
}

chromium_ready() {
    "$chromium" --version >/dev/null 2>&1
}

browser_peer() {
    if chromium_ready; then
        log "$("$chromium" --version 2>/dev/null) at $chromium"
        return 0
    fi
    if [[ -n ${CHROMIUM:-} ]]; then
        log "CHROMIUM=$CHROMIUM does not run"
        exit 1
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "no Chromium at $chromium: install Debian's package chromium (as root:" \
            "apt-get install chromium), or set CHROMIUM to a Chromium or Chrome binary"
        exit 1
    fi
    log "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    # An outdated package list (a fresh machine's) is refreshed once, then retried.
    if ! apt-get install -y -q chromium </dev/null >/dev/null; then
        apt-get update -q </dev/null >/dev/null
        apt-get install -y -q chromium </dev/null >/dev/null
    fi
    if ! chromium_ready; then
        log "chromium was installed but $chromium does not run"
        exit 1
    fi
    log "$("$chromium" --version 2>/dev/null) installed at $chromium"
}

python_peer
node_peer
browser_peer
