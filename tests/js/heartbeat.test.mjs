// Heartbeats keep a live client connected, for both engine.io protocols:
// EIO=4 (socket.io-client 4.8: the server pings, the client pongs) and EIO=3
// (socket.io-client 2.5: the client pings, the server pongs). The server runs
// with a 150 ms interval and a 150 ms timeout, so a heartbeat the server failed
// to register would close the connection within 300 ms; each test waits for
// several heartbeats instead, then checks the connection still works.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { TIMEOUT_MS, closeAll, closeV2, connect, connectV2, emitWithAck, startServer, withTimeout } from './server.mjs';

const BEATS = 5;
let server;

before(async () => {
  server = await startServer({ extraEnv: { PING_INTERVAL_MS: '150', PING_TIMEOUT_MS: '150' } });
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

/** Resolves after `emitter` emitted `event` `count` times; rejects on a disconnect first. */
function beats(emitter, event, socket, count = BEATS) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let seen = 0;
      emitter.on(event, () => {
        seen += 1;
        if (seen === count) resolve();
      });
      socket.on('disconnect', (reason) => reject(new Error(`disconnected after ${seen} ${event}s: ${reason}`)));
    }),
    TIMEOUT_MS,
    `fewer than ${count} ${event}s`,
  );
}

async function stillWorks(socket, user) {
  assert.equal(socket.connected, true);
  const ack = await emitWithAck(socket, 'join-room', { roomId: 'heartbeat', userId: user });
  assert.equal(ack.ok, true, JSON.stringify(ack));
}

describe('heartbeats', () => {
  for (const transport of ['websocket', 'polling']) {
    test(`socket.io-client 4.8 answers ${BEATS} server pings over ${transport} and stays connected`, async () => {
      const socket = await connect(server.url, { transports: [transport] });
      try {
        await beats(socket.io, 'ping', socket);
        await stillWorks(socket, `modern-${transport}`);
      } finally {
        closeAll(socket);
      }
    });

    test(`socket.io-client 2.5 gets ${BEATS} pongs to its pings over ${transport} and stays connected`, async () => {
      const socket = await connectV2(server.url, transport);
      try {
        await beats(socket, 'pong', socket);
        await stillWorks(socket, `legacy-${transport}`);
      } finally {
        await closeV2(socket);
      }
    });
  }
});
