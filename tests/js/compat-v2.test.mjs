// socket.io-client 2.5.0 (engine.io protocol 3, socket.io protocol 4) talks
// to the same rooms as socket.io-client 4.8.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { closeAll, closeV2, connect, connectV2, emitWithAck, once, recorder, startServer } from './server.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

async function v2Exchange(transport) {
  const R = `compat-v2-${transport}`;
  const sockets = [];
  try {
    // A 4.8 client is already in the room.
    const modern = await connect(server.url, { transports: ['websocket'] });
    sockets.push(modern);
    const modernRec = recorder(modern);
    const modernAck = await emitWithAck(modern, 'join-room', { roomId: R, userId: 'modern' });
    assert.equal(modernAck?.ok, true);

    // The 2.x client connects over EIO=3 with the one transport given.
    const legacy = await connectV2(server.url, transport);
    sockets.push(legacy);
    assert.equal(legacy.io.engine.transport.name, transport);
    assert.equal(String(legacy.io.engine.transport.query?.EIO), '3', 'the 2.x client speaks EIO=3');

    const roomUsers = once(legacy, 'room-users');
    const ack = await emitWithAck(legacy, 'join-room', { roomId: R, userId: 'legacy' });
    assert.equal(ack?.ok, true, `legacy join ack: ${JSON.stringify(ack)}`);
    assert.equal(ack.roomId, R);
    assert.deepEqual(ack.users, ['modern', 'legacy']);
    const users = await roomUsers;
    assert.equal(users.roomId, R);
    assert.deepEqual(users.users, ['modern', 'legacy']);
    const joined = await modernRec.waitFor('user-joined', (d) => d?.userId === 'legacy');
    assert.equal(joined.data.roomId, R);

    // modern -> legacy offer.
    const offerToLegacy = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=modern\r\n' };
    const legacyGotOffer = once(legacy, 'offer');
    const ack1 = await emitWithAck(modern, 'offer', { roomId: R, targetId: 'legacy', offer: offerToLegacy });
    assert.equal(ack1?.ok, true);
    const got1 = await legacyGotOffer;
    assert.equal(got1.roomId, R);
    assert.equal(got1.senderId, 'modern');
    assert.deepEqual(got1.offer, offerToLegacy);

    // legacy -> modern offer, with an ack from the 2.x client.
    const offerToModern = { type: 'offer', sdp: 'v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=legacy\r\n' };
    const ack2 = await emitWithAck(legacy, 'offer', { roomId: R, targetId: 'modern', offer: offerToModern });
    assert.equal(ack2?.ok, true, `legacy offer ack: ${JSON.stringify(ack2)}`);
    const got2 = await modernRec.waitFor('offer');
    assert.equal(got2.data.roomId, R);
    assert.equal(got2.data.senderId, 'legacy');
    assert.deepEqual(got2.data.offer, offerToModern);

    // End-of-candidates null from the 2.x client arrives as null.
    const ack3 = await emitWithAck(legacy, 'ice-candidate', { roomId: R, targetId: 'modern', candidate: null });
    assert.equal(ack3?.ok, true);
    const got3 = await modernRec.waitFor('ice-candidate');
    assert.equal(got3.data.senderId, 'legacy');
    assert.ok(Object.hasOwn(got3.data, 'candidate'));
    assert.equal(got3.data.candidate, null);

    // Errors reach a 2.x client too, as signaling-error when it sent no ack.
    const error = once(legacy, 'signaling-error');
    legacy.emit('offer', { roomId: R, targetId: 'nobody', offer: offerToModern });
    const e = await error;
    assert.equal(e.event, 'offer');
    assert.equal(e.code, 'target-not-found');

    // The 2.x client's disconnect is seen by the 4.8 peer.
    const left = modernRec.waitFor('user-left', (d) => d?.userId === 'legacy');
    await closeV2(legacy);
    assert.equal((await left).data.roomId, R);
  } finally {
    closeAll(...sockets);
  }
}

describe('socket.io-client 2.5.0 (EIO=3)', () => {
  for (const transport of ['websocket', 'polling']) {
    test(`joins a room with a 4.8 client and exchanges offers both ways over ${transport}`, () =>
      v2Exchange(transport));
  }
});
