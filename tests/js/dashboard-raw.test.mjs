// Seed 001's own wire protocol over a raw WebSocket (at / without
// organizationId, and at /dashboard/ws), written from seed 001's message
// tables with Node `ws` clients: every message both ways, bad input, channel
// isolation, the demo page still at a plain GET /, raw and socket.io
// /dashboard clients in one directory (lists, relays both ways, approval),
// JWT, and two instances with Redis. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { TIMEOUT_MS, closeAll, emitWithAck, hs256Token, rawSocket, recordedClient, startServer, withTimeout } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';

const ROOMS = 'webrtc-dashboard-rooms';
const ACCESS = 'webrtc-dashboard-access';
const SIGNALING = 'webrtc-signaling';
const WEB_DIR = fileURLToPath(new URL('../../web', import.meta.url));
const open = [];

/**
 * A raw seed-001 client on `url` + `path`: every frame it gets is recorded;
 * `closed` resolves with the close code and reason.
 */
async function raw(url, { path = '/', headers = {} } = {}) {
  const c = rawSocket(url + path, { headers }, path);
  open.push(c.ws);
  await withTimeout(c.opened);
  return c;
}

async function rawSubscribed(url, channel = ROOMS, opts = {}) {
  const c = await raw(url, opts);
  c.send({ type: 'subscribe', channel });
  if (channel === ROOMS) await c.waitFor('server-room-list');
  else await c.settle();
  return c;
}

async function sio(url) {
  const c = await recordedClient(`${url}/dashboard`);
  open.push(c.socket);
  return c;
}

const roomIn = (frame, id) => frame.rooms.find((r) => r.id === id);
const listWith = (c, id, predicate = () => true) => c.waitFor('server-room-list', (f) => Boolean(roomIn(f, id)) && predicate(roomIn(f, id)));
const errorOf = (c, event) => c.waitFor('error', (f) => f.data.event === event);

after(() => {
  for (const s of open) (s.terminate ?? s.close).call(s);
});

describe('one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ROOM_LIST_INTERVAL_MS: '200', JOIN_REQUEST_TIMEOUT_MS: '3000', WEB_DIR } });
  });
  after(() => server.stop());

  test('ping gets pong {type, timestamp}; client_count {type, count, timestamp} counts raw and socket.io clients; a rooms subscriber gets server-room-list', async () => {
    const a = await raw(server.url);
    const first = await a.waitFor('client_count');
    assert.deepEqual(Object.keys(first).sort(), ['count', 'timestamp', 'type']);
    a.send({ type: 'ping' });
    const pong = await a.waitFor('pong');
    assert.deepEqual(Object.keys(pong).sort(), ['timestamp', 'type']);
    assert.ok(Math.abs(pong.timestamp - Date.now()) < 60_000);
    const b = await sio(server.url);
    await a.waitFor('client_count', (f) => f.count === first.count + 1);
    const c = await raw(server.url, { path: '/dashboard/ws' });
    await a.waitFor('client_count', (f) => f.count === first.count + 2);
    c.send({ type: 'subscribe', channel: ROOMS });
    const list = await c.waitFor('server-room-list');
    assert.deepEqual(Object.keys(list).sort(), ['channel', 'rooms', 'timestamp', 'type']);
    assert.equal(list.channel, ROOMS);
    assert.ok(Array.isArray(list.rooms));
    b.socket.close();
    await a.waitFor('client_count', (f) => f.count === first.count + 1);
    closeAll(a.ws, c.ws);
  });

  test('room-created, user-joined-room, user-left-room and room-list-request keep the list; it also comes every ROOM_LIST_INTERVAL_MS', async () => {
    const watcher = await rawSubscribed(server.url);
    const outsider = await raw(server.url);
    const host = await raw(server.url, { path: '/dashboard/ws' });
    host.send({ type: 'room-created', channel: ROOMS, data: { id: 'r1', name: 'Standup', host: 'Hank', hostId: 'hank' } });
    const created = await listWith(watcher, 'r1', (r) => r.hostId === 'hank');
    const room = roomIn(created, 'r1');
    assert.deepEqual({ id: room.id, name: room.name, host: room.host, hostId: room.hostId }, { id: 'r1', name: 'Standup', host: 'Hank', hostId: 'hank' });
    const guest = await raw(server.url);
    guest.send({ type: 'user-joined-room', channel: ROOMS, data: { roomId: 'r1', userId: 'gil', userName: 'Gil' } });
    const joined = await listWith(watcher, 'r1', (r) => r.participants.some((p) => p.id === 'gil' && p.name === 'Gil'));
    assert.deepEqual(roomIn(joined, 'r1').participants.map((p) => p.id), ['hank', 'gil']);
    outsider.send({ type: 'room-list-request', channel: ROOMS });
    const asked = await listWith(outsider, 'r1');
    assert.equal(asked.channel, ROOMS);
    const seen = watcher.frames.length;
    await waitUntil(() => watcher.frames.slice(seen).filter((f) => f.type === 'server-room-list').length >= 2, 'two periodic lists');
    guest.send({ type: 'user-left-room', channel: ROOMS, data: { roomId: 'r1', userId: 'gil' } });
    await listWith(watcher, 'r1', (r) => r.participants.length === 1);
    host.send({ type: 'user-left-room', channel: ROOMS, data: { roomId: 'r1', userId: 'hank' } });
    await watcher.waitFor('server-room-list', (f) => !roomIn(f, 'r1'));
    assert.ok(!outsider.frames.some((f) => f.type === 'server-room-list' && f !== asked), 'no list to a client that did not subscribe or ask');
    closeAll(watcher.ws, outsider.ws, host.ws, guest.ws);
  });

  test('user-left-room removes the named user: its own seat, or anyone for the host; anyone else gets not-host', async () => {
    const watcher = await rawSubscribed(server.url);
    const host = await raw(server.url);
    host.send({ type: 'room-created', data: { id: 'r2', hostId: 'hal' } });
    await host.settle();
    const ann = await raw(server.url);
    const bob = await sio(server.url);
    ann.send({ type: 'user-joined-room', data: { roomId: 'r2', userId: 'ann' } });
    await emitWithAck(bob.socket, 'user-joined-room', { roomId: 'r2', userId: 'bob' });
    await listWith(watcher, 'r2', (r) => r.participantCount === 3);
    ann.send({ type: 'user-left-room', data: { roomId: 'r2', userId: 'bob' } });
    const refused = await errorOf(ann, 'user-left-room');
    assert.equal(refused.data.code, 'not-host');
    const bobTries = await emitWithAck(bob.socket, 'user-left-room', { roomId: 'r2', userId: 'ann' });
    assert.equal(bobTries.error.code, 'not-host');
    host.send({ type: 'user-left-room', data: { roomId: 'r2', userId: 'bob' } });
    const after = await listWith(watcher, 'r2', (r) => r.participantCount === 2);
    assert.deepEqual(roomIn(after, 'r2').participants.map((p) => p.id), ['hal', 'ann'], 'bob removed, not the host');
    host.send({ type: 'user-left-room', data: { roomId: 'r2', userId: 'nobody' } });
    assert.equal((await errorOf(host, 'user-left-room')).data.code, 'target-not-found');
    closeAll(watcher.ws, host.ws, ann.ws, bob.socket);
  });

  test('any other type goes, as the original message, to the other subscribers of its channel only', async () => {
    const a = await rawSubscribed(server.url, SIGNALING);
    const b = await rawSubscribed(server.url, SIGNALING);
    const other = await rawSubscribed(server.url, 'webrtc-dashboard-chat');
    const offer = { type: 'webrtc-offer', channel: SIGNALING, data: { sdp: 'v=0', to: 'b' }, extra: 1 };
    a.send(offer);
    assert.deepEqual(await b.waitFor('webrtc-offer'), offer);
    await Promise.all([a.settle(), other.settle()]);
    assert.ok(!a.frames.some((f) => f.type === 'webrtc-offer'), 'not back to the sender');
    assert.ok(!other.frames.some((f) => f.type === 'webrtc-offer'), 'not to another channel');
    other.send({ type: 'webrtc-offer', channel: SIGNALING, data: {} });
    assert.equal((await errorOf(other, 'webrtc-offer')).data.code, 'not-in-room');
    b.send({ type: 'unsubscribe', channel: SIGNALING });
    await b.settle();
    a.send({ type: 'webrtc-ice', channel: SIGNALING, data: { candidate: 'c' } });
    await a.settle();
    await b.settle();
    assert.ok(!b.frames.some((f) => f.type === 'webrtc-ice'), 'unsubscribed');
    closeAll(a.ws, b.ws, other.ws);
  });

  test('bad input gets an error frame and the connection stays; others keep working', async () => {
    const a = await rawSubscribed(server.url, SIGNALING);
    const b = await rawSubscribed(server.url, SIGNALING);
    const bad = [
      ['not json', null],
      ['[1,2]', null],
      [{ channel: SIGNALING }, null],
      [{ type: 42 }, null],
      [{ type: 'subscribe', channel: 'bad channel!' }, 'subscribe'],
      [{ type: 'room-created', data: { name: 'no id' } }, 'room-created'],
      [{ type: 'user-joined-room', data: { roomId: 'x'.repeat(200), userId: 'u' } }, 'user-joined-room'],
      [{ type: 'server-room-list', channel: SIGNALING, rooms: [] }, 'server-room-list'],
      [{ type: 'mystery' }, 'mystery'],
    ];
    for (const [frame, event] of bad) {
      const before = a.frames.filter((f) => f.type === 'error').length;
      a.send(frame);
      await waitUntil(() => a.frames.filter((f) => f.type === 'error').length > before, `an error for ${JSON.stringify(frame)}`);
      const error = a.frames.filter((f) => f.type === 'error').at(-1);
      assert.equal(error.data.code, 'invalid-payload', JSON.stringify(frame));
      assert.equal(typeof error.data.message, 'string');
      assert.equal(error.data.event, event ?? undefined);
    }
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const binary = await a.waitFor('error', (f) => /binary/.test(f.data.message));
    assert.equal(binary.data.code, 'invalid-payload');
    a.send({ type: 'chat', channel: SIGNALING, data: { text: 'still here' } });
    assert.equal((await b.waitFor('chat')).data.text, 'still here');
    assert.ok(!b.frames.some((f) => f.type === 'error'), 'the other client got no error');
    closeAll(a.ws, b.ws);
  });

  test('a plain GET / is still the demo page', async () => {
    const res = await fetch(server.url + '/', { signal: AbortSignal.timeout(TIMEOUT_MS) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/html/);
    assert.match(await res.text(), /<html/i);
  });

  test('approval: in a room without approval join-request/approved are relays on the access channel; with requiresApproval the server carries them', async () => {
    const host = await rawSubscribed(server.url, ACCESS);
    const joiner = await rawSubscribed(server.url, ACCESS);
    host.send({ type: 'room-created', data: { id: 'open-room', hostId: 'hope' } });
    await host.settle();
    const ask = { type: 'join-request', channel: ACCESS, data: { roomId: 'open-room', userId: 'jay', userName: 'Jay' } };
    joiner.send(ask);
    assert.deepEqual(await host.waitFor('join-request'), ask);
    const yes = { type: 'join-approved', channel: ACCESS, data: { roomId: 'open-room', userId: 'jay' } };
    host.send(yes);
    assert.deepEqual(await joiner.waitFor('join-approved'), yes);

    const bystander = await rawSubscribed(server.url, ACCESS);
    host.send({ type: 'room-created', data: { id: 'vip', hostId: 'hope2', requiresApproval: true } });
    await host.settle();
    joiner.send({ type: 'user-joined-room', data: { roomId: 'vip', userId: 'kay' } });
    assert.equal((await errorOf(joiner, 'user-joined-room')).data.code, 'not-approved');
    joiner.send({ type: 'join-request', channel: ACCESS, data: { roomId: 'vip', userId: 'kay', userName: 'Kay' } });
    const asked = await host.waitFor('join-request', (f) => f.data.roomId === 'vip');
    assert.deepEqual(asked, { type: 'join-request', channel: ACCESS, data: { roomId: 'vip', userId: 'kay', userName: 'Kay' } });
    bystander.send({ type: 'join-approved', channel: ACCESS, data: { roomId: 'vip', userId: 'kay' } });
    assert.equal((await errorOf(bystander, 'join-approved')).data.code, 'not-host');
    host.send({ type: 'join-approved', channel: ACCESS, data: { roomId: 'vip', userId: 'kay' } });
    const approved = await joiner.waitFor('join-approved', (f) => f.data.roomId === 'vip');
    assert.deepEqual(approved, { type: 'join-approved', channel: ACCESS, data: { roomId: 'vip', userId: 'kay' } });
    joiner.send({ type: 'user-joined-room', data: { roomId: 'vip', userId: 'kay' } });
    await joiner.settle();
    assert.equal(joiner.frames.filter((f) => f.type === 'error' && f.data.event === 'user-joined-room').length, 1, 'the second join is allowed');
    await bystander.settle();
    assert.ok(!bystander.frames.some((f) => f.data?.roomId === 'vip' && f.type !== 'error'), 'carried by the server, not relayed');
    assert.equal(joiner.frames.filter((f) => f.type === 'join-approved' && f.data.roomId === 'vip').length, 1, 'told once');
    closeAll(host.ws, joiner.ws, bystander.ws);
  });

  test('raw and socket.io /dashboard clients share lists, relays both ways and approval', async () => {
    const rawWatcher = await rawSubscribed(server.url);
    const sioWatcher = await sio(server.url);
    await emitWithAck(sioWatcher.socket, 'subscribe', { channel: ROOMS });
    const sioHost = await sio(server.url);
    await emitWithAck(sioHost.socket, 'room-created', { data: { id: 'mixed', hostId: 'sam', host: 'Sam', requiresApproval: true } });
    assert.equal(roomIn(await listWith(rawWatcher, 'mixed'), 'mixed').host, 'Sam');
    const rawHost = await raw(server.url);
    rawHost.send({ type: 'room-created', data: { id: 'from-raw', hostId: 'rae' } });
    await rawHost.settle();
    await sioWatcher.rec.waitFor('server-room-list', (d) => d.rooms.some((r) => r.id === 'from-raw'));

    const rawPeer = await rawSubscribed(server.url, SIGNALING);
    const sioPeer = await sio(server.url);
    await emitWithAck(sioPeer.socket, 'subscribe', { channel: SIGNALING });
    const fromRaw = { type: 'webrtc-answer', channel: SIGNALING, data: { sdp: 'a' } };
    rawPeer.send(fromRaw);
    assert.deepEqual((await sioPeer.rec.waitFor('webrtc-answer')).data, fromRaw);
    await emitWithAck(sioPeer.socket, 'webrtc-ice', { channel: SIGNALING, candidate: 'c1' });
    assert.deepEqual(await rawPeer.waitFor('webrtc-ice'), { type: 'webrtc-ice', channel: SIGNALING, candidate: 'c1' });

    const joiner = await raw(server.url);
    joiner.send({ type: 'join-request', channel: ACCESS, data: { roomId: 'mixed', userId: 'rio', userName: 'Rio' } });
    assert.deepEqual((await sioHost.rec.waitFor('join-request')).data, { roomId: 'mixed', userId: 'rio', userName: 'Rio' });
    await emitWithAck(sioHost.socket, 'join-rejected', { roomId: 'mixed', userId: 'rio' });
    assert.deepEqual(await joiner.waitFor('join-rejected'), { type: 'join-rejected', channel: ACCESS, data: { roomId: 'mixed', userId: 'rio' } });
    closeAll(rawWatcher.ws, sioWatcher.socket, sioHost.socket, rawHost.ws, rawPeer.ws, sioPeer.socket, joiner.ws);
  });
});

describe('with EVENT_BURST=4, EVENTS_PER_SECOND=1 and MAX_PAYLOAD_BYTES=1024', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { EVENT_BURST: '4', EVENTS_PER_SECOND: '1', MAX_PAYLOAD_BYTES: '1024' } });
  });
  after(() => server.stop());

  test('past the rate limit a frame gets rate-limited; an oversized frame closes with 1009 and others go on', async () => {
    const a = await raw(server.url);
    for (let i = 0; i < 6; i += 1) a.send({ type: 'ping' });
    const limited = await a.waitFor('error', (f) => f.data.code === 'rate-limited');
    assert.equal(typeof limited.data.message, 'string');
    const b = await rawSubscribed(server.url, SIGNALING);
    const c = await rawSubscribed(server.url, SIGNALING);
    b.send({ type: 'chat', channel: SIGNALING, data: { text: 'x'.repeat(2000) } });
    const { code } = await withTimeout(b.closed);
    assert.equal(code, 1009);
    c.send({ type: 'ping' });
    await c.waitFor('pong');
    closeAll(a.ws, c.ws);
  });
});

describe('with JWT_SECRET', () => {
  const secret = 'raw-dashboard-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { JWT_SECRET: secret } });
  });
  after(() => server.stop());

  test('without a token the upgrade is closed with 1008; with one (query or Bearer) it works as its user', async () => {
    for (const path of ['/', '/dashboard/ws']) {
      const refused = await raw(server.url, { path });
      assert.equal((await withTimeout(refused.closed)).code, 1008, path);
    }
    const byQuery = await raw(server.url, { path: `/?token=${hs256Token(secret, 'ann')}` });
    byQuery.send({ type: 'ping' });
    await byQuery.waitFor('pong');
    const byHeader = await raw(server.url, { path: '/dashboard/ws', headers: { authorization: `Bearer ${hs256Token(secret, 'bob')}` } });
    byHeader.send({ type: 'room-created', data: { id: 'mine', hostId: 'ann' } });
    assert.equal((await errorOf(byHeader, 'room-created')).data.code, 'unauthorized');
    byHeader.send({ type: 'subscribe', channel: ROOMS });
    byHeader.send({ type: 'room-created', data: { id: 'mine', hostId: 'bob' } });
    await listWith(byHeader, 'mine');
    closeAll(byQuery.ws, byHeader.ws);
  });
});

describe('two instances with Redis', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { ROOM_LIST_INTERVAL_MS: '200' });
  });
  after(() => cluster.stop());

  test('a raw client on a sees a room created by a socket.io client on b, and relays cross both ways', async () => {
    const [a, b] = cluster.servers;
    const rawA = await rawSubscribed(a.url);
    const sioB = await sio(b.url);
    await emitWithAck(sioB.socket, 'room-created', { data: { id: 'far', hostId: 'fay', name: 'Far' } });
    assert.equal(roomIn(await listWith(rawA, 'far'), 'far').name, 'Far');
    rawA.send({ type: 'subscribe', channel: SIGNALING });
    await rawA.settle();
    await emitWithAck(sioB.socket, 'subscribe', { channel: SIGNALING });
    const offer = { type: 'webrtc-offer', channel: SIGNALING, data: { sdp: 'v=0' } };
    rawA.send(offer);
    assert.deepEqual((await sioB.rec.waitFor('webrtc-offer')).data, offer);
    await emitWithAck(sioB.socket, 'webrtc-answer', { channel: SIGNALING, sdp: 'v=1' });
    assert.deepEqual(await rawA.waitFor('webrtc-answer'), { type: 'webrtc-answer', channel: SIGNALING, sdp: 'v=1' });
    closeAll(rawA.ws, sioB.socket);
  });
});
