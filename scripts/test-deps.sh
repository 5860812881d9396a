#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo: a Python virtual environment at
# target/interop-venv with the `websockets` package, the independent peer of the interop
# tests (crates/sockeye/tests/interop_python.rs).
#
# Safe to run again: it does nothing when the venv already imports the pinned version.
# Works unattended (CI=true, no stdin); needs python3 (3.9 or newer) with its venv module,
# and PyPI. Set PYTHON to use another interpreter for creating the venv.
set -euo pipefail

WEBSOCKETS_VERSION=17.4

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/interop-venv"
python=${PYTHON:-python3}

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

if venv_ready; then
    log "websockets $WEBSOCKETS_VERSION already installed in $venv"
    exit 0
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
