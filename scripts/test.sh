#!/usr/bin/env bash
# The test command: installs the test dependencies (the interop peers: Python's
# websockets, Node.js's ws, Chromium), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --workspace "$@"
