-- wrk script: one `tools/list` per request in the 2026-07-28 era (stateless, no session), the
-- request the benchmark's federation cells send, so that its figures can be checked with an
-- independent load generator:
--   wrk -t1 -c1 -d3s --latency -s tests/wrk/tools_list.lua http://127.0.0.1:PORT/mcp
-- Any answer other than 200 is counted as an error (wrk prints "Non-2xx or 3xx responses").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/list"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{'
  .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
