// Worker routing (seed 002): workers register on /workers with WORKER_KEY and
// heartbeat; POST /bootstrap maps a client's address to a worker on the
// consistent-hash ring of healthy workers; a silent worker leaves the ring;
// clients and workers signal each other through /edge and /workers; two front
// servers sharing Redis give identical assignments. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

import { closeAll, emitWithAck, getJson, recordedClient, recorder, startServer, waitConnected } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';

const KEY = 'worker-test-key';
const sockets = [];

/** A worker: connects with `auth`, heartbeats every 100 ms unless `silent`. */
async function worker(url, workerId, { key = KEY, silent = false, region = 'us-west', capacity = 100 } = {}) {
  const auth = { key, workerId, region, capacity };
  const w = await recordedClient(`${url}/workers`, { auth }, { heartbeatMs: silent ? undefined : 100 });
  sockets.push(w.socket);
  return { ...w, workerId };
}

async function bootstrap(url, ip) {
  const res = await fetch(new URL('/bootstrap', url), {
    method: 'POST',
    headers: { 'x-forwarded-for': ip },
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: await res.json() };
}

const ips = Array.from({ length: 200 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);

after(() => closeAll(...sockets));

describe('one front server', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { WORKER_KEY: KEY, WORKER_HEALTH_TIMEOUT: '500', TRUSTED_PROXIES: '127.0.0.1' } });
  });
  after(() => server.stop());

  test('a wrong or missing worker key is refused; no worker means 503 no-workers', async () => {
    for (const auth of [{ workerId: 'w' }, { key: 'nope', workerId: 'w' }]) {
      const socket = io(`${server.url}/workers`, { forceNew: true, reconnection: false, auth });
      sockets.push(socket);
      await assert.rejects(waitConnected(socket), /wrong or missing worker key/);
      socket.close();
    }
    const none = await bootstrap(server.url, '10.0.0.1');
    assert.deepEqual({ status: none.status, code: none.body.error.code }, { status: 503, code: 'no-workers' });
  });

  test('bootstrap follows the ring of healthy workers, and a silent worker leaves it', async () => {
    const ws = [];
    for (const id of ['w-a', 'w-b', 'w-c']) ws.push(await worker(server.url, id));
    const quiet = await worker(server.url, 'w-quiet', { silent: true });
    const { body: pool } = await getJson(server.url, '/workers');
    assert.equal(pool.workers.length, 4);
    assert.equal(pool.ring.replicas, 150);
    // The silent worker turns unhealthy after WORKER_HEALTH_TIMEOUT and leaves the ring.
    await waitUntil(async () => {
      const { body } = await getJson(server.url, '/workers');
      return body.workers.find((w) => w.workerId === 'w-quiet')?.healthy === false && body.ring.healthy === 3;
    }, 'the silent worker unhealthy');
    const { body: health } = await getJson(server.url, '/health');
    assert.deepEqual(health.ring, { workers: 4, healthy: 3, virtualNodes: 450 });
    assert.equal(health.leader, true, 'alone, this instance leads');
    const metrics = await (await fetch(new URL('/metrics', server.url))).text();
    for (const line of ['switchboard_workers{health="healthy"} 3', 'switchboard_workers{health="unhealthy"} 1', 'switchboard_ring_virtual_nodes 450', 'switchboard_leader 1']) {
      assert.ok(metrics.split('\n').includes(line), `${line} in /metrics`);
    }
    const first = new Map();
    for (const ip of ips) {
      const { status, body } = await bootstrap(server.url, ip);
      assert.equal(status, 200);
      assert.equal(body.clientIp, ip, 'X-Forwarded-For from a trusted proxy');
      assert.notEqual(body.workerId, 'w-quiet');
      first.set(ip, body.workerId);
    }
    assert.equal(new Set(first.values()).size, 3, 'all three healthy workers get clients');
    // One leaves: only its clients move.
    ws[1].socket.close();
    await waitUntil(async () => (await getJson(server.url, '/workers')).body.ring.healthy === 2, 'w-b gone');
    for (const ip of ips) {
      const { body } = await bootstrap(server.url, ip);
      if (first.get(ip) !== 'w-b') assert.equal(body.workerId, first.get(ip), `${ip} kept its worker`);
      else assert.notEqual(body.workerId, 'w-b');
    }
    const counted = await (await fetch(new URL('/metrics', server.url))).text();
    assert.ok(counted.split('\n').includes(`switchboard_bootstraps_total ${ips.length * 2}`), 'every bootstrap counted');
    closeAll(ws[0].socket, ws[2].socket, quiet.socket);
  });

  test('a client and its worker exchange offer, answer and candidates through the server', async () => {
    const w = await worker(server.url, 'w-sig');
    const { body: assigned } = await bootstrap(server.url, '10.9.9.9');
    assert.equal(assigned.workerId, 'w-sig');
    const client = io(`${server.url}/edge`, { forceNew: true, reconnection: false });
    sockets.push(client);
    const crec = recorder(client);
    await waitConnected(client);
    const { data: hello } = await crec.waitFor('welcome');
    assert.equal((await emitWithAck(client, 'signal', { to: 'w-sig', type: 'offer', data: { sdp: 'o' } })).ok, true);
    const offer = await w.rec.waitFor('signal');
    assert.deepEqual(offer.data, { from: hello.clientId, type: 'offer', data: { sdp: 'o' } });
    await emitWithAck(w.socket, 'signal', { to: hello.clientId, type: 'answer', data: { sdp: 'a' } });
    await emitWithAck(w.socket, 'signal', { to: hello.clientId, type: 'ice-candidate', data: { candidate: 'c' } });
    await emitWithAck(client, 'signal', { to: 'w-sig', type: 'ice-candidate', data: { candidate: 'd' } });
    const answer = await crec.waitFor('signal', (d) => d.type === 'answer');
    assert.deepEqual(answer.data, { from: 'w-sig', type: 'answer', data: { sdp: 'a' } });
    await crec.waitFor('signal', (d) => d.type === 'ice-candidate');
    await w.rec.waitFor('signal', (d) => d.type === 'ice-candidate');
    assert.equal((await emitWithAck(client, 'signal', { to: 'w-none', type: 'offer', data: {} })).error.code, 'target-not-found');
    // The same worker id connecting again turns the older connection out.
    const turnedOut = new Promise((resolve) => w.socket.once('disconnect', resolve));
    const again = await worker(server.url, 'w-sig');
    assert.equal(await turnedOut, 'io server disconnect');
    await emitWithAck(client, 'signal', { to: 'w-sig', type: 'offer', data: { sdp: 'o2' } });
    assert.deepEqual((await again.rec.waitFor('signal')).data.data, { sdp: 'o2' });
    assert.equal((await emitWithAck(client, 'signal', { to: 'w-sig', type: 'hello', data: {} })).error.code, 'invalid-payload');
    closeAll(client, again.socket);
  });
});

describe('two front servers with Redis', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { WORKER_KEY: KEY, TRUSTED_PROXIES: '127.0.0.1', JOB_LEASE_MS: '600', WORKER_RETENTION_MS: '4000' });
  });
  after(() => cluster.stop());

  test('both give identical assignments, signaling crosses servers, and leadership fails over', async () => {
    const [a, b] = cluster.servers;
    const ws = [await worker(a.url, 'x-1'), await worker(a.url, 'x-2'), await worker(b.url, 'x-3'), await worker(b.url, 'x-4')];
    await waitUntil(async () => (await getJson(b.url, '/workers')).body.ring.healthy === 4, 'four healthy workers');
    for (const ip of ips.slice(0, 100)) {
      const [fromA, fromB] = [await bootstrap(a.url, ip), await bootstrap(b.url, ip)];
      assert.equal(fromA.body.workerId, fromB.body.workerId, ip);
    }
    // A client on b signals a worker on a, and back.
    const client = io(`${b.url}/edge`, { forceNew: true, reconnection: false });
    sockets.push(client);
    const crec = recorder(client);
    await waitConnected(client);
    const { data: hello } = await crec.waitFor('welcome');
    await emitWithAck(client, 'signal', { to: 'x-1', type: 'offer', data: { sdp: 'o' } });
    await ws[0].rec.waitFor('signal', (d) => d.from === hello.clientId);
    await emitWithAck(ws[0].socket, 'signal', { to: hello.clientId, type: 'answer', data: { sdp: 'a' } });
    await crec.waitFor('signal', (d) => d.from === 'x-1');
    // One leader; kill it and the other takes over.
    const leads = async (s) => (await getJson(s.url, '/health')).body.leader;
    await waitUntil(async () => (await leads(a)) !== (await leads(b)), 'exactly one leader');
    const leader = (await leads(a)) ? a : b;
    const follower = leader === a ? b : a;
    leader.process.kill('SIGKILL');
    await waitUntil(() => leads(follower), 'the follower leads', 5000);
    // The dead server's workers go silent: out of the ring, then forgotten
    // after WORKER_RETENTION_MS; the follower's own stay.
    const theirs = leader === a ? ['x-1', 'x-2'] : ['x-3', 'x-4'];
    const ours = leader === a ? ['x-3', 'x-4'] : ['x-1', 'x-2'];
    const listed = async () => (await getJson(follower.url, '/workers')).body.workers;
    const unhealthy = (list) => list.length === 4 && list.every((w) => w.healthy === ours.includes(w.workerId));
    await waitUntil(async () => unhealthy(await listed()), 'the dead server’s workers listed unhealthy', 5000);
    await waitUntil(async () => (await listed()).map((w) => w.workerId).join() === ours.join(), `only ${ours} listed, not ${theirs}`, 8000);
    assert.equal((await getJson(follower.url, '/workers')).body.ring.healthy, 2);
    closeAll(client, ...ws.map((w) => w.socket));
  });
});
