#!/usr/bin/env bash
# The test command: installs the test dependencies (the Python and Node.js interop
# peers), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --workspace "$@"
