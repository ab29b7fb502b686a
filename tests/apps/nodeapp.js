#!/usr/bin/env node
// Test server for the Node.js recipe (README.rst, "Recipes: the servers you run"), standard
// library only. `GET /` answers `VERSION PID http` (VERSION from APP_VERSION). Under
// littleboss it serves on the inherited socket (fd 3); run on its own it binds
// HOST:PORT (first argument, default 127.0.0.1:8080). The functions between the two "recipe" lines are
// README's recipe, verbatim (tests/test_recipes.py checks that).
'use strict';
const http = require('http');

// --- recipe ---
const net = require('net');

// Serve on the socket littleboss holds (fd 3), or on `address` when run on its own.
function listen(server, address) {
  const inherited = process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS >= 1;
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete process.env[name];  // not for children
  server.listen(inherited ? {fd: 3} : address);
}

// On SIGTERM: stop accepting (new connections wait in supervisord's socket for the new
// process), answer the next request on each open connection with `Connection: close`,
// and close connections still idle after `grace` ms. Node exits once the last one is gone.
function drainOnSigterm(server, grace = 1000) {
  process.once('SIGTERM', () => {
    // Not server.close(): since Node 19 it also closes idle keep-alive connections at
    // once, and a client sending its next request on one at that instant sees a reset.
    net.Server.prototype.close.call(server);
    server.prependListener('request', (req, res) => res.setHeader('Connection', 'close'));
    setTimeout(() => server.closeIdleConnections(), grace).unref();
  });
}
// --- recipe ---

const VERSION = process.env.APP_VERSION || 'v1';
const server = http.createServer((req, res) => {
  const body = `${VERSION} ${process.pid} http\n`;
  res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
});
server.on('listening', () => console.log(`nodeapp ${VERSION} pid ${process.pid} serving`));
const [host, port] = (process.argv[2] || '127.0.0.1:8080').split(/:(?=\d+$)/);
listen(server, {host, port: Number(port)});  // the address when run on its own
drainOnSigterm(server);
