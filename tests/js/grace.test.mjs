// Seat grace (issue 20) with socket.io-client 4.8, over websocket and polling:
// a connection on `/` that closes abruptly (its transport closed with no
// socket.io DISCONNECT, or its TCP connection cut) keeps its seats for
// RESUME_GRACE_MS. Peers get no `user-left`, REST keeps listing the user, and
// relays to the held seat are acked `{ ok: true, queued: true }` and kept. The
// same userId joining again (a new connection, or the same socket.io client
// reconnecting) gets `room-users`, then the kept relays in the order sent, then
// live ones (its join ack comes with them); peers are told nothing. `socket.disconnect()` and
// `leave-room` still leave at once. When the grace ends without a rejoin, peers
// get `user-left` and each sender of kept relays `relay-expired { roomId,
// targetId, count }`. Past RESUME_BUFFER_EVENTS kept relays: `target-busy`.
// RESUME_GRACE_MS=0 turns it off. With JWT the rejoin is the token's `sub`; with
// Redis the rejoin may land on another instance.
//
// No test sleeps: the server holds a seat once a probe relay to it is acked
// queued (waitUntil), and "no user-left came" is checked after a marker relay
// sent after the rejoin has arrived.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { TIMEOUT_MS, closeAll, emitWithAck, getJson, hs256Token, once, recordedClient, startServer, withTimeout } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';
import { startProxy } from './proxy.mjs';

const TRANSPORTS = ['websocket', 'polling'];
const RELAYS = ['offer', 'answer', 'ice-candidate'];
/** The body field of each relay. */
const BODY = { offer: 'offer', answer: 'answer', 'ice-candidate': 'candidate' };
/**
 * Every test server: event limits out of the way of bursts and probes, and a
 * short heartbeat, so a polling session whose TCP connection was cut is
 * noticed (a ping timeout) within about 2 s.
 */
const BASE_ENV = { EVENTS_PER_SECOND: '100000', EVENT_BURST: '100000', PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000' };
/** How long the server may take to notice a cut TCP connection (ping interval plus timeout, and slack). */
const NOTICE_MS = 8000;

// ---------------------------------------------------------------------------
// helpers

/** The body of a `kind` relay carrying `tag`. */
function body(kind, tag) {
  return kind === 'ice-candidate'
    ? { candidate: `candidate:${tag}`, sdpMid: '0', sdpMLineIndex: 0 }
    : { type: kind, sdp: `v=0 ${tag}` };
}

/** Sends a `kind` relay tagged `tag` from `socket` to `targetId`; resolves its ack. */
function relay(socket, roomId, targetId, kind, tag) {
  return emitWithAck(socket, kind, { roomId, targetId, [BODY[kind]]: body(kind, tag) });
}

/** How a relay reads in the expected and received lists: "sender>kind:tag". */
const label = (senderId, kind, tag) => `${senderId}>${kind}:${tag}`;

/** The relays `rec` received from index `from` on, as labels (and checks their roomId). */
function relaysGot(rec, roomId, from = 0) {
  return rec.received.slice(from).filter((r) => RELAYS.includes(r.event)).map(({ event, data }) => {
    assert.equal(data?.roomId, roomId, `a relay of another room: ${JSON.stringify(data)}`);
    const b = data[BODY[event]];
    const tag = event === 'ice-candidate' ? b?.candidate?.replace(/^candidate:/, '') : b?.sdp?.replace(/^v=0 /, '');
    return label(data.senderId, event, tag);
  });
}

/** Index of the first relay `rec` received from `from` on, or -1. */
const firstRelayAt = (rec, from = 0) => rec.received.findIndex((r, i) => i >= from && RELAYS.includes(r.event));

/** Waits until `rec` has received the relay labelled `want` (from `from` on). */
function waitRelay(rec, roomId, want, from = 0, ms = TIMEOUT_MS) {
  return waitUntil(() => relaysGot(rec, roomId, from).includes(want), `relay ${want}`, ms);
}

/** The user-left / user-joined events about `userId` in `roomId` that `rec` got. */
function presence(rec, roomId, userId) {
  return rec.received
    .filter((r) => (r.event === 'user-left' || r.event === 'user-joined') && r.data?.roomId === roomId && r.data?.userId === userId)
    .map((r) => r.event);
}

/** Emits join-room; resolves its ack. */
function join(socket, roomId, userId) {
  const acked = new Promise((resolve) => socket.emit('join-room', { roomId, userId }, resolve));
  return withTimeout(acked, TIMEOUT_MS, `no join-room ack for ${userId}`);
}

/** A new recorded connection over `transport`, seated in `roomId` as `userId`: { socket, rec, ack }. */
async function seated(url, transport, roomId, userId, opts = {}) {
  const { socket, rec } = await recordedClient(url, { transports: [transport], ...opts });
  try {
    const ack = await join(socket, roomId, userId);
    assert.equal(ack?.ok, true, `${userId} joins ${roomId}: ${JSON.stringify(ack)}`);
    return { socket, rec, ack };
  } catch (err) {
    socket.close();
    throw err;
  }
}

/**
 * An app-like client: joins `roomId` as `userId` now and again on every
 * (re)connect of the same socket.io client. `joining` is the last join's
 * ack, `connectedAt` how many events it had at the last connect.
 */
async function appClient(url, transport, roomId, userId, opts = {}) {
  const { socket, rec } = await recordedClient(url, { transports: [transport], ...opts });
  const client = { socket, rec, connectedAt: 0, joining: join(socket, roomId, userId) };
  socket.on('connect', () => {
    client.connectedAt = rec.received.length;
    client.joining = join(socket, roomId, userId);
  });
  const ack = await client.joining;
  assert.equal(ack?.ok, true, `${userId} joins ${roomId}: ${JSON.stringify(ack)}`);
  return client;
}

/** Closes `socket`'s engine.io transport: no socket.io DISCONNECT is sent. Resolves the disconnect reason. */
async function dropTransport(socket) {
  const gone = once(socket, 'disconnect');
  socket.io.engine.close();
  return gone;
}

/**
 * Sends probe candidates from `sender` to `targetId` until one is acked
 * `{ ok: true, queued: true }`: from then on the server holds the target's
 * seat. Before, a probe may still be handed to the closing connection
 * (`{ ok: true }`); any other ack fails at once. Returns the kept probe's label.
 */
async function untilHeld(sender, senderId, roomId, targetId, ms = NOTICE_MS) {
  let n = 0;
  let kept;
  let wrong;
  await waitUntil(
    async () => {
      n += 1;
      const tag = `probe-${senderId}-${n}`;
      const ack = await relay(sender, roomId, targetId, 'ice-candidate', tag);
      if (ack?.ok === true && ack.queued === true) {
        kept = label(senderId, 'ice-candidate', tag);
        return true;
      }
      if (!(ack?.ok === true && ack.queued === undefined)) wrong = new Error(`probe ${n} to held ${targetId}: ${JSON.stringify(ack)}`);
      return false;
    },
    `${targetId}'s seat held (a relay acked queued)`,
    ms,
    () => wrong,
  );
  return kept;
}

/** Sends relays tagged `tags` (cycling offer, ice-candidate, answer) and checks each is acked `expect`; returns their labels. */
async function sendAll(socket, senderId, roomId, targetId, tags, expect = { ok: true, queued: true }) {
  const kinds = ['offer', 'ice-candidate', 'answer'];
  const acks = await Promise.all(tags.map((tag, i) => relay(socket, roomId, targetId, kinds[i % 3], tag)));
  acks.forEach((ack, i) => assert.deepEqual(ack, expect, `relay ${tags[i]} from ${senderId} to ${targetId}`));
  return tags.map((tag, i) => label(senderId, kinds[i % 3], tag));
}

/**
 * Checks what a rejoined connection got from index `from` on: `room-users`
 * naming `users` before any relay, then exactly `expected` relays in order.
 * (The join ack may come before or after the kept relays: the server hands
 * them over before the join handler returns.)
 */
function assertResumed(rec, roomId, { from = 0, users, expected }) {
  const roomUsers = rec.received.findIndex((r, i) => i >= from && r.event === 'room-users' && r.data?.roomId === roomId);
  assert.ok(roomUsers >= 0, `room-users after the rejoin; got ${JSON.stringify(rec.received.slice(from).map((r) => r.event))}`);
  assert.deepEqual(rec.received[roomUsers].data.users, users, 'room-users after the rejoin');
  const first = firstRelayAt(rec, from);
  assert.ok(first > roomUsers, `room-users (#${roomUsers}) must come before the first kept relay (#${first})`);
  assert.deepEqual(relaysGot(rec, roomId, from), expected);
}

/** Participants of `roomId` over REST (null if the room is gone). */
async function restParticipants(url, roomId) {
  const res = await getJson(url, `/api/rooms/${encodeURIComponent(roomId)}`);
  if (res.status === 404) return null;
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.participants;
}

/** Checks that REST lists `userId` in `roomId`, by room and in the list of rooms. */
async function assertListed(url, roomId, userId) {
  assert.ok((await restParticipants(url, roomId))?.includes(userId), `GET /api/rooms/${roomId} lists ${userId}`);
  const all = await getJson(url, '/api/rooms?limit=100');
  const room = all.body.rooms?.find((r) => r.id === roomId);
  assert.ok(room?.participants.includes(userId), `GET /api/rooms lists ${userId} in ${roomId}: ${JSON.stringify(room)}`);
}

/** Waits until REST no longer lists `userId` in `roomId`. */
function waitUnlisted(url, roomId, userId, ms = TIMEOUT_MS) {
  return waitUntil(async () => !((await restParticipants(url, roomId)) ?? []).includes(userId), `REST to drop ${userId} from ${roomId}`, ms);
}

/**
 * `from` sends a marker relay to each of `peers` ({ rec, id }) and waits for
 * it there; then none of them may have been told `userId` left or joined.
 */
async function assertPeersUntold(from, fromId, roomId, peers, userId) {
  for (const { rec, id } of peers) {
    const tag = `marker-${fromId}-to-${id}`;
    assert.deepEqual(await relay(from, roomId, id, 'ice-candidate', tag), { ok: true }, `marker to ${id}`);
    await waitRelay(rec, roomId, label(fromId, 'ice-candidate', tag));
    assert.deepEqual(presence(rec, roomId, userId), [], `${id} was told nothing about ${userId}`);
  }
}

/** Tracks sockets to close when the test ends. */
function track() {
  const sockets = [];
  return {
    add: (...s) => {
      sockets.push(...s);
      return s[0];
    },
    close: () => closeAll(...sockets),
  };
}

// ---------------------------------------------------------------------------
// one instance, the default grace (10 s) and buffer (256)

describe('seat grace on one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: BASE_ENV });
  });
  after(async () => {
    if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
  });

  for (const transport of TRANSPORTS) {
    test(`an abrupt close keeps the seat: no user-left, REST lists the user, gap relays are queued and arrive after room-users, in order, before later ones (${transport})`, async () => {
      const room = `keep-${transport}`;
      const s = track();
      try {
        const alice = await appClient(server.url, transport, room, 'alice');
        s.add(alice.socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);

        const reason = await dropTransport(alice.socket);
        assert.notEqual(reason, 'io client disconnect');
        const kept = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        await assertListed(server.url, room, 'alice');
        kept.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['gap-1', 'gap-2', 'gap-3', 'gap-4'])));
        await assertListed(server.url, room, 'alice');

        // The same socket.io client reconnects (a new engine.io session) and its connect handler re-joins.
        const back = once(alice.socket, 'connect');
        alice.socket.connect();
        await back;
        const ack = await alice.joining;
        assert.deepEqual(ack, { ok: true, roomId: room, users: ['alice', 'bob'] });
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['live-1', 'live-2'], { ok: true });
        await waitRelay(alice.rec, room, live[1], alice.connectedAt);
        assertResumed(alice.rec, room, { from: alice.connectedAt, users: ['alice', 'bob'], expected: [...kept, ...live] });

        await assertPeersUntold(alice.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }], 'alice');
        assert.deepEqual(await restParticipants(server.url, room), ['alice', 'bob']);
      } finally {
        s.close();
      }
    });

    test(`a cut TCP connection keeps the seat; the client reconnects by itself and gets the kept relays in order (${transport})`, async () => {
      const room = `cut-${transport}`;
      const s = track();
      const proxy = await startProxy(server.port);
      try {
        // alice reaches the server through the proxy, reconnecting quickly as apps do.
        const alice = await appClient(proxy.url, transport, room, 'alice', {
          reconnection: true,
          reconnectionDelay: 100,
          reconnectionDelayMax: 200,
        });
        s.add(alice.socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);
        const carol = await seated(server.url, transport, room, 'carol');
        s.add(carol.socket);

        // The network goes away: every TCP connection dies, and reconnects fail until restored.
        const gone = once(alice.socket, 'disconnect', NOTICE_MS);
        // Over polling a request may be between two; cut while one is piped.
        await waitUntil(() => proxy.open() >= 1, 'a connection of alice piped through the proxy');
        assert.ok(proxy.cut({ down: true }) >= 1, 'the proxy cut a piped connection');
        const reason = await gone;
        assert.match(reason, /^transport (close|error)$|^ping timeout$/);
        const kept = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        kept.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['gap-1', 'gap-2'])));
        const fromCarol = await sendAll(carol.socket, 'carol', room, 'alice', ['gap-c1']);
        kept.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['gap-3'])));
        await assertListed(server.url, room, 'alice');

        const back = once(alice.socket, 'connect', NOTICE_MS);
        proxy.restore();
        await back;
        const ack = await alice.joining;
        assert.deepEqual(ack, { ok: true, roomId: room, users: ['alice', 'bob', 'carol'] });
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['live-1'], { ok: true });
        await waitRelay(alice.rec, room, live[0], alice.connectedAt);
        // Per sender in order, everything kept before the live relay.
        const got = relaysGot(alice.rec, room, alice.connectedAt);
        assert.deepEqual(got.filter((l) => l.startsWith('bob>')), [...kept, ...live], "bob's relays in order");
        assert.deepEqual(got.filter((l) => l.startsWith('carol>')), fromCarol);
        assert.equal(got.length, kept.length + fromCarol.length + live.length, JSON.stringify(got));
        assert.equal(got.at(-1), live[0], 'the live relay came last');
        assertResumed(alice.rec, room, { from: alice.connectedAt, users: ['alice', 'bob', 'carol'], expected: got });

        await assertPeersUntold(alice.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }, { rec: carol.rec, id: 'carol' }], 'alice');
      } finally {
        s.close();
        await proxy.close();
      }
    });

    test(`the socket.io Manager reconnecting after a transport close takes the seat back, and peers are told nothing (${transport})`, async () => {
      const room = `manager-${transport}`;
      const s = track();
      try {
        const alice = await appClient(server.url, transport, room, 'alice', { reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 400 });
        s.add(alice.socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);

        const back = once(alice.socket, 'connect', NOTICE_MS);
        await dropTransport(alice.socket);
        await back;
        const ack = await alice.joining;
        assert.deepEqual(ack, { ok: true, roomId: room, users: ['alice', 'bob'] });
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['after-1'], { ok: true });
        await waitRelay(alice.rec, room, live[0], alice.connectedAt);
        assertResumed(alice.rec, room, { from: alice.connectedAt, users: ['alice', 'bob'], expected: live });
        await assertPeersUntold(alice.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }], 'alice');
      } finally {
        s.close();
      }
    });

    test(`socket.disconnect() and leave-room leave at once: user-left, REST drops the user, relays get target-not-found (${transport})`, async () => {
      const room = `leave-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(server.url, transport, room, 'alice')).socket);
        const carol = s.add((await seated(server.url, transport, room, 'carol')).socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);

        // Well within the 10 s grace: nothing is held.
        const started = Date.now();
        alice.disconnect();
        const left = await bob.rec.waitFor('user-left', (d) => d?.userId === 'alice', 3000);
        assert.deepEqual(left.data, { roomId: room, userId: 'alice' });
        await waitUnlisted(server.url, room, 'alice', 1000);
        assert.ok(Date.now() - started < 4000, `alice left at once (${Date.now() - started} ms)`);
        const refused = await relay(bob.socket, room, 'alice', 'offer', 'after-disconnect');
        assert.equal(refused?.ok, false);
        assert.equal(refused.error?.code, 'target-not-found');

        assert.deepEqual(await emitWithAck(carol, 'leave-room', { roomId: room }), { ok: true, roomId: room });
        const carolLeft = await bob.rec.waitFor('user-left', (d) => d?.userId === 'carol', 3000);
        assert.deepEqual(carolLeft.data, { roomId: room, userId: 'carol' });
        await waitUnlisted(server.url, room, 'carol', 1000);
        assert.equal((await relay(bob.socket, room, 'carol', 'answer', 'after-leave'))?.error?.code, 'target-not-found');
        assert.deepEqual(await restParticipants(server.url, room), ['bob']);
      } finally {
        s.close();
      }
    });

    test(`a 200-relay burst to a held seat is all queued, then delivered in order after the rejoin (${transport})`, async () => {
      const room = `burst-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(server.url, transport, room, 'alice')).socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);

        await dropTransport(alice);
        const kept = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        const tags = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
        kept.push(...(await sendAll(bob.socket, 'bob', room, 'alice', tags)));

        const again = await seated(server.url, transport, room, 'alice');
        s.add(again.socket);
        assert.deepEqual(again.ack, { ok: true, roomId: room, users: ['alice', 'bob'] });
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['live'], { ok: true });
        await waitRelay(again.rec, room, live[0]);
        assertResumed(again.rec, room, { users: ['alice', 'bob'], expected: [...kept, ...live] });
        await assertPeersUntold(again.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }], 'alice');
      } finally {
        s.close();
      }
    });
  }
});

// ---------------------------------------------------------------------------
// the grace ending

describe('seat grace expiring (RESUME_GRACE_MS=1500)', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ...BASE_ENV, RESUME_GRACE_MS: '1500' } });
  });
  after(async () => {
    if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
  });

  for (const transport of TRANSPORTS) {
    test(`no rejoin: peers get user-left, each sender relay-expired with its count, then relays get target-not-found (${transport})`, async () => {
      const room = `expire-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(server.url, transport, room, 'alice')).socket);
        const peers = {};
        for (const id of ['bob', 'carol', 'dave']) {
          peers[id] = await seated(server.url, transport, room, id);
          s.add(peers[id].socket);
        }

        await dropTransport(alice);
        const dropped = Date.now();
        await untilHeld(peers.bob.socket, 'bob', room, 'alice');
        await sendAll(peers.bob.socket, 'bob', room, 'alice', ['b-1', 'b-2', 'b-3']);
        await untilHeld(peers.carol.socket, 'carol', room, 'alice');
        await sendAll(peers.carol.socket, 'carol', room, 'alice', ['c-1']);
        // bob kept 1 probe + 3, carol 1 probe + 1; dave sent nothing.
        const counts = { bob: 4, carol: 2 };
        await assertListed(server.url, room, 'alice');

        const expiry = 1500 + TIMEOUT_MS;
        for (const id of ['bob', 'carol', 'dave']) {
          const left = await peers[id].rec.waitFor('user-left', (d) => d?.userId === 'alice', expiry);
          assert.deepEqual(left.data, { roomId: room, userId: 'alice' }, `${id} is told alice left`);
        }
        assert.ok(Date.now() - dropped >= 1000, `user-left only after the grace (${Date.now() - dropped} ms)`);
        for (const id of ['bob', 'carol']) {
          const notice = await peers[id].rec.waitFor('relay-expired', () => true, expiry);
          assert.deepEqual(notice.data, { roomId: room, targetId: 'alice', count: counts[id] }, `${id}'s relay-expired`);
        }
        await waitUnlisted(server.url, room, 'alice', 1000);
        for (const id of ['bob', 'carol']) {
          const refused = await relay(peers[id].socket, room, 'alice', 'offer', 'too-late');
          assert.equal(refused?.ok, false, JSON.stringify(refused));
          assert.equal(refused.error?.code, 'target-not-found');
        }

        // One notice each, none to dave, one user-left each (checked after a marker reached every peer).
        for (const id of ['bob', 'carol', 'dave']) {
          const tag = `marker-${id}`;
          await relay(peers.bob.socket, room, id, 'ice-candidate', tag);
          await waitRelay(peers[id].rec, room, label('bob', 'ice-candidate', tag));
          const notices = peers[id].rec.received.filter((r) => r.event === 'relay-expired');
          assert.equal(notices.length, id === 'dave' ? 0 : 1, `${id}: ${JSON.stringify(notices)}`);
          assert.deepEqual(presence(peers[id].rec, room, 'alice'), ['user-left']);
        }
      } finally {
        s.close();
      }
    });

    test(`a rejoin after the grace is a fresh join: peers get user-joined, no kept relay arrives (${transport})`, async () => {
      const room = `late-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(server.url, transport, room, 'alice')).socket);
        const bob = await seated(server.url, transport, room, 'bob');
        s.add(bob.socket);
        await dropTransport(alice);
        await untilHeld(bob.socket, 'bob', room, 'alice');
        await bob.rec.waitFor('user-left', (d) => d?.userId === 'alice', 1500 + TIMEOUT_MS);
        await bob.rec.waitFor('relay-expired', () => true);

        const again = await seated(server.url, transport, room, 'alice');
        s.add(again.socket);
        assert.deepEqual(again.ack, { ok: true, roomId: room, users: ['bob', 'alice'] });
        await bob.rec.waitFor('user-joined', (d) => d?.userId === 'alice');
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['fresh'], { ok: true });
        await waitRelay(again.rec, room, live[0]);
        assert.deepEqual(relaysGot(again.rec, room), live, 'nothing kept is delivered after the grace');
      } finally {
        s.close();
      }
    });
  }
});

// ---------------------------------------------------------------------------
// the buffer limit, the switch, JWT

describe('seat grace limits and settings', () => {
  const servers = [];
  after(async () => {
    for (const srv of servers) assert.equal(await srv.stop(), 0, 'the server exits 0 on SIGTERM');
  });
  async function serverWith(env) {
    const srv = await startServer({ extraEnv: { ...BASE_ENV, ...env } });
    servers.push(srv);
    return srv;
  }
  let small;
  let off;
  let jwt;
  const SECRET = 'grace-secret';
  before(async () => {
    [small, off, jwt] = await Promise.all([
      serverWith({ RESUME_BUFFER_EVENTS: '5' }),
      serverWith({ RESUME_GRACE_MS: '0' }),
      serverWith({ JWT_SECRET: SECRET }),
    ]);
  });

  for (const transport of TRANSPORTS) {
    test(`past RESUME_BUFFER_EVENTS=5 kept relays for one seat (from any sender): target-busy, and only the kept ones arrive (${transport})`, async () => {
      const room = `busy-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(small.url, transport, room, 'alice')).socket);
        const bob = await seated(small.url, transport, room, 'bob');
        const carol = await seated(small.url, transport, room, 'carol');
        s.add(bob.socket, carol.socket);

        await dropTransport(alice);
        const fromBob = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        fromBob.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['b-1', 'b-2'])));
        const fromCarol = await sendAll(carol.socket, 'carol', room, 'alice', ['c-1', 'c-2']);
        for (const [socket, id] of [[bob.socket, 'bob'], [carol.socket, 'carol'], [bob.socket, 'bob']]) {
          const ack = await relay(socket, room, 'alice', 'offer', `over-${id}`);
          assert.equal(ack?.ok, false, `relay 6+ from ${id}: ${JSON.stringify(ack)}`);
          assert.equal(ack.error?.code, 'target-busy');
          assert.equal(typeof ack.error.message, 'string');
        }

        const again = await seated(small.url, transport, room, 'alice');
        s.add(again.socket);
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['live'], { ok: true });
        await waitRelay(again.rec, room, live[0]);
        const got = relaysGot(again.rec, room);
        assert.equal(got.length, 6, JSON.stringify(got));
        assert.deepEqual(got.filter((l) => l.startsWith('bob>')), [...fromBob, ...live]);
        assert.deepEqual(got.filter((l) => l.startsWith('carol>')), fromCarol);
        assert.equal(got.at(-1), live[0]);
        assertResumed(again.rec, room, { users: ['alice', 'bob', 'carol'], expected: got });
      } finally {
        s.close();
      }
    });

    test(`RESUME_GRACE_MS=0: an abrupt close leaves at once, as before (${transport})`, async () => {
      const room = `off-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(off.url, transport, room, 'alice')).socket);
        const bob = await seated(off.url, transport, room, 'bob');
        s.add(bob.socket);
        await dropTransport(alice);
        const left = await bob.rec.waitFor('user-left', (d) => d?.userId === 'alice', 3000);
        assert.deepEqual(left.data, { roomId: room, userId: 'alice' });
        await waitUnlisted(off.url, room, 'alice', 1000);
        const refused = await relay(bob.socket, room, 'alice', 'offer', 'nobody-home');
        assert.equal(refused?.ok, false, JSON.stringify(refused));
        assert.equal(refused.error?.code, 'target-not-found');
      } finally {
        s.close();
      }
    });

    test(`with JWT_SECRET the seat is taken back by a new connection whose token's sub is the userId, not by another user (${transport})`, async () => {
      const room = `jwt-${transport}`;
      const token = (sub) => ({ auth: { token: hs256Token(SECRET, sub) } });
      const s = track();
      try {
        const alice = s.add((await seated(jwt.url, transport, room, 'alice', token('alice'))).socket);
        const bob = await seated(jwt.url, transport, room, 'bob', token('bob'));
        s.add(bob.socket);

        await dropTransport(alice);
        const kept = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        kept.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['gap-1', 'gap-2'])));

        // mallory may not take alice's seat (nor its relays).
        const mallory = await recordedClient(jwt.url, { transports: [transport], ...token('mallory') });
        s.add(mallory.socket);
        const refused = await emitWithAck(mallory.socket, 'join-room', { roomId: room, userId: 'alice' });
        assert.equal(refused?.ok, false, JSON.stringify(refused));
        assert.equal(refused.error?.code, 'unauthorized');

        const again = await seated(jwt.url, transport, room, 'alice', token('alice'));
        s.add(again.socket);
        assert.deepEqual(again.ack, { ok: true, roomId: room, users: ['alice', 'bob'] });
        const live = await sendAll(bob.socket, 'bob', room, 'alice', ['live'], { ok: true });
        await waitRelay(again.rec, room, live[0]);
        assertResumed(again.rec, room, { users: ['alice', 'bob'], expected: [...kept, ...live] });
        assert.deepEqual(relaysGot(mallory.rec, room), [], 'mallory got none of the kept relays');
        await assertPeersUntold(again.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }], 'alice');
      } finally {
        s.close();
      }
    });
  }
});

// ---------------------------------------------------------------------------
// two instances with Redis

describe('seat grace across instances (Redis)', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, BASE_ENV);
  });
  after(async () => {
    await cluster?.stop();
  });

  for (const transport of TRANSPORTS) {
    test(`a seat held on instance A is taken back on instance B, which delivers the relays kept from senders on both, in order (${transport})`, async () => {
      const [a, b] = cluster.servers;
      const room = `cluster-${transport}`;
      const s = track();
      try {
        const alice = s.add((await seated(a.url, transport, room, 'alice')).socket);
        const bob = await seated(a.url, transport, room, 'bob');
        const carol = await seated(b.url, transport, room, 'carol');
        s.add(bob.socket, carol.socket);
        await waitUntil(async () => (await restParticipants(b.url, room))?.length === 3, 'B to see all three');

        await dropTransport(alice);
        const fromBob = [await untilHeld(bob.socket, 'bob', room, 'alice')];
        fromBob.push(...(await sendAll(bob.socket, 'bob', room, 'alice', ['a-1', 'a-2', 'a-3'])));
        const fromCarol = [await untilHeld(carol.socket, 'carol', room, 'alice')];
        fromCarol.push(...(await sendAll(carol.socket, 'carol', room, 'alice', ['b-1', 'b-2'])));
        await assertListed(a.url, room, 'alice');
        await assertListed(b.url, room, 'alice');

        const again = await seated(b.url, transport, room, 'alice');
        s.add(again.socket);
        assert.deepEqual(again.ack, { ok: true, roomId: room, users: ['alice', 'bob', 'carol'] });
        const liveBob = await sendAll(bob.socket, 'bob', room, 'alice', ['live-a'], { ok: true });
        const liveCarol = await sendAll(carol.socket, 'carol', room, 'alice', ['live-b'], { ok: true });
        await waitRelay(again.rec, room, liveBob[0]);
        await waitRelay(again.rec, room, liveCarol[0]);

        const got = relaysGot(again.rec, room);
        assert.deepEqual(got.filter((l) => l.startsWith('bob>')), [...fromBob, ...liveBob], "bob's relays, kept then live, in order");
        assert.deepEqual(got.filter((l) => l.startsWith('carol>')), [...fromCarol, ...liveCarol], "carol's relays, kept then live, in order");
        const lastKept = Math.max(...[...fromBob, ...fromCarol].map((l) => got.indexOf(l)));
        assert.ok(lastKept < got.indexOf(liveBob[0]) && lastKept < got.indexOf(liveCarol[0]), `every kept relay before the live ones: ${JSON.stringify(got)}`);
        assertResumed(again.rec, room, { users: ['alice', 'bob', 'carol'], expected: got });

        await assertPeersUntold(again.socket, 'alice', room, [{ rec: bob.rec, id: 'bob' }, { rec: carol.rec, id: 'carol' }], 'alice');
        assert.deepEqual(await restParticipants(a.url, room), ['alice', 'bob', 'carol']);
      } finally {
        s.close();
      }
    });
  }
});

describe('seat grace when the instance holding a seat dies (Redis, INSTANCE_TTL_MS=2000)', () => {
  let cluster;
  before(async () => {
    // A long grace: what ends the held seat here is its instance's death.
    cluster = await startCluster(2, { ...BASE_ENV, INSTANCE_TTL_MS: '2000', RESUME_GRACE_MS: '60000' });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('its held seats leave with its live ones: peers get user-left and senders relay-expired within INSTANCE_TTL_MS x 1.25, not after the grace', async () => {
    const [a, b] = cluster.servers;
    const room = 'dies';
    const s = track();
    try {
      const alice = s.add((await seated(a.url, 'websocket', room, 'alice')).socket);
      const bob = await seated(b.url, 'websocket', room, 'bob');
      s.add(bob.socket);
      await waitUntil(async () => (await restParticipants(b.url, room))?.length === 2, 'B to see both');

      await dropTransport(alice);
      // Alice's connection is closed: every relay to her from now on is kept,
      // whether it reached A before the hold was written (acked ok, parked
      // there) or after (acked queued).
      let probes = 0;
      await waitUntil(async () => {
        probes += 1;
        const ack = await relay(bob.socket, room, 'alice', 'ice-candidate', `probe-${probes}`);
        assert.equal(ack?.ok, true, JSON.stringify(ack));
        return ack.queued === true;
      }, "alice's seat held (a relay acked queued)");
      await sendAll(bob.socket, 'bob', room, 'alice', ['k-1', 'k-2']);
      a.process.kill('SIGKILL');
      // Reaped within INSTANCE_TTL_MS x 1.25 of its last heartbeat, plus one upkeep round and slack.
      const bound = 2000 * 1.25 + 1000 + TIMEOUT_MS;
      const left = await bob.rec.waitFor('user-left', (d) => d?.userId === 'alice', bound);
      assert.deepEqual(left.data, { roomId: room, userId: 'alice' });
      const notice = await bob.rec.waitFor('relay-expired', () => true, bound);
      assert.deepEqual(notice.data, { roomId: room, targetId: 'alice', count: probes + 2 }, 'every probe and the two kept relays');
      assert.deepEqual(await restParticipants(b.url, room), ['bob']);
    } finally {
      s.close();
    }
  });
});
