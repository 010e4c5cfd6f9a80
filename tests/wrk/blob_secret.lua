-- wrk script: one `tools/call` of the echo backend's `blob` tool per request, a 1 MiB result
-- that ends with an AWS access key id, in the 2026-07-28 era: the benchmark's mediation cells
-- "1 MiB + key" (what redaction costs when it has something to replace):
--   wrk -t1 -c1 -d10s --latency -s tests/wrk/blob_secret.lua http://127.0.0.1:PORT/mcp/echo
-- Throughput is wrk's "Transfer/sec". Any answer other than 200 is counted as an error.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "blob"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"blob",'
  .. '"arguments":{"size":1048576,"secret":true},'
  .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
