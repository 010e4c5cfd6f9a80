#!/usr/bin/env node
// Tiny TLS-terminating reverse proxy (Node built-ins only) for testing the clients' HTTPS options:
//   node tls-proxy.mjs --listen 127.0.0.1:8444 --cert srv.crt --key srv.key --upstream http://127.0.0.1:3001 [--client-ca ca.crt]
// With --client-ca the proxy requires a client certificate chained to that CA (mutual TLS).
// Streams request and response bodies unbuffered (SSE works). Prints "listening <url>" on stderr when ready.
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
for (const k of ['listen', 'cert', 'key', 'upstream']) {
  if (!args[k]) { console.error(`tls-proxy: --${k} is required`); process.exit(2); }
}
const [host, port] = [args.listen.slice(0, args.listen.lastIndexOf(':')), Number(args.listen.slice(args.listen.lastIndexOf(':') + 1))];
const upstream = new URL(args.upstream);
const opts = { cert: readFileSync(args.cert), key: readFileSync(args.key) };
if (args['client-ca']) Object.assign(opts, { ca: readFileSync(args['client-ca']), requestCert: true, rejectUnauthorized: true });

const server = https.createServer(opts, (req, res) => {
  const headers = { ...req.headers, host: upstream.host };
  const peer = req.socket.getPeerCertificate && req.socket.getPeerCertificate();
  if (peer && peer.subject) headers['x-tls-client-subject'] = peer.subject.CN || '';
  const up = http.request({ host: upstream.hostname, port: upstream.port || 80, method: req.method, path: req.url, headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    res.flushHeaders();
    ur.pipe(res);
  });
  up.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
  req.pipe(up);
  res.on('close', () => up.destroy());
});
server.listen(port, host, () => console.error(`listening https://${args.listen}`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
