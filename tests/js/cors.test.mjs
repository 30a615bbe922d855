// Browser origins: CORS headers on the polling transport and on REST, and the
// Origin check on websocket upgrades.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

import {
  ALLOWED_ORIGIN,
  EVIL_ORIGIN,
  TIMEOUT_MS,
  closeAll,
  connect,
  emitWithAck,
  startServer,
  waitConnected,
} from './server.mjs';

const POLLING_PATH = '/socket.io/?EIO=4&transport=polling';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

/**
 * One HTTP request with exactly the headers given (node:http, so a browser's
 * Origin header is sent as is); resolves { status, headers } after the body.
 */
function request(path, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, server.url),
      { method, headers, agent: false, timeout: TIMEOUT_MS },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function preflight(path, origin) {
  return request(path, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    },
  });
}

describe('CORS', () => {
  for (const [name, path] of [
    ['polling transport', POLLING_PATH],
    ['GET /api/rooms', '/api/rooms'],
  ]) {
    test(`${name}: an allowed origin gets CORS headers on GET`, async () => {
      const res = await request(path, { headers: { origin: ALLOWED_ORIGIN } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
    });

    test(`${name}: an allowed origin's preflight succeeds`, async () => {
      const res = await preflight(path, ALLOWED_ORIGIN);
      assert.ok(res.status >= 200 && res.status < 300, `preflight status ${res.status}`);
      assert.equal(res.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      const methods = (res.headers['access-control-allow-methods'] ?? '').toUpperCase();
      assert.ok(methods.includes('POST'), `allowed methods: ${methods}`);
    });

    test(`${name}: a disallowed origin gets no access-control-allow-origin`, async () => {
      const get = await request(path, { headers: { origin: EVIL_ORIGIN } });
      assert.equal(get.headers['access-control-allow-origin'], undefined, 'GET');
      const pre = await preflight(path, EVIL_ORIGIN);
      assert.equal(pre.headers['access-control-allow-origin'], undefined, 'OPTIONS');
    });
  }

  test('a request without Origin is still served (non-browser clients)', async () => {
    const res = await request('/api/rooms');
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });
});

describe('websocket Origin check', () => {
  test('socket.io-client 4.8 over websocket with a disallowed Origin gets connect_error', async () => {
    const socket = io(server.url, {
      forceNew: true,
      reconnection: false,
      timeout: TIMEOUT_MS,
      transports: ['websocket'],
      extraHeaders: { origin: EVIL_ORIGIN },
    });
    try {
      await assert.rejects(waitConnected(socket), (err) => {
        assert.ok(err instanceof Error);
        assert.doesNotMatch(err.message, /did not connect within/, 'refused, not timed out');
        // engine.io-client's TransportError wraps the ws handshake failure.
        const cause = String(err.description?.message ?? err.description ?? '');
        assert.match(cause, /403/, `the upgrade was refused with 403: ${cause}`);
        return true;
      });
      assert.equal(socket.connected, false);
      // The server says why: the origin check, not some other failure.
      const logged = await server.waitForLog(
        (l) => l.message === 'websocket upgrade from a disallowed origin refused',
      );
      assert.match(String(logged.origin), /evil\.test/);
    } finally {
      closeAll(socket);
    }
  });

  test('socket.io-client 4.8 over websocket with an allowed Origin connects and works', async () => {
    const socket = await connect(server.url, {
      transports: ['websocket'],
      extraHeaders: { origin: ALLOWED_ORIGIN },
    });
    try {
      assert.equal(socket.io.engine.transport.name, 'websocket');
      const ack = await emitWithAck(socket, 'join-room', { roomId: 'origin-ok', userId: 'alice' });
      assert.equal(ack?.ok, true);
    } finally {
      closeAll(socket);
    }
  });

  /** Opens a raw websocket with `origin` (or none); resolves the outcome. */
  function rawUpgrade(origin) {
    const url = `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, origin ? { origin } : {});
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('websocket upgrade got no answer'));
      }, TIMEOUT_MS);
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        res.resume();
        req.destroy();
        resolve({ status: res.statusCode });
      });
      ws.once('open', () => {
        clearTimeout(timer);
        ws.close();
        resolve({ status: 101 });
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  test('raw websocket upgrade: disallowed Origin -> 403, allowed or no Origin -> 101', async () => {
    assert.equal((await rawUpgrade(EVIL_ORIGIN)).status, 403);
    assert.equal((await rawUpgrade(ALLOWED_ORIGIN)).status, 101);
    assert.equal((await rawUpgrade(null)).status, 101);
  });
});
