// The /dashboard namespace (seed 001) with socket.io-client 4.8: channel
// subscriptions, ping, client counts, the pushed room list (on change and
// periodically), relays within a channel, host approval with timeout and
// rejection, host handover, one registry with the core, and the same across
// two instances with Redis. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

import { closeAll, emitWithAck, getJson, hs256Token, metricSample, once, recordedClient, startServer, waitConnected } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';

const ROOMS = 'webrtc-dashboard-rooms';
const sockets = [];

/** A connected socket on `url` + `ns` whose every event is recorded. */
async function client(url, ns = '/dashboard') {
  const c = await recordedClient(`${url}${ns}`);
  sockets.push(c.socket);
  return c;
}

async function subscribed(url, channel = ROOMS) {
  const c = await client(url);
  const ack = await emitWithAck(c.socket, 'subscribe', { channel });
  assert.deepEqual(ack, { ok: true, channel });
  return c;
}

/** The latest server-room-list `c` got whose rooms satisfy `predicate`. */
function listWhere(c, predicate, ms) {
  return c.rec.waitFor('server-room-list', (d) => predicate(d.rooms), ms).then((r) => r.data);
}

const roomById = (rooms, id) => rooms.find((r) => r.id === id);

const metric = metricSample;

const TICKS_SENT = 'switchboard_room_list_ticks_total{outcome="sent"}';
const TICKS_SKIPPED = 'switchboard_room_list_ticks_total{outcome="skipped"}';

after(() => closeAll(...sockets));

describe('one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ROOM_LIST_INTERVAL_MS: '200', JOIN_REQUEST_TIMEOUT_MS: '500' } });
  });
  after(() => server.stop());

  test('ping gets pong, every client hears the client count, and a subscriber gets the list at once', async () => {
    const a = await client(server.url);
    const first = await a.rec.waitFor('client_count');
    assert.ok(first.data.count >= 1 && typeof first.data.timestamp === 'number');
    const b = await client(server.url);
    await a.rec.waitFor('client_count', (d) => d.count === first.data.count + 1);
    const pong = emitWithAck(a.socket, 'ping', {});
    const { data } = await a.rec.waitFor('pong');
    assert.equal((await pong).ok, true);
    assert.ok(Math.abs(data.timestamp - Date.now()) < 60_000);
    const s = await subscribed(server.url);
    const list = await s.rec.waitFor('server-room-list');
    assert.deepEqual({ channel: list.data.channel, rooms: Array.isArray(list.data.rooms) }, { channel: ROOMS, rooms: true });
    const counts = () => a.rec.received.filter((r) => r.event === 'client_count').map((r) => r.data.count);
    await waitUntil(() => counts().at(-1) === first.data.count + 2, 'the count with s');
    b.socket.close();
    await waitUntil(() => counts().at(-1) === first.data.count + 1, 'the count after b left');
    closeAll(a.socket, s.socket);
  });

  test('a room created here is pushed to subscribers only, listed by /api/rooms with its metadata, and joinable from /', async () => {
    const watcher = await subscribed(server.url);
    const outsider = await client(server.url);
    const host = await client(server.url);
    const created = await emitWithAck(host.socket, 'room-created', {
      data: { id: 'standup', name: 'Daily standup', description: 'ten minutes', host: 'Hank', hostId: 'hank' },
    });
    assert.deepEqual(created, { ok: true, roomId: 'standup' });
    const list = await listWhere(watcher, (rooms) => roomById(rooms, 'standup'));
    const room = roomById(list.rooms, 'standup');
    assert.deepEqual(
      { name: room.name, description: room.description, host: room.host, hostId: room.hostId, requiresApproval: room.requiresApproval },
      { name: 'Daily standup', description: 'ten minutes', host: 'Hank', hostId: 'hank', requiresApproval: false },
    );
    assert.deepEqual(room.participants, [{ id: 'hank', name: 'hank' }]);
    // The outsider is not subscribed: a round trip later it still has no list.
    await emitWithAck(outsider.socket, 'ping', {});
    assert.equal(outsider.rec.received.filter((r) => r.event === 'server-room-list').length, 0);

    const { body } = await getJson(server.url, '/api/rooms/standup');
    assert.deepEqual(
      { name: body.name, hostId: body.hostId, host: body.host, requiresApproval: body.requiresApproval, participants: body.participants },
      { name: 'Daily standup', hostId: 'hank', host: 'Hank', requiresApproval: false, participants: ['hank'] },
    );
    // A core client joins it from /, and the list follows.
    const core = await client(server.url, '/');
    const joined = await emitWithAck(core.socket, 'join-room', { roomId: 'standup', userId: 'zoe' });
    assert.deepEqual(joined.users, ['hank', 'zoe']);
    await listWhere(watcher, (rooms) => roomById(rooms, 'standup')?.participantCount === 2);
    // A dashboard user joins with a display name, then leaves.
    const dora = await client(server.url);
    const ack = await emitWithAck(dora.socket, 'user-joined-room', { data: { roomId: 'standup', userId: 'dora', userName: 'Dora' } });
    assert.deepEqual(ack.users, ['hank', 'zoe', 'dora']);
    const withDora = await listWhere(watcher, (rooms) => roomById(rooms, 'standup')?.participantCount === 3);
    assert.deepEqual(roomById(withDora.rooms, 'standup').participants.at(-1), { id: 'dora', name: 'Dora' });
    assert.equal((await emitWithAck(dora.socket, 'user-left-room', { data: { roomId: 'standup', userId: 'dora' } })).ok, true);
    await listWhere(watcher, (rooms) => roomById(rooms, 'standup')?.participantCount === 2);
    // A core room shows in the directory too (the other way round).
    await emitWithAck(core.socket, 'join-room', { roomId: 'core-made', userId: 'zoe' });
    await listWhere(watcher, (rooms) => roomById(rooms, 'core-made'));
    // A taken id is refused.
    const again = await emitWithAck(dora.socket, 'room-created', { data: { id: 'standup', hostId: 'dora' } });
    assert.equal(again.error.code, 'room-exists');
    closeAll(watcher.socket, outsider.socket, host.socket, core.socket, dora.socket);
  });


  test('other events on a channel reach its other subscribers only', async () => {
    const a = await subscribed(server.url, 'webrtc-signaling');
    const b = await subscribed(server.url, 'webrtc-signaling');
    const c = await subscribed(server.url, 'webrtc-dashboard-chat');
    const sent = await emitWithAck(a.socket, 'webrtc-offer', { channel: 'webrtc-signaling', sdp: 'v=0' });
    assert.equal(sent.ok, true);
    const got = await b.rec.waitFor('webrtc-offer');
    assert.deepEqual(got.data, { channel: 'webrtc-signaling', sdp: 'v=0' });
    await emitWithAck(c.socket, 'ping', {});
    assert.ok(!a.rec.received.some((r) => r.event === 'webrtc-offer'), 'not back to the sender');
    assert.ok(!c.rec.received.some((r) => r.event === 'webrtc-offer'), 'not to another channel');
    const notMine = await emitWithAck(c.socket, 'webrtc-offer', { channel: 'webrtc-signaling', sdp: 'x' });
    assert.equal(notMine.error.code, 'not-in-room');
    assert.equal((await emitWithAck(a.socket, 'mystery', { sdp: 'x' })).error.code, 'invalid-payload');
    assert.equal((await emitWithAck(a.socket, 'subscribe', { channel: 'bad channel!' })).error.code, 'invalid-payload');
    assert.equal((await emitWithAck(a.socket, 'unsubscribe', { channel: 'webrtc-signaling' })).ok, true);
    await emitWithAck(b.socket, 'webrtc-answer', { channel: 'webrtc-signaling', sdp: 'y' });
    await emitWithAck(a.socket, 'ping', {});
    assert.ok(!a.rec.received.some((r) => r.event === 'webrtc-answer'), 'unsubscribed');
    closeAll(a.socket, b.socket, c.socket);
  });

  test('host approval: approved joins, rejected and timed-out requests do not, only the host decides', async () => {
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'vip', hostId: 'boss', host: 'Boss', requiresApproval: true } });
    const core = await client(server.url, '/');
    const refused = await emitWithAck(core.socket, 'join-room', { roomId: 'vip', userId: 'jo' });
    assert.equal(refused.error.code, 'not-approved');

    const jo = await client(server.url);
    assert.deepEqual(await emitWithAck(jo.socket, 'join-request', { roomId: 'vip', userId: 'jo', userName: 'Jo' }), { ok: true, status: 'pending' });
    const asked = await host.rec.waitFor('join-request');
    assert.deepEqual(asked.data, { roomId: 'vip', userId: 'jo', userName: 'Jo' });
    const notHost = await emitWithAck(jo.socket, 'join-approved', { roomId: 'vip', userId: 'jo' });
    assert.equal(notHost.error.code, 'not-host');
    assert.equal((await emitWithAck(host.socket, 'join-approved', { roomId: 'vip', userId: 'jo' })).ok, true);
    assert.deepEqual((await jo.rec.waitFor('join-approved')).data, { roomId: 'vip', userId: 'jo' });
    assert.deepEqual((await emitWithAck(core.socket, 'join-room', { roomId: 'vip', userId: 'jo' })).users, ['boss', 'jo']);

    const kim = await client(server.url);
    await emitWithAck(kim.socket, 'join-request', { data: { roomId: 'vip', userId: 'kim' } });
    await host.rec.waitFor('join-request', (d) => d.userId === 'kim');
    await emitWithAck(host.socket, 'join-rejected', { roomId: 'vip', userId: 'kim' });
    assert.deepEqual((await kim.rec.waitFor('join-rejected')).data, { roomId: 'vip', userId: 'kim' });
    const kimCore = await client(server.url, '/');
    assert.equal((await emitWithAck(kimCore.socket, 'join-room', { roomId: 'vip', userId: 'kim' })).error.code, 'not-approved');

    const lou = await client(server.url);
    await emitWithAck(lou.socket, 'join-request', { roomId: 'vip', userId: 'lou' });
    const timedOut = await lou.rec.waitFor('join-rejected', () => true, 5000);
    assert.deepEqual(timedOut.data, { roomId: 'vip', userId: 'lou', reason: 'timeout' });
    const late = await emitWithAck(host.socket, 'join-approved', { roomId: 'vip', userId: 'lou' });
    assert.equal(late.error.code, 'no-request');
    closeAll(host.socket, core.socket, jo.socket, kim.socket, kimCore.socket, lou.socket);
  });

  test('when the host leaves, the next participant in join order hosts and everyone is told', async () => {
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'relay-race', hostId: 'first', host: 'First' } });
    const second = await client(server.url, '/');
    const third = await client(server.url, '/');
    await emitWithAck(second.socket, 'join-room', { roomId: 'relay-race', userId: 'second' });
    await emitWithAck(third.socket, 'join-room', { roomId: 'relay-race', userId: 'third' });
    const watcher = await subscribed(server.url);
    host.socket.close();
    for (const c of [second, third]) {
      const { data } = await c.rec.waitFor('host-changed');
      assert.deepEqual(data, { roomId: 'relay-race', hostId: 'second', host: 'second' });
    }
    await listWhere(watcher, (rooms) => roomById(rooms, 'relay-race')?.hostId === 'second');
    const { body } = await getJson(server.url, '/api/rooms/relay-race');
    assert.deepEqual({ hostId: body.hostId, participants: body.participants }, { hostId: 'second', participants: ['second', 'third'] });
    closeAll(second.socket, third.socket, watcher.socket);
  });

  test('a host on / after a handover answers join requests there; a closed room rejects a waiting request', async () => {
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'vip2', hostId: 'h2', requiresApproval: true } });
    const asker = await client(server.url);
    await emitWithAck(asker.socket, 'join-request', { roomId: 'vip2', userId: 'p2' });
    await host.rec.waitFor('join-request', (d) => d.userId === 'p2');
    await emitWithAck(host.socket, 'join-approved', { roomId: 'vip2', userId: 'p2' });
    const p2 = await client(server.url, '/');
    await emitWithAck(p2.socket, 'join-room', { roomId: 'vip2', userId: 'p2' });
    host.socket.close();
    await p2.rec.waitFor('host-changed', (d) => d.hostId === 'p2');
    const joiner = await client(server.url);
    await emitWithAck(joiner.socket, 'join-request', { roomId: 'vip2', userId: 'q3', userName: 'Q' });
    await p2.rec.waitFor('join-request', (d) => d.userId === 'q3');
    assert.equal((await emitWithAck(p2.socket, 'join-approved', { roomId: 'vip2', userId: 'q3' })).ok, true);
    await joiner.rec.waitFor('join-approved', (d) => d.userId === 'q3');
    // A request waiting when its room goes away is rejected as room-closed.
    const late = await client(server.url);
    await emitWithAck(late.socket, 'join-request', { roomId: 'vip2', userId: 'r4' });
    p2.socket.close();
    const closed = await late.rec.waitFor('join-rejected', () => true, 5000);
    assert.deepEqual(closed.data, { roomId: 'vip2', userId: 'r4', reason: 'room-closed' });
    closeAll(asker.socket, joiner.socket, late.socket);
  });

  test('a client that creates a room and leaves at once leaves no room behind', async () => {
    // Its clean-up runs after the events it sent before leaving, never beside them.
    for (let i = 0; i < 20; i += 1) {
      const c = await client(server.url);
      c.socket.emit('room-created', { data: { id: `ghost-${i}`, hostId: `ghost-${i}` } });
      c.socket.emit('user-joined-room', { data: { roomId: 'ghost-shared', userId: `ghost-${i}` } });
      c.socket.disconnect();
    }
    const ghosts = async () => (await getJson(server.url, '/api/rooms')).body.rooms.filter((r) => r.id.startsWith('ghost-'));
    await waitUntil(async () => (await ghosts()).length === 0, 'no room left by a closed connection');
  });

  test('/ and /dashboard over one engine.io connection are two connections: a seat on / gets its peers\' events', async () => {
    // socket.io-client multiplexes namespaces of one URL over one engine.io
    // session (one sid): the server must still tell the two apart.
    const manager = io(server.url, { transports: ['websocket'] }).io;
    const call = manager.socket('/');
    const lobby = manager.socket('/dashboard');
    sockets.push(call, lobby);
    call.connect();
    lobby.connect();
    await Promise.all([waitConnected(call), waitConnected(lobby)]);
    assert.equal(call.io.engine.id, lobby.io.engine.id, 'one engine.io session');
    const room = `mux-${Date.now()}`;
    const joined = await emitWithAck(call, 'join-room', { roomId: room, userId: 'mux-a' });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    const peer = io(server.url, { transports: ['websocket'], forceNew: true });
    sockets.push(peer);
    await waitConnected(peer);
    const heard = once(call, 'user-joined');
    assert.equal((await emitWithAck(peer, 'join-room', { roomId: room, userId: 'mux-b' })).ok, true);
    assert.equal((await heard).userId, 'mux-b');
    const offer = once(call, 'offer');
    const sent = await emitWithAck(peer, 'offer', { roomId: room, targetId: 'mux-a', offer: { type: 'offer', sdp: 'v=0' } });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    assert.equal((await offer).senderId, 'mux-b');
    assert.equal((await emitWithAck(lobby, 'subscribe', { channel: ROOMS })).ok, true);
  });

  test('room-list-request answers the list; a relay may not forge a server event', async () => {
    const a = await subscribed(server.url, 'webrtc-signaling');
    const ack = await emitWithAck(a.socket, 'room-list-request', {});
    assert.equal(ack.ok, true);
    const { data } = await a.rec.waitFor('server-room-list');
    assert.equal(data.channel, ROOMS);
    assert.equal(typeof data.timestamp, 'number');
    const forged = await emitWithAck(a.socket, 'server-room-list', { channel: 'webrtc-signaling', rooms: [] });
    assert.equal(forged.error.code, 'invalid-payload');
    a.socket.close();
  });

  test('user-left-room { roomId, userId } removes that user: its own seat, or anyone for the host; not-host for others', async () => {
    const watcher = await subscribed(server.url);
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'kick', hostId: 'kim' } });
    const [ann, bob] = [await client(server.url), await client(server.url)];
    await emitWithAck(ann.socket, 'user-joined-room', { roomId: 'kick', userId: 'ann' });
    await emitWithAck(bob.socket, 'user-joined-room', { roomId: 'kick', userId: 'bob' });
    assert.equal((await emitWithAck(ann.socket, 'user-left-room', { data: { roomId: 'kick', userId: 'bob' } })).error.code, 'not-host');
    assert.deepEqual(await emitWithAck(host.socket, 'user-left-room', { data: { roomId: 'kick', userId: 'bob' } }), { ok: true, roomId: 'kick' });
    const after = await listWhere(watcher, (rooms) => roomById(rooms, 'kick')?.participantCount === 2);
    assert.deepEqual(roomById(after.rooms, 'kick').participants.map((p) => p.id), ['kim', 'ann'], 'bob removed, not the sender');
    assert.equal((await emitWithAck(ann.socket, 'user-left-room', { roomId: 'kick', userId: 'ann' })).ok, true);
    await listWhere(watcher, (rooms) => roomById(rooms, 'kick')?.participantCount === 1);
    closeAll(watcher.socket, host.socket, ann.socket, bob.socket);
  });

  test('/health counts connected clients and /dashboard/health lists rooms as seed 001 does', async () => {
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'healthy', hostId: 'doc', name: 'Clinic' } });
    const { body: health } = await getJson(server.url, '/health');
    assert.ok(health.connected_clients >= 1, JSON.stringify(health));
    assert.equal(typeof health.rooms, 'number', 'the contract keeps rooms a number');
    const { status, body } = await getJson(server.url, '/dashboard/health');
    assert.equal(status, 200);
    assert.equal(body.status, 'ok');
    assert.equal(body.rooms.total, body.rooms.list.length);
    assert.equal(roomById(body.rooms.list, 'healthy').name, 'Clinic');
    host.socket.close();
  });
});

describe('a server of its own, ROOM_LIST_INTERVAL_MS=200', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ROOM_LIST_INTERVAL_MS: '200' } });
  });
  after(() => server.stop());

  // Nothing else happens on this server, so every list after the first can
  // only be the periodic one.
  test('while rooms exist the list comes again every ROOM_LIST_INTERVAL_MS without changes, and stops with the last room', async () => {
    const host = await client(server.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'ticking', hostId: 'tick' } });
    const watcher = await subscribed(server.url);
    await listWhere(watcher, (rooms) => roomById(rooms, 'ticking'));
    const lists = () => watcher.rec.received.filter((r) => r.event === 'server-room-list');
    const seen = lists().length;
    await waitUntil(() => lists().length >= seen + 3, 'three periodic lists', 5000);
    assert.ok(lists().every((l) => roomById(l.data.rooms, 'ticking')), 'the same room every time');
    // The last room closes: one list says so, and then no list comes while
    // the server's own ticks (counted on /metrics) pass without a room.
    const left = await emitWithAck(host.socket, 'user-left-room', { data: { roomId: 'ticking', userId: 'tick' } });
    assert.equal(left.ok, true);
    await listWhere(watcher, (rooms) => rooms.length === 0);
    const closedAt = lists().length;
    const skipped = () => metric(server.url, TICKS_SKIPPED);
    const before = await skipped();
    await waitUntil(async () => (await skipped()) >= before + 3, 'three ticks without a room', 5000);
    await emitWithAck(watcher.socket, 'ping', {});
    assert.equal(lists().length, closedAt, 'no list while no room exists');
    closeAll(host.socket, watcher.socket);
  });
});

describe('with EVENT_BURST=4, EVENTS_PER_SECOND=1 and MAX_PAYLOAD_BYTES=1024', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { EVENT_BURST: '4', EVENTS_PER_SECOND: '1', MAX_PAYLOAD_BYTES: '1024' } });
  });
  after(() => server.stop());

  test('channel relays are held to the event rate limit and the payload limit like every other event', async () => {
    const a = await subscribed(server.url, 'team'); // its subscribe took one event of four
    const b = await subscribed(server.url, 'team');
    for (const n of [1, 2, 3]) {
      assert.equal((await emitWithAck(a.socket, 'note', { channel: 'team', n })).ok, true);
    }
    const refused = await emitWithAck(a.socket, 'note', { channel: 'team', n: 4 });
    assert.equal(refused.error.code, 'rate-limited');
    // b's pong comes after anything relayed to it before: the refused note was not.
    await emitWithAck(b.socket, 'ping', {});
    assert.deepEqual(b.rec.received.filter((r) => r.event === 'note').map((r) => r.data.n), [1, 2, 3]);

    // An oversized event closes its own connection only.
    const big = await subscribed(server.url, 'team');
    const closed = once(big.socket, 'disconnect');
    big.socket.emit('note', { channel: 'team', blob: 'x'.repeat(2048) });
    await closed;
    assert.equal((await emitWithAck(b.socket, 'note', { channel: 'team', n: 5 })).ok, true);
    await emitWithAck(b.socket, 'ping', {});
    assert.ok(!b.rec.received.some((r) => r.data?.blob), 'the oversized event reached no one');
    closeAll(a.socket, b.socket, big.socket);
  });
});

describe('with JWT and MAX_CONNECTIONS_PER_IP=3', () => {
  const SECRET = 'dashboard-test-secret';
  let server;
  const token = (sub) => hs256Token(SECRET, sub);
  async function attempt(auth) {
    const socket = io(`${server.url}/dashboard`, { forceNew: true, reconnection: false, auth });
    sockets.push(socket);
    try {
      await waitConnected(socket);
      return socket;
    } catch (err) {
      socket.close();
      // A refused engine.io handshake is a transport error whose description is the HTTP status.
      return err.description === 429 ? `HTTP 429 (${err.message})` : err.message;
    }
  }
  before(async () => {
    // A session refused at CONNECT keeps its address slot until CONNECT_TIMEOUT_MS (socketioxide holds it).
    server = await startServer({
      extraEnv: { JWT_SECRET: SECRET, MAX_CONNECTIONS_PER_IP: '3', CONNECT_TIMEOUT_MS: '500' },
    });
  });
  after(() => server.stop());

  test('a token is needed, hosts and joiners act only as its user, and the address limit holds', async () => {
    assert.match(await attempt({}), /token/i);
    assert.equal((await getJson(server.url, '/dashboard/health')).status, 401, 'the room list needs a token');
    const ann = await attempt({ token: token('ann') });
    assert.equal(typeof ann, 'object');
    const other = await emitWithAck(ann, 'room-created', { data: { id: 'mine', hostId: 'bob' } });
    assert.equal(other.error.code, 'unauthorized');
    assert.equal((await emitWithAck(ann, 'room-created', { data: { id: 'mine', hostId: 'ann' } })).ok, true);
    const bob = await attempt({ token: token('bob') });
    assert.equal((await emitWithAck(bob, 'user-joined-room', { roomId: 'mine', userId: 'ann' })).error.code, 'unauthorized');
    assert.equal((await emitWithAck(bob, 'join-request', { roomId: 'mine', userId: 'ann' })).error.code, 'unauthorized');
    assert.equal((await emitWithAck(bob, 'user-joined-room', { roomId: 'mine', userId: 'bob' })).ok, true);
    // Three sessions from this address: the fourth handshake is refused (429) until one closes.
    let third;
    const admitted = async () => typeof (third = await attempt({ token: token('cy') })) === 'object';
    await waitUntil(admitted, 'the session refused at CONNECT given back');
    assert.match(await attempt({ token: token('dee') }), /HTTP 429/);
    third.close();
    await waitUntil(async () => typeof (await attempt({ token: token('dee') })) === 'object', 'a slot freed by the close');
    closeAll(ann, bob);
  });
});

describe('two instances with Redis', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { ROOM_LIST_INTERVAL_MS: '200', JOIN_REQUEST_TIMEOUT_MS: '5000' });
  });
  after(() => cluster.stop());

  test('lists, channel relays and approvals cross instances', async () => {
    const [a, b] = cluster.servers;
    // client_count is cluster-wide: a client on a hears the one that joined on b.
    const onA = await client(a.url);
    await onA.rec.waitFor('client_count', (d) => d.count === 1);
    const onB = await client(b.url);
    await onA.rec.waitFor('client_count', (d) => d.count === 2);
    closeAll(onA.socket, onB.socket);
    const watcherB = await subscribed(b.url);
    const host = await client(a.url);
    await emitWithAck(host.socket, 'room-created', { data: { id: 'across', hostId: 'ann', requiresApproval: true } });
    await listWhere(watcherB, (rooms) => roomById(rooms, 'across')?.hostId === 'ann');
    // b repeats the list of a room made on a every ROOM_LIST_INTERVAL_MS, as a does.
    const listsOnB = () => watcherB.rec.received.filter((r) => r.event === 'server-room-list' && roomById(r.data.rooms, 'across'));
    const seen = listsOnB().length;
    await waitUntil(() => listsOnB().length >= seen + 3, 'three periodic lists on b', 5000);
    assert.ok((await metric(b.url, TICKS_SENT)) >= 3, 'b ticked with the room');

    const relayA = await subscribed(a.url, 'webrtc-signaling');
    const relayB = await subscribed(b.url, 'webrtc-signaling');
    await emitWithAck(relayA.socket, 'webrtc-ice', { channel: 'webrtc-signaling', candidate: 'c1' });
    assert.deepEqual((await relayB.rec.waitFor('webrtc-ice')).data, { channel: 'webrtc-signaling', candidate: 'c1' });

    const joiner = await client(b.url);
    assert.equal((await emitWithAck(joiner.socket, 'join-request', { roomId: 'across', userId: 'ben' })).status, 'pending');
    await host.rec.waitFor('join-request', (d) => d.userId === 'ben');
    await emitWithAck(host.socket, 'join-approved', { roomId: 'across', userId: 'ben' });
    await joiner.rec.waitFor('join-approved');
    const core = await client(b.url, '/');
    assert.deepEqual((await emitWithAck(core.socket, 'join-room', { roomId: 'across', userId: 'ben' })).users, ['ann', 'ben']);
    // The host's instance hears of a change made on the other.
    const watcherA = await subscribed(a.url);
    await listWhere(watcherA, (rooms) => roomById(rooms, 'across')?.participantCount === 2);
    // The host leaves on instance a: ben, on instance b, hosts now and is told.
    host.socket.close();
    assert.deepEqual((await core.rec.waitFor('host-changed')).data, { roomId: 'across', hostId: 'ben', host: 'ben' });
    await listWhere(watcherB, (rooms) => roomById(rooms, 'across')?.hostId === 'ben');
    closeAll(watcherA.socket, watcherB.socket, relayA.socket, relayB.socket, joiner.socket, core.socket);
  });
});
