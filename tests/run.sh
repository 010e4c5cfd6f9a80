#!/usr/bin/env bash
# The whole Underpass test suite, from a fresh clone:
#   1. installs the real MCP peers (pinned npm and PyPI packages) into target/peers/,
#   2. checks formatting and lints,
#   3. builds the release binaries once,
#   4. runs every fuzz target briefly (FUZZ_SECONDS each, default 5; cargo-fuzz is installed
#      into target/tools on first use, the targets built into target/fuzz),
#   5. runs every unit and end-to-end test against the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing MCP peers into target/peers"
bash tests/peers/install.sh

echo "==> formatting and lints"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
cargo clippy --release --locked --workspace --all-targets -- -D warnings

echo "==> building release binaries"
cargo build --release --locked --workspace --bins

echo "==> fuzzing every target for ${FUZZ_SECONDS:-5}s (the long run: fuzz/run.sh 10m)"
fuzz/run.sh "${FUZZ_SECONDS:-5}s"

echo "==> tests"
cargo test --release --locked --workspace
