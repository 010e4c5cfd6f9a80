#!/usr/bin/env bash
# Brings up a whole Underpass locally: throwaway PKI, edge, connector, and the Rust demo MCP
# server behind the connector. Prints the URL an MCP client connects to. Ctrl-C stops it all.
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

echo "==> building (release)"
cargo build --release --locked --bins -p underpass-certs -p underpass-edge -p underpass-connector -p underpass-tests
BIN=$ROOT/target/release

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
listen = "127.0.0.1:$ADMIN_PORT"

[auth]
anonymous = true     # development only

[policy]
allow_all = true     # development only

[[services]]
name = "demo"
connectors = ["dc1"]
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
cat <<MSG

Underpass is up.  MCP endpoint:  $URL
  (TLS by a throwaway CA: $WORK/pki/ca.crt)

Try it:
  curl --cacert $WORK/pki/ca.crt $URL \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

  Node MCP clients:   NODE_EXTRA_CA_CERTS=$WORK/pki/ca.crt npx @modelcontextprotocol/inspector
                      (transport: Streamable HTTP, URL: $URL)
  Python MCP clients: SSL_CERT_FILE=$WORK/pki/ca.crt python your_client.py
Health: http://127.0.0.1:$ADMIN_PORT/readyz     Logs: $WORK/*.log

Ctrl-C to stop.
MSG
wait -n "${PIDS[@]}" || true
echo "a process exited; last log lines:"; tail -n 5 "$WORK"/*.log
