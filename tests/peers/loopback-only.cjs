// Preload that makes a Node server bind to loopback when it calls listen(port[, cb]) without a host
// (server-everything's streamableHttp/sse transports do `app.listen(PORT)`, i.e. all interfaces):
//   PORT=3001 node --require ./tests/peers/loopback-only.cjs <server-everything>/dist/index.js streamableHttp
// Host: UNDERPASS_BIND_HOST, default 127.0.0.1. Calls that name a host, a path or an options object are untouched.
'use strict';
const net = require('node:net');
const host = process.env.UNDERPASS_BIND_HOST || '127.0.0.1';
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function patchedListen(...args) {
  const p = args[0];
  const isPort = typeof p === 'number' || (typeof p === 'string' && /^\d+$/.test(p));
  if (isPort && (args.length === 1 || typeof args[1] === 'function')) {
    return orig.call(this, Number(p), host, ...args.slice(1));
  }
  return orig.apply(this, args);
};
