// node-echo.mjs: a Node.js MCP echo backend for the benchmark's peers mode, written as most MCP
// servers on Node answer: `http.createServer`, one JSON body per POST, `writeHead` + `end`
// without a Content-Length, so every answer goes out with chunked transfer encoding.
//
// Stateless 2026-07-28 era only (MCP-Protocol-Version: 2026-07-28 on every POST; Mcp-Method
// and, on tools/call, Mcp-Name must agree with the body: 400, -32020 otherwise). Tools as
// underpass-echo-backend serves them, with the same result shape:
//   echo {message}  -> one text content block holding message
//   blob {size}     -> a text of `size` bytes of "x"
//
//   node tests/peers/node-echo.mjs --listen 127.0.0.1:3002   # http://127.0.0.1:3002/mcp
import http from "node:http";

const MODERN = "2026-07-28";
const MAX_REQUEST = 16 * 1024 * 1024;
const MAX_BLOB = 256 * 1024 * 1024;

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const listen = arg("--listen", "127.0.0.1:3002");
const sep = listen.lastIndexOf(":");
const host = listen.slice(0, sep);
const port = Number(listen.slice(sep + 1));
if (!["127.0.0.1", "::1", "localhost"].includes(host)) {
  console.error("node-echo: refusing to listen on a non-loopback address");
  process.exit(1);
}

function send(res, status, body) {
  // No Content-Length: Node answers HTTP/1.1 keep-alive requests chunked.
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(body);
}

function rpcError(res, status, id, code, message) {
  send(res, status, JSON.stringify({ jsonrpc: "2.0", id: id ?? null, error: { code, message } }));
}

function result(id, value) {
  return JSON.stringify({ jsonrpc: "2.0", id, result: { ...value, resultType: "complete" } });
}

function handle(req, res, body) {
  let rpc;
  try {
    rpc = JSON.parse(body);
  } catch (e) {
    return rpcError(res, 400, null, -32700, `parse error: ${e.message}`);
  }
  if (typeof rpc !== "object" || rpc === null || typeof rpc.method !== "string") {
    return rpcError(res, 400, null, -32600, "not a JSON-RPC request");
  }
  if (req.headers["mcp-method"] !== rpc.method) {
    return rpcError(res, 400, rpc.id, -32020, "Mcp-Method header does not match the body");
  }
  const params = rpc.params ?? {};
  if (rpc.method === "tools/call" && req.headers["mcp-name"] !== params.name) {
    return rpcError(res, 400, rpc.id, -32020, "Mcp-Name header does not match the body");
  }
  if (rpc.id === undefined) {
    res.writeHead(202);
    return res.end();
  }
  switch (rpc.method) {
    case "server/discover":
    case "initialize":
      return send(res, 200, result(rpc.id, {
        protocolVersion: MODERN,
        capabilities: { tools: {} },
        serverInfo: { name: "node-echo", version: "1" },
      }));
    case "ping":
      return send(res, 200, JSON.stringify({ jsonrpc: "2.0", id: rpc.id, result: {} }));
    case "tools/list":
      return send(res, 200, result(rpc.id, {
        tools: [
          { name: "echo", description: "Returns message", inputSchema: { type: "object", properties: { message: { type: "string" } }, required: ["message"] } },
          { name: "blob", description: "Returns a text of size bytes", inputSchema: { type: "object", properties: { size: { type: "integer" } }, required: ["size"] } },
        ],
      }));
    case "tools/call": {
      const a = params.arguments ?? {};
      let text;
      if (params.name === "echo" && typeof a.message === "string") {
        text = a.message;
      } else if (params.name === "blob" && Number.isInteger(a.size) && a.size >= 0 && a.size <= MAX_BLOB) {
        text = "x".repeat(a.size);
      } else {
        return rpcError(res, 200, rpc.id, -32602, "echo needs message, blob needs size <= 256 MiB");
      }
      return send(res, 200, result(rpc.id, { content: [{ type: "text", text }], isError: false }));
    }
    default:
      return rpcError(res, 200, rpc.id, -32601, `method not found: ${rpc.method}`);
  }
}

const server = http.createServer((req, res) => {
  if (req.url !== "/mcp") {
    return rpcError(res, 404, null, -32600, "the endpoint is /mcp");
  }
  if (req.method !== "POST") {
    res.setHeader("Allow", "POST");
    return rpcError(res, 405, null, -32600, "POST only (stateless 2026-07-28 server)");
  }
  if (req.headers["mcp-protocol-version"] !== MODERN) {
    return rpcError(res, 400, null, -32600, `this server speaks ${MODERN} only`);
  }
  const parts = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_REQUEST) {
      rpcError(res, 413, null, -32600, "request body too large");
      req.destroy();
      return;
    }
    parts.push(c);
  });
  req.on("end", () => {
    if (size <= MAX_REQUEST) handle(req, res, Buffer.concat(parts).toString("utf8"));
  });
});
// Keep-alive connections of the load generators stay open between their requests.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(port, host, () => {
  console.log(`node-echo listening on http://${host}:${server.address().port}/mcp`);
});
