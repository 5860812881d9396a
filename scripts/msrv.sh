#!/usr/bin/env bash
# Checks that the libraries and the CLI build with the Rust release the workspace declares
# as its `rust-version` (Cargo.toml), with every feature, with none, and with their tests.
# Installs that toolchain with rustup (minimal profile) if it is missing; builds into a
# target directory of its own so that the main build's artefacts are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
    echo "msrv.sh: no rust-version in Cargo.toml" >&2
    exit 1
fi
if ! rustup run "$version" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$version" --profile minimal
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/msrv}"
crates=(-p sockeye-proto -p sockeye -p sockeye-cli)
cargo "+$version" check "${crates[@]}" --all-features --all-targets
cargo "+$version" check "${crates[@]}" --no-default-features
echo "msrv.sh: sockeye-proto, sockeye and sockeye-cli build with Rust $version"
