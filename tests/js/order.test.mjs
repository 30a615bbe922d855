// Delivery order: a burst of back-to-back relays from one sender to one
// target arrives complete and in the order sent, over websocket and over
// polling (where engine.io-client batches many packets into one request).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { closeAll, connect, emitWithAck, recorder, startServer } from './server.mjs';

const BURST = 2000;
const BURST_TIMEOUT_MS = 20000;

let server;

before(async () => {
  // A burst of 2000 is far past the default EVENT_BURST on purpose.
  server = await startServer({ extraEnv: { EVENTS_PER_SECOND: '1000000', EVENT_BURST: '1000000' } });
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

async function burst(transport) {
  const R = `order-${transport}`;
  const opts = { transports: [transport] };
  const sockets = [];
  try {
    const alice = await connect(server.url, opts);
    sockets.push(alice);
    const bob = await connect(server.url, opts);
    sockets.push(bob);
    assert.equal(alice.io.engine.transport.name, transport);
    assert.equal(bob.io.engine.transport.name, transport);
    const aliceRec = recorder(alice);
    assert.equal((await emitWithAck(alice, 'join-room', { roomId: R, userId: 'alice' }))?.ok, true);
    assert.equal((await emitWithAck(bob, 'join-room', { roomId: R, userId: 'bob' }))?.ok, true);

    const seqs = [];
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`bob got ${seqs.length} of ${BURST} candidates within ${BURST_TIMEOUT_MS} ms`)),
        BURST_TIMEOUT_MS,
      );
      bob.on('ice-candidate', (data) => {
        seqs.push(data?.candidate?.seq);
        if (seqs.length === BURST) {
          clearTimeout(timer);
          resolve();
        }
      });
      // Fail fast if the sender is told a relay failed (rate-limited, target-busy...).
      alice.on('signaling-error', (e) => {
        clearTimeout(timer);
        reject(new Error(`alice got signaling-error after bob received ${seqs.length}: ${JSON.stringify(e)}`));
      });
    });

    for (let i = 0; i < BURST; i++) {
      alice.emit('ice-candidate', { roomId: R, targetId: 'bob', candidate: { seq: i } });
    }
    await done;

    const expected = Array.from({ length: BURST }, (_, i) => i);
    if (seqs.some((s, i) => s !== i)) {
      const first = seqs.findIndex((s, i) => s !== i);
      assert.fail(`out of order from index ${first}: ${JSON.stringify(seqs.slice(first, first + 10))}`);
    }
    assert.deepEqual(seqs, expected);

    // After the burst, a relay with an ack still works and nothing else arrived.
    const last = await emitWithAck(alice, 'ice-candidate', { roomId: R, targetId: 'bob', candidate: null });
    assert.equal(last?.ok, true, `ack after the burst: ${JSON.stringify(last)}`);
    assert.deepEqual(aliceRec.received.filter((r) => r.event === 'signaling-error'), []);
  } finally {
    closeAll(...sockets);
  }
}

describe('ordering', () => {
  for (const transport of ['websocket', 'polling']) {
    test(`${BURST} back-to-back ice-candidate relays arrive complete and in order over ${transport}`, () =>
      burst(transport));
  }
});
