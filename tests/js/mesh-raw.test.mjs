// Seed 000's own protocol over a raw WebSocket at `/` (ws 8), written from
// seed 000's message tables: `{type, data}` frames both ways, welcome first,
// client lists, top-level server heartbeats, admin election frames, location
// updates, peer messages, the error frame for bad input (the connection
// stays open), 1009 for an oversized frame, isolation between organizations,
// a raw client and a socket.io /mesh client of one organization together
// (lists, peer messages both ways, one election), JWT, rate limit and
// keepalive, and across two instances with Redis. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { TIMEOUT_MS, closeAll, emitWithAck, hs256Token, rawSocket, recordedClient, startServer } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';

const MESH_ENV = { HEARTBEAT_INTERVAL: '200', CLIENT_TIMEOUT: '1000', ELECTION_DELAY: '300' };
const open = [];

/**
 * A seed-000 client: `ws://host/?organizationId=&clientId=&clientName=&capabilities=`
 * (plus `extra` query parameters); it sends `{type:'heartbeat'}` every 200 ms
 * unless `silent`. Every frame it gets is recorded, parsed, in order.
 */
function rawClient(base, org, id, capabilities = '', { silent = false, name = id, extra = {}, headers, wsOptions = {} } = {}) {
  const url = new URL(base.replace(/^http/, 'ws'));
  const query = { ...(org === undefined ? {} : { organizationId: org }), ...(id === undefined ? {} : { clientId: id }) };
  for (const [k, v] of Object.entries({ ...query, clientName: name, capabilities, ...extra })) {
    if (v !== undefined) url.searchParams.set(k, v);
  }
  const c = rawSocket(url.href, { headers, ...wsOptions }, id);
  open.push(c.ws);
  if (!silent) {
    const timer = setInterval(() => c.ws.readyState === WebSocket.OPEN && c.send({ type: 'heartbeat' }), 200);
    timer.unref();
    c.ws.once('close', () => clearInterval(timer));
  }
  return { ...c, id, received: c.frames };
}

/** A raw client once its welcome came. */
async function member(base, org, id, capabilities = '', opts = {}) {
  const c = rawClient(base, org, id, capabilities, opts);
  await c.waitFor('welcome');
  return c;
}

/** A socket.io /mesh client (seed 000's query), heartbeating. */
async function sioMember(base, org, id, capabilities = '') {
  const query = { organizationId: org, clientId: id, clientName: id, capabilities };
  const m = await recordedClient(`${base}/mesh`, { query }, { heartbeatMs: 200 });
  return { ...m, id };
}

const ids = (frame) => frame.data.clients.map((c) => c.id);
const errorOf = (c, event, code) => c.waitFor('error', (f) => f.data.event === event && f.data.code === code);
const sioSockets = [];

after(() => {
  for (const ws of open) ws.terminate();
  closeAll(...sioSockets);
});

describe('one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: MESH_ENV });
  });
  after(() => server.stop());

  test('welcome comes first, then client-list-update; server-heartbeat is flat; request-client-list answers', async () => {
    const ann = rawClient(server.url, 'acme', 'ann', 'location.share', { name: 'Ann' });
    const welcome = await ann.waitFor('welcome');
    assert.equal(ann.received[0], welcome, 'welcome is the first frame');
    assert.deepEqual(Object.keys(welcome.data).sort(), ['organizationId', 'serverId', 'serverName', 'timestamp']);
    assert.equal(welcome.data.organizationId, 'acme');
    assert.equal(typeof welcome.data.serverId, 'string');
    assert.equal(typeof welcome.data.timestamp, 'number');
    const list = await ann.waitFor('client-list-update');
    const between = ann.received.slice(1, ann.received.indexOf(list)).map((f) => f.type);
    assert.ok(between.every((t) => t.endsWith('heartbeat')), `only heartbeats may come between welcome and the list: ${between}`);
    assert.deepEqual(list.data.clients.map(({ id, name, capabilities }) => ({ id, name, capabilities })), [
      { id: 'ann', name: 'Ann', capabilities: ['location.share'] },
    ]);
    assert.equal(typeof list.data.clients[0].lastSeen, 'number');

    const bob = await member(server.url, 'acme', 'bob', 'location.view');
    await ann.waitFor('client-list-update', (f) => f.data.clients.length === 2);
    const beat = await ann.waitFor('server-heartbeat', (f) => f.clientCount === 2);
    assert.equal(typeof beat.timestamp, 'number');
    assert.equal(beat.data, undefined, 'timestamp and clientCount are at the top level, as seed 000 writes them');

    const before = bob.received.filter((f) => f.type === 'client-list-update').length;
    bob.send({ type: 'request-client-list' });
    await waitUntil(() => bob.received.filter((f) => f.type === 'client-list-update').length > before, 'a list on request');
    assert.deepEqual(ids(bob.received.findLast((f) => f.type === 'client-list-update')), ['ann', 'bob']);
    ann.ws.close();
    bob.ws.close();
  });

  test('heartbeat keeps a client; a silent one is dropped after CLIENT_TIMEOUT and the others told', async () => {
    const live = await member(server.url, 'stale', 'live');
    const quiet = await member(server.url, 'stale', 'quiet', '', { silent: true });
    await live.waitFor('client-list-update', (f) => f.data.clients.length === 2);
    assert.equal((await quiet.closedWithin(4000)).code, 1000);
    await live.waitFor('client-list-update', (f) => ids(f).join() === 'live');
    assert.equal(live.ws.readyState, WebSocket.OPEN, 'the heartbeating client stays');
    live.ws.close();
  });

  test('location updates reach viewers, peer messages one client or all, and nothing crosses organizations', async () => {
    const ann = await member(server.url, 'acme2', 'ann', 'location.share');
    const bob = await member(server.url, 'acme2', 'bob', 'location.view');
    const gus = await member(server.url, 'globex', 'gus', 'location.view');
    await ann.waitFor('client-list-update', (f) => f.data.clients.length === 2);

    ann.send({ type: 'location-update', data: { latitude: 40.7128, longitude: -74.006, accuracy: 10 } });
    const seen = await bob.waitFor('location-update');
    assert.deepEqual({ ...seen.data, timestamp: 0 }, { clientId: 'ann', latitude: 40.7128, longitude: -74.006, accuracy: 10, timestamp: 0 });
    ann.send({ type: 'peer-message', data: { targetId: 'bob', message: { hello: 1 } } });
    const direct = await bob.waitFor('peer-message');
    assert.deepEqual({ ...direct.data, timestamp: 0 }, { fromId: 'ann', fromName: 'ann', message: { hello: 1 }, timestamp: 0 });
    bob.send({ type: 'peer-message', data: { targetId: 'broadcast', message: 'all' } });
    assert.equal((await ann.waitFor('peer-message')).data.message, 'all');
    ann.send({ type: 'peer-message', data: { targetId: 'gus', message: 'x' } });
    await errorOf(ann, 'peer-message', 'target-not-found');

    const lists = () => gus.received.filter((f) => f.type === 'client-list-update').length;
    const listsBefore = lists();
    gus.send({ type: 'request-client-list' });
    await waitUntil(() => lists() >= 2 && lists() > listsBefore, 'gus got a list on request');
    for (const f of gus.received) {
      assert.ok(!['peer-message', 'location-update'].includes(f.type), `nothing crosses organizations: ${f.type}`);
      if (f.type === 'client-list-update') assert.deepEqual(ids(f), ['gus']);
    }
    assert.equal(ann.received.filter((f) => f.type === 'peer-message').length, 1, 'a broadcast skips its sender');
    assert.equal(bob.received.filter((f) => f.type === 'peer-message').length, 1, "bob's broadcast skipped bob: only ann's message");
    closeAllRaw(ann, bob, gus);
  });

  test('admin-elected, admin-heartbeat and admin-stepped-down name the admin', async () => {
    const viewer = await member(server.url, 'elect', 'viewer', 'location.view');
    const manager = await member(server.url, 'elect', 'manager', 'admin.manage');
    const elected = await viewer.waitFor('admin-elected');
    assert.deepEqual({ ...elected.data, timestamp: 0 }, {
      organizationId: 'elect', deviceId: 'manager', adminId: 'manager', priority: 11, temporary: true, timestamp: 0,
    });
    const beat = await viewer.waitFor('admin-heartbeat');
    assert.deepEqual(Object.keys(beat.data).sort(), ['deviceId', 'timestamp']);
    assert.equal(beat.data.deviceId, 'manager');

    const chief = await member(server.url, 'elect', 'chief', 'admin.main');
    const down = await manager.waitFor('admin-stepped-down');
    assert.deepEqual({ adminId: down.data.adminId, reason: down.data.reason }, { adminId: 'manager', reason: 'main-admin-returned' });
    const main = await viewer.waitFor('admin-elected', (f) => f.data.deviceId === 'chief');
    assert.equal(main.data.temporary, false);
    closeAllRaw(viewer, manager, chief);
  });

  test('bad input gets an error frame and the connection stays; an oversized frame closes with 1009; others go on', async () => {
    const bad = await member(server.url, 'bad', 'bad');
    const peer = await member(server.url, 'bad', 'peer');
    await bad.waitFor('client-list-update', (f) => f.data.clients.length === 2);
    const cases = [
      ['not json', null, /not JSON/],
      ['[1,2]', null, /one JSON object/],
      [{ data: {} }, null, /type is required/],
      [{ type: 'dance' }, 'dance', /unknown event "dance"/],
      [{ type: 'location-update', data: { latitude: 'north', longitude: 0, accuracy: 1 } }, 'location-update', /latitude must be a number/],
      [{ type: 'location-update', data: { latitude: 91, longitude: 0, accuracy: 1 } }, 'location-update', /latitude/],
      [{ type: 'peer-message', data: { targetId: 7, message: 1 } }, 'peer-message', /targetId must be a string/],
      [{ type: 'peer-message', data: { targetId: 'peer' } }, 'peer-message', /message is required/],
    ];
    for (const [frame, event, message] of cases) {
      const before = bad.received.length;
      bad.send(frame);
      await waitUntil(() => bad.received.slice(before).some((f) => f.type === 'error'), `an error for ${JSON.stringify(frame)}`);
      const err = bad.received.slice(before).find((f) => f.type === 'error');
      assert.deepEqual({ code: err.data.code, event: err.data.event }, { code: 'invalid-payload', event }, JSON.stringify(frame));
      assert.match(err.data.message, message);
    }
    const before = bad.received.length;
    bad.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await waitUntil(() => bad.received.slice(before).some((f) => f.type === 'error'), 'an error for a binary frame');
    assert.match(bad.received.slice(before).find((f) => f.type === 'error').data.message, /JSON text, not binary/);
    bad.send({ type: 'peer-message', data: { targetId: 'peer', message: 'still here' } });
    assert.equal((await peer.waitFor('peer-message')).data.message, 'still here', 'the connection stayed open');

    bad.send('x'.repeat(65536 + 1024)); // past MAX_PAYLOAD_BYTES (64 KiB)
    assert.equal((await bad.closedWithin()).code, 1009);
    await peer.waitFor('client-list-update', (f) => ids(f).join() === 'peer');
    const other = await member(server.url, 'bad', 'other');
    other.send({ type: 'peer-message', data: { targetId: 'peer', message: 'after' } });
    await peer.waitFor('peer-message', (f) => f.data.message === 'after');
    closeAllRaw(peer, other);
  });

  test('a client id connecting again turns its older connection out', async () => {
    const first = await member(server.url, 'again', 'dup');
    const second = await member(server.url, 'again', 'dup');
    assert.equal((await first.closedWithin()).code, 1000);
    await second.waitFor('client-list-update', (f) => ids(f).join() === 'dup');
    assert.equal(second.ws.readyState, WebSocket.OPEN);
    second.ws.close();
  });

  test('a raw client and a socket.io /mesh client of one organization share lists, peer messages and one election', async () => {
    const raw = await member(server.url, 'mixed', 'rawann', 'admin.manage'); // 11
    const sio = await sioMember(server.url, 'mixed', 'siobob', 'server.temporary'); // 4
    sioSockets.push(sio.socket);
    await raw.waitFor('client-list-update', (f) => ids(f).join() === 'rawann,siobob');
    await sio.rec.waitFor('client-list-update', (d) => d.clients.map((c) => c.id).join() === 'rawann,siobob');

    raw.send({ type: 'peer-message', data: { targetId: 'siobob', message: { to: 'sio' } } });
    assert.deepEqual((await sio.rec.waitFor('peer-message')).data.message, { to: 'sio' });
    await emitWithAck(sio.socket, 'peer-message', { targetId: 'rawann', message: { to: 'raw' } });
    const got = await raw.waitFor('peer-message');
    assert.deepEqual({ fromId: got.data.fromId, message: got.data.message }, { fromId: 'siobob', message: { to: 'raw' } });
    raw.send({ type: 'peer-message', data: { targetId: 'broadcast', message: 'from raw' } });
    await sio.rec.waitFor('peer-message', (d) => d.message === 'from raw');
    await emitWithAck(sio.socket, 'peer-message', { data: { targetId: 'broadcast', message: 'from sio' } });
    await raw.waitFor('peer-message', (f) => f.data.message === 'from sio');

    const sioElected = await sio.rec.waitFor('admin-elected');
    assert.deepEqual([sioElected.data.deviceId, sioElected.data.adminId], ['rawann', 'rawann'], 'socket.io names the admin deviceId too');
    assert.equal((await raw.waitFor('admin-elected')).data.deviceId, 'rawann');
    raw.ws.close();
    await sio.rec.waitFor('admin-elected', (d) => d.deviceId === 'siobob');
    const all = sio.rec.received.filter((r) => r.event === 'admin-elected').map((r) => r.data.deviceId);
    assert.deepEqual(all, ['rawann', 'siobob'], 'one election for both transports');
    sio.socket.close();
  });
});

function closeAllRaw(...clients) {
  for (const c of clients) c.ws.close();
}

describe('limits and keepalive', () => {
  let server;
  before(async () => {
    server = await startServer({
      extraEnv: {
        ...MESH_ENV, CLIENT_TIMEOUT: '60000', EVENTS_PER_SECOND: '2', EVENT_BURST: '5',
        RATE_LIMIT_DISCONNECT_AFTER: '20', PING_INTERVAL_MS: '200', PING_TIMEOUT_MS: '400',
      },
    });
  });
  after(() => server.stop());

  test('frames past the rate limit get rate-limited error frames; flooding on closes 1008', async () => {
    const c = await member(server.url, 'rate', 'fast', '', { silent: true });
    for (let i = 0; i < 10; i += 1) c.send({ type: 'request-client-list' });
    const limited = await c.waitFor('error', (f) => f.data.code === 'rate-limited');
    assert.equal(limited.data.event, null, 'a frame refused before it is read has no type');
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    for (let i = 0; i < 40 && c.ws.readyState === WebSocket.OPEN; i += 1) c.send({ type: 'heartbeat' });
    assert.equal((await c.closedWithin()).code, 1008);
  });

  test('the server pings every PING_INTERVAL_MS and drops a client that does not answer within PING_TIMEOUT_MS', async () => {
    const answering = await member(server.url, 'ping', 'answers', '', { silent: true });
    let pings = 0;
    answering.ws.on('ping', () => (pings += 1));
    const mute = await member(server.url, 'ping', 'mute', '', { silent: true, wsOptions: { autoPong: false } });
    const { code } = await mute.closedWithin(3000);
    assert.notEqual(code, 1000, 'dropped, not closed cleanly');
    await answering.waitFor('client-list-update', (f) => ids(f).join() === 'answers');
    await waitUntil(() => pings >= 2, 'pings keep coming');
    assert.equal(answering.ws.readyState, WebSocket.OPEN, 'a client that answers stays');
    answering.ws.close();
  });
});

describe('with JWT', () => {
  const SECRET = 'mesh-raw-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ...MESH_ENV, JWT_SECRET: SECRET } });
  });
  after(() => server.stop());

  const scoped = (sub) => hs256Token(SECRET, sub, { organizationId: 'acme', capabilities: 'admin.manage' });

  test('without a token the raw client is closed 1008; the token bounds it as on /mesh; with one it works', async () => {
    const none = rawClient(server.url, 'acme', 'alice', 'admin.manage');
    const refused = await none.closedWithin();
    assert.deepEqual([refused.code, /token is required/.test(refused.reason)], [1008, true], refused.reason);
    assert.equal(none.received.length, 0, 'nothing before the close');
    for (const [id, extra, reason] of [
      ['bob', { token: scoped('alice') }, /may only connect as clientId "alice"/],
      ['alice', { token: hs256Token(SECRET, 'alice') }, /has no organizationId claim/],
      ['alice', { token: 'not-a-token' }, /unauthorized/],
    ]) {
      const c = rawClient(server.url, 'acme', id, 'admin.manage', { extra });
      const closed = await c.closedWithin();
      assert.equal(closed.code, 1008);
      assert.match(closed.reason, reason);
    }
    const orgDenied = rawClient(server.url, 'other', 'alice', '', { extra: { token: scoped('alice') } });
    assert.match((await orgDenied.closedWithin()).reason, /may not join organizationId "other"/);

    const alice = await member(server.url, 'acme', 'alice', 'admin.manage', { extra: { token: scoped('alice') } });
    const bob = await member(server.url, 'acme', 'bob', '', { headers: { Authorization: `Bearer ${scoped('bob')}` } });
    await alice.waitFor('client-list-update', (f) => ids(f).join() === 'alice,bob');
    bob.send({ type: 'peer-message', data: { targetId: 'alice', message: 'hi' } });
    assert.equal((await alice.waitFor('peer-message')).data.message, 'hi');
    closeAllRaw(alice, bob);
  });
});

describe('two instances with Redis', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { ...MESH_ENV, INSTANCE_TTL_MS: '1000' });
  });
  after(() => cluster.stop());

  test('a raw client on A and a socket.io client on B see each other and exchange peer messages', async () => {
    const [a, b] = cluster.servers;
    const raw = await member(a.url, 'wide', 'onA', 'admin.manage');
    const sio = await sioMember(b.url, 'wide', 'onB');
    sioSockets.push(sio.socket);
    await raw.waitFor('client-list-update', (f) => ids(f).join() === 'onA,onB');
    await sio.rec.waitFor('client-list-update', (d) => d.clients.map((c) => c.id).join() === 'onA,onB');
    raw.send({ type: 'peer-message', data: { targetId: 'onB', message: 'A to B' } });
    assert.equal((await sio.rec.waitFor('peer-message')).data.fromId, 'onA');
    await emitWithAck(sio.socket, 'peer-message', { targetId: 'onA', message: 'B to A' });
    assert.equal((await raw.waitFor('peer-message')).data.message, 'B to A');
    assert.equal((await sio.rec.waitFor('admin-elected')).data.deviceId, 'onA', 'one election across instances');
    raw.ws.close();
    sio.socket.close();
  });
});
