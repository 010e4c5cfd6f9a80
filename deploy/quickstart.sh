#!/usr/bin/env bash
# Brings up a whole Underpass locally, as a zero-trust setup: a throwaway PKI, an edge that
# admits only a client certificate or an API key, a default-deny policy that allows two tools
# and denies one, an audit log, a connector, and the Rust demo MCP server behind it. Prints the
# MCP URL, the dashboard URL, and three copy-paste examples (an allowed call, a denied call, the
# audit verified). Ctrl-C stops it all.
#
# Ports (override with env): UNDERPASS_CLIENT_PORT=8443 UNDERPASS_TUNNEL_PORT=7844
# UNDERPASS_ADMIN_PORT=9090 UNDERPASS_DEMO_PORT=3001
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENT_PORT=${UNDERPASS_CLIENT_PORT:-8443}
TUNNEL_PORT=${UNDERPASS_TUNNEL_PORT:-7844}
ADMIN_PORT=${UNDERPASS_ADMIN_PORT:-9090}
DEMO_PORT=${UNDERPASS_DEMO_PORT:-3001}

# UNDERPASS_BIN: use binaries already built there (tests do) instead of building.
if [[ -n "${UNDERPASS_BIN:-}" ]]; then
  BIN=$UNDERPASS_BIN
else
  echo "==> building (release)"
  cargo build --release --locked --bins -p underpass-certs -p underpass-edge -p underpass-connector -p underpass-tests
  BIN=$ROOT/target/release
fi

WORK=$(mktemp -d -t underpass-quickstart.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> stopped; throwaway files are in $WORK"
}
trap cleanup EXIT INT TERM

echo "==> throwaway PKI in $WORK/pki"
"$BIN/underpass-certs" init --dir "$WORK/pki" >/dev/null
"$BIN/underpass-certs" issue edge --dir "$WORK/pki" --name edge >/dev/null
"$BIN/underpass-certs" issue connector --dir "$WORK/pki" --name dc1 >/dev/null
# Two client identities: a certificate (mutual TLS) and an API key (bearer).
"$BIN/underpass-certs" issue client --dir "$WORK/pki" --name alice >/dev/null
API_KEY="uq_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
API_KEY_SHA256=$(printf '%s' "$API_KEY" | sha256sum | cut -d' ' -f1)
printf '%s\n' "$API_KEY" > "$WORK/api-key.txt"
chmod 600 "$WORK/api-key.txt"

cat > "$WORK/edge.toml" <<TOML
[clients]
listen = "127.0.0.1:$CLIENT_PORT"
cert = "pki/edge.crt"
key = "pki/edge.key"

[tunnel]
listen = "127.0.0.1:$TUNNEL_PORT"
cert = "pki/edge.crt"
key = "pki/edge.key"
ca = "pki/ca.crt"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"   # loopback: the dashboard and API need no operator identity

[auth]                             # no anonymous access: a client certificate or an API key
client_ca = "pki/ca.crt"
[[auth.api_keys]]
name = "quickstart"
sha256 = "$API_KEY_SHA256"         # the key itself is in api-key.txt, never in the config

[policy]
file = "policy.toml"

[audit]
file = "audit.jsonl"               # hash-chained, signed checkpoints (audit.jsonl.key)

[[services]]
name = "demo"
connectors = ["dc1"]
TOML

cat > "$WORK/policy.toml" <<'TOML'
# Default deny: only what a rule allows passes, and a deny rule wins.
[[allow]]
name = "quickstart-tools"
principals = ["apikey:quickstart", "client:alice"]
services = ["demo"]
tools = ["echo", "add"]

[[deny]]
name = "no-identity-dump"
principals = ["*"]
tools = ["whoami"]
TOML

cat > "$WORK/connector.toml" <<TOML
name = "dc1"
edges = ["127.0.0.1:$TUNNEL_PORT"]
edge_server_name = "localhost"
cert = "pki/dc1.crt"
key = "pki/dc1.key"
ca = "pki/ca.crt"

[[services]]
name = "demo"
url = "http://127.0.0.1:$DEMO_PORT/mcp"
TOML

"$BIN/underpass-demo-server" --listen "127.0.0.1:$DEMO_PORT" >"$WORK/demo.log" 2>&1 & PIDS+=($!)
"$BIN/underpass-edge" --config "$WORK/edge.toml" 2>"$WORK/edge.log" & PIDS+=($!)
"$BIN/underpass-connector" --config "$WORK/connector.toml" 2>"$WORK/connector.log" & PIDS+=($!)

echo "==> waiting for the tunnel"
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then
  echo "the tunnel did not come up; logs:"; tail -n 20 "$WORK"/*.log; exit 1
fi

URL="https://localhost:$CLIENT_PORT/mcp/demo"
CALL="curl -sS -w '\\n[HTTP %{http_code}]\\n' --cacert $WORK/pki/ca.crt $URL -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call'"
body() { # tool, arguments
  printf '%s' "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientInfo\":{\"name\":\"curl\",\"version\":\"1\"},\"io.modelcontextprotocol/clientCapabilities\":{}}}}"
}
cat <<MSG

Underpass is up, zero trust: no anonymous access, default-deny policy, every call audited.
  MCP endpoint:  $URL   (TLS by a throwaway CA: $WORK/pki/ca.crt)
  Identities:    API key in $WORK/api-key.txt (principal apikey:quickstart),
                 client certificate $WORK/pki/alice.crt + .key (principal client:alice)
  Policy:        $WORK/policy.toml (echo and add allowed, whoami denied)
  Audit log:     $WORK/audit.jsonl
  Dashboard:     http://127.0.0.1:$ADMIN_PORT/
  Health:        http://127.0.0.1:$ADMIN_PORT/readyz     Metrics: http://127.0.0.1:$ADMIN_PORT/metrics

1. An allowed call (200, the tool's answer):
  $CALL -H 'Mcp-Name: echo' -H "Authorization: Bearer \$(cat $WORK/api-key.txt)" \\
    -d '$(body echo '{"message":"hello through the tunnel"}')'

2. A denied call (403, JSON-RPC error -31403 naming the rule no-identity-dump; it never reaches the connector):
  $CALL -H 'Mcp-Name: whoami' --cert $WORK/pki/alice.crt --key $WORK/pki/alice.key \\
    -d '$(body whoami '{}')'

3. The audit trail of both, verified (hash chain and signed checkpoints):
  $BIN/underpass-edge audit verify $WORK/audit.jsonl

MCP clients: NODE_EXTRA_CA_CERTS=$WORK/pki/ca.crt npx @modelcontextprotocol/inspector (Streamable HTTP,
URL $URL, header Authorization: Bearer <the key>); Python: SSL_CERT_FILE=$WORK/pki/ca.crt.
Logs: $WORK/*.log    Ctrl-C to stop.
MSG
wait -n "${PIDS[@]}" || true
echo "a process exited; last log lines:"; tail -n 5 "$WORK"/*.log
