// Core signaling flow with socket.io-client 4.8, over websocket only and over
// HTTP long-polling only, plus the error contract.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  closeAll,
  connect,
  emitWithAck,
  getJson,
  once,
  recorder,
  startServer,
} from './server.mjs';

const RELAY_EVENTS = new Set(['offer', 'answer', 'ice-candidate']);

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

/** Asserts a successful join-room ack for `roomId` listing `users`. */
function assertJoinAck(ack, roomId, users) {
  assert.equal(ack?.ok, true, `join-room ack: ${JSON.stringify(ack)}`);
  assert.equal(ack.roomId, roomId);
  assert.deepEqual(ack.users, users);
}

/** Asserts a relay event's payload: room, sender and the body exactly as sent. */
function assertRelay(data, roomId, senderId, field, body) {
  assert.equal(data.roomId, roomId);
  assert.equal(data.senderId, senderId);
  assert.ok(Object.hasOwn(data, field), `relay carries "${field}": ${JSON.stringify(data)}`);
  assert.deepEqual(data[field], body);
}

/** Joins `userId` to `roomId` and checks the ack and the room-users event. */
async function join(socket, rec, roomId, userId, expectedUsers) {
  const ack = await emitWithAck(socket, 'join-room', { roomId, userId });
  assertJoinAck(ack, roomId, expectedUsers);
  const roomUsers = await rec.waitFor(
    'room-users',
    (d) => d?.roomId === roomId && d.users?.includes(userId) && d.users.length === expectedUsers.length,
  );
  assert.deepEqual(roomUsers.data.users, expectedUsers);
  return ack;
}

async function coreFlow(transport) {
  const R = `core-${transport}`;
  const opts = { transports: [transport] };
  const sockets = [];
  try {
    const alice = await connect(server.url, opts);
    sockets.push(alice);
    assert.equal(alice.io.engine.transport.name, transport);
    const aliceRec = recorder(alice);

    // Alice joins: ack and room-users list only her.
    const aliceAck = await emitWithAck(alice, 'join-room', { roomId: R, userId: 'alice' });
    assertJoinAck(aliceAck, R, ['alice']);
    const aliceUsers = await aliceRec.waitFor('room-users');
    assert.equal(aliceUsers.data.roomId, R);
    assert.deepEqual(aliceUsers.data.users, ['alice']);

    // Bob joins: Alice hears user-joined, Bob's ack and room-users list both in join order.
    const bob = await connect(server.url, opts);
    sockets.push(bob);
    const bobRec = recorder(bob);
    await join(bob, bobRec, R, 'bob', ['alice', 'bob']);
    const bobJoined = await aliceRec.waitFor('user-joined', (d) => d?.userId === 'bob');
    assert.equal(bobJoined.data.roomId, R);
    assert.equal(bobJoined.data.userId, 'bob');

    // Carol joins: a third peer who must not see relays between Alice and Bob.
    const carol = await connect(server.url, opts);
    sockets.push(carol);
    const carolRec = recorder(carol);
    await join(carol, carolRec, R, 'carol', ['alice', 'bob', 'carol']);
    await aliceRec.waitFor('user-joined', (d) => d?.userId === 'carol' && d.roomId === R);
    await bobRec.waitFor('user-joined', (d) => d?.userId === 'carol' && d.roomId === R);

    // Offer alice -> bob, with an ack; the body arrives exactly as sent.
    const offer = {
      type: 'offer',
      sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n',
    };
    const offerAck = await emitWithAck(alice, 'offer', { roomId: R, targetId: 'bob', offer });
    assert.equal(offerAck?.ok, true, `offer ack: ${JSON.stringify(offerAck)}`);
    const gotOffer = await bobRec.waitFor('offer');
    assertRelay(gotOffer.data, R, 'alice', 'offer', offer);

    // Answer bob -> alice.
    const answer = { type: 'answer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
    const answerAck = await emitWithAck(bob, 'answer', { roomId: R, targetId: 'alice', answer });
    assert.equal(answerAck?.ok, true, `answer ack: ${JSON.stringify(answerAck)}`);
    const gotAnswer = await aliceRec.waitFor('answer');
    assertRelay(gotAnswer.data, R, 'bob', 'answer', answer);

    // ICE both ways, each followed by the end-of-candidates null.
    const aliceCandidate = {
      candidate: 'candidate:842163049 1 udp 1677729535 127.0.0.1 54400 typ srflx raddr 0.0.0.0 rport 0 generation 0',
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'abcd',
    };
    const bobCandidate = { ...aliceCandidate, candidate: aliceCandidate.candidate.replace('54400', '54401') };
    for (const [from, toId, candidate] of [
      [alice, 'bob', aliceCandidate],
      [alice, 'bob', null],
      [bob, 'alice', bobCandidate],
      [bob, 'alice', null],
    ]) {
      const ack = await emitWithAck(from, 'ice-candidate', { roomId: R, targetId: toId, candidate });
      assert.equal(ack?.ok, true, `ice-candidate ack: ${JSON.stringify(ack)}`);
    }
    await bobRec.waitFor('ice-candidate', (d) => d?.candidate === null);
    await aliceRec.waitFor('ice-candidate', (d) => d?.candidate === null);
    const toBob = bobRec.received.filter((r) => r.event === 'ice-candidate').map((r) => r.data);
    const toAlice = aliceRec.received.filter((r) => r.event === 'ice-candidate').map((r) => r.data);
    assert.equal(toBob.length, 2);
    assert.equal(toAlice.length, 2);
    assertRelay(toBob[0], R, 'alice', 'candidate', aliceCandidate);
    assertRelay(toBob[1], R, 'alice', 'candidate', null);
    assertRelay(toAlice[0], R, 'bob', 'candidate', bobCandidate);
    assertRelay(toAlice[1], R, 'bob', 'candidate', null);

    // Carol got none of the targeted relays: the first relay she receives is
    // the one sent to her now (an earlier misrouted relay would arrive first).
    const carolOffer = { type: 'offer', sdp: 'v=0\r\ns=for-carol\r\n' };
    const carolAck = await emitWithAck(alice, 'offer', { roomId: R, targetId: 'carol', offer: carolOffer });
    assert.equal(carolAck?.ok, true);
    await carolRec.waitFor('offer');
    const carolRelays = carolRec.received.filter((r) => RELAY_EVENTS.has(r.event));
    assert.ok(carolRelays.length >= 1);
    assert.equal(carolRelays[0].event, 'offer');
    assertRelay(carolRelays[0].data, R, 'alice', 'offer', carolOffer);
    assert.equal(carolRelays.length, 1, `carol received only her relay: ${JSON.stringify(carolRelays)}`);
    // And Bob got nothing of Carol's offer.
    assert.equal(bobRec.received.filter((r) => r.event === 'offer').length, 1);

    // Bob leaves: Alice (and Carol) hear user-left.
    const leaveAck = await emitWithAck(bob, 'leave-room', { roomId: R });
    assert.equal(leaveAck?.ok, true, `leave-room ack: ${JSON.stringify(leaveAck)}`);
    const bobLeft = await aliceRec.waitFor('user-left', (d) => d?.userId === 'bob');
    assert.equal(bobLeft.data.roomId, R);
    await carolRec.waitFor('user-left', (d) => d?.userId === 'bob' && d.roomId === R);
    const afterLeave = await getJson(server.url, `/api/rooms/${encodeURIComponent(R)}`);
    assert.equal(afterLeave.status, 200);
    assert.deepEqual(afterLeave.body.participants, ['alice', 'carol']);

    // Bob rejoins, then disconnects: Alice hears user-joined then user-left again.
    const joinedBefore = aliceRec.received.filter((r) => r.event === 'user-joined').length;
    await join(bob, bobRec, R, 'bob', ['alice', 'carol', 'bob']);
    await aliceRec.waitFor(
      'user-joined',
      (d) => d?.userId === 'bob' && aliceRec.received.filter((r) => r.event === 'user-joined').length > joinedBefore,
    );
    const leftBefore = aliceRec.received.filter((r) => r.event === 'user-left').length;
    const leftAgain = once(alice, 'user-left');
    bob.disconnect();
    const bobGone = await leftAgain;
    assert.equal(bobGone.roomId, R);
    assert.equal(bobGone.userId, 'bob');
    assert.equal(aliceRec.received.filter((r) => r.event === 'user-left').length, leftBefore + 1);

    // REST: the room lists only the remaining participants.
    const listed = await getJson(server.url, '/api/rooms');
    assert.equal(listed.status, 200);
    assert.equal(typeof listed.body.total, 'number');
    const room = listed.body.rooms.find((r) => r.id === R);
    assert.ok(room, `room ${R} listed: ${JSON.stringify(listed.body)}`);
    assert.deepEqual(room.participants, ['alice', 'carol']);
    assert.equal(room.participantCount, 2);
    assert.equal(typeof room.createdAt, 'string');
    assert.ok(!Number.isNaN(Date.parse(room.createdAt)), `createdAt is a date: ${room.createdAt}`);

    // Everyone leaves: Carol by disconnecting, Alice with leave-room.
    const carolLeft = once(alice, 'user-left');
    carol.disconnect();
    assert.deepEqual(
      { roomId: (await carolLeft).roomId, userId: 'carol' },
      { roomId: R, userId: 'carol' },
    );
    const aliceLeave = await emitWithAck(alice, 'leave-room', { roomId: R });
    assert.equal(aliceLeave?.ok, true);
    const finalList = await getJson(server.url, '/api/rooms');
    assert.equal(finalList.status, 200);
    assert.equal(
      finalList.body.rooms.find((r) => r.id === R),
      undefined,
      `room ${R} is gone: ${JSON.stringify(finalList.body)}`,
    );
    const gone = await getJson(server.url, `/api/rooms/${encodeURIComponent(R)}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body?.error?.code, 'room-not-found');

    // Nobody was told of a signaling error along the way.
    for (const rec of [aliceRec, bobRec, carolRec]) {
      assert.deepEqual(rec.received.filter((r) => r.event === 'signaling-error'), []);
    }
  } finally {
    closeAll(...sockets);
  }
}

describe('core flow', () => {
  for (const transport of ['websocket', 'polling']) {
    test(`join, relay, leave and REST over ${transport} only`, () => coreFlow(transport));
  }
});

describe('errors (socket.io-client 4.8)', () => {
  test('offer to an unknown target without ack -> signaling-error target-not-found', async () => {
    const alice = await connect(server.url, { transports: ['websocket'] });
    try {
      const ack = await emitWithAck(alice, 'join-room', { roomId: 'errors-1', userId: 'alice' });
      assert.equal(ack?.ok, true);
      const error = once(alice, 'signaling-error');
      alice.emit('offer', { roomId: 'errors-1', targetId: 'nobody', offer: { type: 'offer', sdp: 'v=0\r\n' } });
      const e = await error;
      assert.equal(e.event, 'offer');
      assert.equal(e.code, 'target-not-found');
      assert.equal(typeof e.message, 'string');
      assert.ok(e.message.length > 0);
    } finally {
      closeAll(alice);
    }
  });

  test('join-room with a numeric roomId and an ack -> ok:false invalid-payload', async () => {
    const socket = await connect(server.url, { transports: ['websocket'] });
    try {
      const ack = await emitWithAck(socket, 'join-room', { roomId: 5, userId: 'alice' });
      assert.equal(ack?.ok, false, `ack: ${JSON.stringify(ack)}`);
      assert.equal(ack.error?.code, 'invalid-payload');
      assert.equal(typeof ack.error.message, 'string');
      assert.ok(ack.error.message.length > 0);
      // And the room was not created.
      const listed = await getJson(server.url, '/api/rooms');
      assert.equal(listed.body.rooms.find((r) => r.id === '5'), undefined);
    } finally {
      closeAll(socket);
    }
  });

  test('offer into a room the sender is not in -> not-in-room (ack and event)', async () => {
    const sockets = [];
    try {
      const alice = await connect(server.url, { transports: ['websocket'] });
      sockets.push(alice);
      const aliceRec = recorder(alice);
      assert.equal((await emitWithAck(alice, 'join-room', { roomId: 'errors-3', userId: 'alice' }))?.ok, true);
      const mallory = await connect(server.url, { transports: ['websocket'] });
      sockets.push(mallory);
      const body = { roomId: 'errors-3', targetId: 'alice', offer: { type: 'offer', sdp: 'v=0\r\n' } };
      const ack = await emitWithAck(mallory, 'offer', body);
      assert.equal(ack?.ok, false, `ack: ${JSON.stringify(ack)}`);
      assert.equal(ack.error?.code, 'not-in-room');
      assert.equal(typeof ack.error.message, 'string');
      const error = once(mallory, 'signaling-error');
      mallory.emit('offer', body);
      const e = await error;
      assert.equal(e.event, 'offer');
      assert.equal(e.code, 'not-in-room');
      // Alice got no offer: her next relay is one sent to her by a real peer.
      const bob = await connect(server.url, { transports: ['websocket'] });
      sockets.push(bob);
      assert.equal((await emitWithAck(bob, 'join-room', { roomId: 'errors-3', userId: 'bob' }))?.ok, true);
      assert.equal((await emitWithAck(bob, 'offer', { ...body, offer: { type: 'offer', sdp: 'bob' } }))?.ok, true);
      await aliceRec.waitFor('offer');
      const offers = aliceRec.received.filter((r) => r.event === 'offer');
      assert.equal(offers.length, 1);
      assert.equal(offers[0].data.senderId, 'bob');
    } finally {
      closeAll(...sockets);
    }
  });
});
