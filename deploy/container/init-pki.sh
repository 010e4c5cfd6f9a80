#!/usr/bin/env bash
# Writes what deploy/container/compose.yaml mounts into DIR (default deploy/container/state):
# a throwaway PKI (the edge certificate names the compose host `edge` and localhost), edge.toml,
# connector.toml, policy.toml. Uses underpass-certs from target/release (cargo build --release
# -p underpass-certs) or from PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/state}"
certs="$here/../../target/release/underpass-certs"
[[ -x "$certs" ]] || certs="$(command -v underpass-certs)"
mkdir -p "$dir"
"$certs" init --dir "$dir/pki" >/dev/null
"$certs" issue edge --dir "$dir/pki" --name edge --san edge --san localhost --san 127.0.0.1 >/dev/null
"$certs" issue connector --dir "$dir/pki" --name dc1 >/dev/null
# The containers run as uid 10001: keys readable by it (the folder is the operator's).
chmod 0644 "$dir/pki/edge.key" "$dir/pki/dc1.key"

cat >"$dir/edge.toml" <<'TOML'
[clients]
listen = "0.0.0.0:8443"
cert = "pki/edge.crt"
key = "pki/edge.key"

[tunnel]
listen = "0.0.0.0:7844"
cert = "pki/edge.crt"
key = "pki/edge.key"
ca = "pki/ca.crt"

[admin]
listen = "0.0.0.0:9090"   # published on the host's loopback only (compose.yaml)

[auth]
anonymous = true          # development only: give clients identities for anything else

[policy]
file = "policy.toml"

[[services]]
name = "demo"
connectors = ["dc1"]
TOML

cat >"$dir/policy.toml" <<'TOML'
# Everyone may use the demo's tools, resources and prompts (development only).
[[allow]]
principals = ["anonymous"]
tools = ["*"]
resources = ["*"]
prompts = ["*"]
TOML

cat >"$dir/connector.toml" <<'TOML'
name = "dc1"
edges = ["edge:7844"]
edge_server_name = "edge"
cert = "pki/dc1.crt"
key = "pki/dc1.key"
ca = "pki/ca.crt"

[[services]]
name = "demo"
url = "http://demo:3001/mcp"
TOML
echo "$dir: pki/, edge.toml, connector.toml, policy.toml"
