// The /mesh namespace (seed 000) with socket.io-client 4.8: identity in the
// handshake, welcome, client lists, heartbeats, location updates to viewers,
// peer messages, stale-client removal, organization isolation, and the
// temporary-admin election (priority, tie-break, re-election, handoff to a
// main admin), also across two instances with Redis. Short intervals come
// from the environment; every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

import { closeAll, emitWithAck, handshakeOutcome, hs256Token, recordedClient, startServer, waitConnected } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';

const sockets = [];
const MESH_ENV = { HEARTBEAT_INTERVAL: '200', CLIENT_TIMEOUT: '1000', ELECTION_DELAY: '300' };

/** A mesh client of `org` (query parameters, as seed 000); it heartbeats every 200 ms unless `silent`. */
async function member(url, org, id, capabilities = '', { silent = false, name = id } = {}) {
  const query = { organizationId: org, clientId: id, clientName: name, capabilities };
  const m = await recordedClient(`${url}/mesh`, { query }, { heartbeatMs: silent ? undefined : 200 });
  sockets.push(m.socket);
  return { ...m, id };
}

/** The admin ids announced to `m` so far, in order. */
const elected = (m) => m.rec.received.filter((r) => r.event === 'admin-elected').map((r) => r.data.deviceId);

/** The next admin-elected names `adminId`, as `deviceId` and as its alias `adminId`. */
function electedNext(m, adminId, ms = 5000) {
  const named = (d) => d.deviceId === adminId && d.adminId === adminId;
  return m.rec.waitFor('admin-elected', (d) => named(d) && elected(m).lastIndexOf(adminId) === elected(m).length - 1, ms);
}

after(() => closeAll(...sockets));

describe('one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: MESH_ENV });
  });
  after(() => server.stop());

  test('a handshake without organization or client id is refused with the reason', async () => {
    for (const [query, reason] of [
      [{ clientId: 'a' }, /organizationId is required/],
      [{ organizationId: 'o' }, /clientId is required/],
      [{ organizationId: 'o', clientId: 'bad id' }, /clientId must be/],
      [{ organizationId: 'o', clientId: 'a', capabilities: 'ok,not ok' }, /capabilities/],
    ]) {
      const socket = io(`${server.url}/mesh`, { forceNew: true, reconnection: false, query });
      sockets.push(socket);
      await assert.rejects(waitConnected(socket), reason);
      socket.close();
    }
  });

  test('welcome, client lists, heartbeats, peer messages and location updates stay within the organization', async () => {
    const a = await member(server.url, 'acme', 'ann', 'location.share');
    const welcome = await a.rec.waitFor('welcome');
    assert.equal(welcome.data.organizationId, 'acme');
    assert.equal(typeof welcome.data.serverId, 'string');
    const b = await member(server.url, 'acme', 'bob', 'location.view');
    const other = await member(server.url, 'globex', 'gus', 'location.view');
    const list = await a.rec.waitFor('client-list-update', (d) => d.clients.length === 2);
    assert.deepEqual(list.data.clients.map((c) => [c.id, c.name, c.capabilities]), [
      ['ann', 'ann', ['location.share']],
      ['bob', 'bob', ['location.view']],
    ]);
    assert.equal((await a.rec.waitFor('server-heartbeat', (d) => d.clientCount === 2)).data.clientCount, 2);
    assert.equal((await emitWithAck(a.socket, 'heartbeat', {})).ok, true);

    await emitWithAck(a.socket, 'peer-message', { data: { targetId: 'bob', message: { hello: 1 } } });
    const direct = await b.rec.waitFor('peer-message');
    assert.deepEqual({ fromId: direct.data.fromId, message: direct.data.message }, { fromId: 'ann', message: { hello: 1 } });
    await emitWithAck(b.socket, 'peer-message', { targetId: 'broadcast', message: 'all' });
    assert.equal((await a.rec.waitFor('peer-message')).data.message, 'all');
    const missing = await emitWithAck(a.socket, 'peer-message', { targetId: 'gus', message: 'x' });
    assert.equal(missing.error.code, 'target-not-found', 'another organization is out of reach');

    assert.equal((await emitWithAck(a.socket, 'location-update', { data: { latitude: 40.7, longitude: -74, accuracy: 10 } })).ok, true);
    const seen = await b.rec.waitFor('location-update');
    assert.deepEqual({ clientId: seen.data.clientId, latitude: seen.data.latitude }, { clientId: 'ann', latitude: 40.7 });
    const bad = await emitWithAck(a.socket, 'location-update', { latitude: 91, longitude: 0, accuracy: 1 });
    assert.equal(bad.error.code, 'invalid-payload');

    await emitWithAck(other.socket, 'request-client-list', {});
    const theirs = await other.rec.waitFor('client-list-update', (d) => d.clients.some((c) => c.id === 'gus'));
    assert.deepEqual(theirs.data.clients.map((c) => c.id), ['gus']);
    for (const r of other.rec.received) {
      assert.ok(!['peer-message', 'location-update'].includes(r.event), `nothing crosses organizations: ${r.event}`);
    }
    closeAll(a.socket, b.socket, other.socket);
  });

  test('the candidate of highest priority is elected, the earlier join wins a tie, and heartbeats name it', async () => {
    const viewer = await member(server.url, 'elect', 'viewer', 'location.view,location.share'); // no admin capability
    const temp = await member(server.url, 'elect', 'temp', 'server.temporary,location.view'); // 10
    const manager = await member(server.url, 'elect', 'manager', 'admin.manage'); // 11
    const twin = await member(server.url, 'elect', 'twin', 'admin.manage'); // 11, later
    const first = await electedNext(viewer, 'manager');
    assert.deepEqual({ priority: first.data.priority, temporary: first.data.temporary }, { priority: 11, temporary: true });
    await viewer.rec.waitFor('admin-heartbeat', (d) => d.deviceId === 'manager');
    // The admin leaves: twin (11, as manager, who joined earlier) beats temp (10).
    manager.socket.close();
    await electedNext(viewer, 'twin');
    twin.socket.close();
    await electedNext(viewer, 'temp');
    closeAll(viewer.socket, temp.socket);
  });

  test('a silent client is dropped after CLIENT_TIMEOUT, the others told, and a silent admin is replaced', async () => {
    const watcher = await member(server.url, 'stale', 'watcher', 'server.temporary');
    const quiet = await member(server.url, 'stale', 'quiet', 'admin.manage', { silent: true });
    await electedNext(watcher, 'quiet');
    await watcher.rec.waitFor('client-list-update', (d) => d.clients.length === 1 && d.clients[0].id === 'watcher', 5000);
    await waitUntil(() => !quiet.socket.connected, 'the silent client disconnected');
    await electedNext(watcher, 'watcher');
    watcher.socket.close();
  });

  test('a returning main admin takes over and the temporary admin steps down', async () => {
    const temp = await member(server.url, 'handoff', 'temp', 'admin.manage');
    await electedNext(temp, 'temp');
    const main = await member(server.url, 'handoff', 'chief', 'admin.main');
    const down = await temp.rec.waitFor('admin-stepped-down');
    assert.deepEqual({ adminId: down.data.adminId, reason: down.data.reason }, { adminId: 'temp', reason: 'main-admin-returned' });
    const chief = await electedNext(temp, 'chief');
    assert.equal(chief.data.temporary, false);
    main.socket.close();
    await electedNext(temp, 'temp');
    temp.socket.close();
  });
});

describe('two instances with Redis', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { ...MESH_ENV, INSTANCE_TTL_MS: '1000' });
  });
  after(() => cluster.stop());

  test('one admin per organization across instances, and a new one when the admin’s instance is killed', async () => {
    const [a, b] = cluster.servers;
    const onA = await member(a.url, 'wide', 'alpha', 'admin.manage,location.view'); // 2 + 15 = 17
    const onB = await member(b.url, 'wide', 'beta', 'server.temporary'); // 4
    const watcher = await member(b.url, 'wide', 'watch', '');
    await electedNext(watcher, 'alpha');
    await onB.rec.waitFor('client-list-update', (d) => d.clients.length === 3);
    // Every admin-elected anyone saw names alpha: never two admins.
    for (const m of [onA, onB, watcher]) {
      await m.rec.waitFor('admin-elected', (d) => d.deviceId === 'alpha');
      await m.rec.waitFor('admin-heartbeat', (d) => d.deviceId === 'alpha');
      assert.deepEqual([...new Set(elected(m))], ['alpha'], `${m.id} saw only one admin`);
    }
    a.process.kill('SIGKILL');
    // Lease (ELECTION_DELAY) + ELECTION_DELAY + a tick, plus the dead instance's heartbeat (INSTANCE_TTL_MS).
    await electedNext(watcher, 'beta', 8000);
    assert.deepEqual(elected(watcher), ['alpha', 'beta']);
    closeAll(onB.socket, watcher.socket);
  });
});

describe('with JWT', () => {
  const SECRET = 'mesh-test-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ...MESH_ENV, JWT_SECRET: SECRET } });
  });
  after(() => server.stop());

  const attempt = (query, auth) => handshakeOutcome(`${server.url}/mesh`, { query, auth });

  test('the token names the clientId, and its organizationId and capabilities claims bound what it may claim', async () => {
    const query = (org, id, capabilities = '') => ({ organizationId: org, clientId: id, capabilities });
    const plain = { token: hs256Token(SECRET, 'alice') };
    assert.match(await attempt(query('acme', 'alice'), {}), /token/i);
    assert.match(await attempt(query('acme', 'bob'), plain), /may only connect as clientId "alice"/);
    // Without its organizationId and capabilities claims a token is refused on /mesh (issue 17, problem 6).
    assert.match(await attempt(query('anywhere', 'alice', 'admin.main'), plain), /has no organizationId claim/);
    const orgOnly = { token: hs256Token(SECRET, 'alice', { organizationId: 'acme' }) };
    assert.match(await attempt(query('acme', 'alice'), orgOnly), /has no capabilities claim/);

    const scoped = { token: hs256Token(SECRET, 'alice', { organizationId: 'acme', capabilities: 'location.view,admin.manage' }) };
    assert.match(await attempt(query('other', 'alice'), scoped), /may not join organizationId "other"/);
    assert.match(await attempt(query('acme', 'alice', 'admin.manage,admin.main'), scoped), /may not declare the capability "admin.main"/);
    assert.equal(await attempt(query('acme', 'alice', 'admin.manage'), scoped), 'connected');
    const listed = { token: hs256Token(SECRET, 'alice', { organizationId: ['acme', 'beta'], capabilities: ['admin.main'] }) };
    assert.equal(await attempt(query('beta', 'alice', 'admin.main'), listed), 'connected');
    // A malformed scope claim shuts /mesh and nothing else.
    const odd = { token: hs256Token(SECRET, 'alice', { organizationId: 7 }) };
    assert.match(await attempt(query('acme', 'alice'), odd), /organizationId or capabilities claim is malformed/);
    assert.equal(await handshakeOutcome(`${server.url}/`, { auth: odd }), 'connected');
  });
});

describe('with JWT and MESH_OPEN_WITH_JWT=true', () => {
  const SECRET = 'mesh-test-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { ...MESH_ENV, JWT_SECRET: SECRET, MESH_OPEN_WITH_JWT: 'true' } });
  });
  after(() => server.stop());

  test('a token without scope claims joins any organization with any capabilities, as seed 000', async () => {
    const query = { organizationId: 'anywhere', clientId: 'alice', capabilities: 'admin.main' };
    const plain = { token: hs256Token(SECRET, 'alice') };
    assert.equal(await handshakeOutcome(`${server.url}/mesh`, { query, auth: plain }), 'connected');
  });
});
