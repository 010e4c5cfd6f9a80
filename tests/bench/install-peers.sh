#!/usr/bin/env bash
# Installs what `underpass-bench --peers` compares against and drives with:
#   - rathole and bore (crates.io, pinned versions) into target/bench-peers/bin, built from
#     source with cargo (bore --locked; rathole's lockfile no longer builds, see below); rathole without TLS, noise, websocket and hot-reload (the bench uses its
#     plain TCP transport, and the TLS feature needs native-tls and OpenSSL headers);
#   - wrk (Debian package), with apt-get when root and it is missing.
# Each is skipped when already installed at the pinned version.
#
#   bash tests/bench/install-peers.sh
set -euo pipefail

RATHOLE_VERSION=0.5.0
BORE_VERSION=0.6.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${root}/target/bench-peers"
mkdir -p "${dest}"

installed() { # name version
  [ -x "${dest}/bin/$1" ] && "${dest}/bin/$1" --version 2>&1 | grep -q "$2"
}

if installed rathole "${RATHOLE_VERSION}"; then
  echo "rathole ${RATHOLE_VERSION}: already in ${dest}/bin"
else
  # Not --locked: rathole 0.5.0's lockfile pins time 0.3.29, which no longer compiles with
  # Rust >= 1.80 (type inference change); the newest semver-compatible dependencies do.
  nice cargo install --root "${dest}" --version "${RATHOLE_VERSION}" \
    --no-default-features --features server,client rathole
fi

if installed bore "${BORE_VERSION}"; then
  echo "bore ${BORE_VERSION}: already in ${dest}/bin"
else
  nice cargo install --locked --root "${dest}" --version "${BORE_VERSION}" bore-cli ||
    nice cargo install --root "${dest}" --version "${BORE_VERSION}" bore-cli
fi

if command -v wrk >/dev/null 2>&1; then
  echo "wrk: $(command -v wrk)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
else
  echo "wrk is missing: install it (Debian: sudo apt-get install -y wrk)" >&2
  exit 1
fi

echo "peers ready: ${dest}/bin/rathole, ${dest}/bin/bore, $(command -v wrk)"
