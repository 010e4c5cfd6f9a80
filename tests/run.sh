#!/usr/bin/env bash
# The whole Underpass test suite, from a fresh clone:
#   1. installs the real MCP peers (pinned npm and PyPI packages) into target/peers/,
#      nftables + iproute2 (apt-get, as root) when `nft` or `ip` is missing, and chromium
#      (the dashboard test's headless browser) when missing,
#   2. checks formatting and lints,
#   3. builds the release binaries once,
#   4. runs every fuzz target briefly (FUZZ_SECONDS each, default 5; cargo-fuzz is installed
#      into target/tools on first use, the targets built into target/fuzz),
#   5. runs every unit and end-to-end test against the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing MCP peers into target/peers"
bash tests/peers/install.sh

echo "==> network fault tools (ip, nft) for tests/tests/network_faults.rs"
if ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2
  else
    echo "warning: nft/ip missing and cannot be installed here (needs root and apt-get);" \
      "the network fault tests will fail and say so" >&2
  fi
fi

echo "==> headless Chromium for tests/tests/dashboard.rs"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "warning: chromium missing and cannot be installed here (needs root and apt-get);" \
      "the dashboard test will fail and say so" >&2
  fi
fi

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
