// Behind nginx with two switchboard instances in cluster mode: socket.io-client
// 4.8 (Node) connects with polling, upgrades to websocket (the sticky
// switchboard_route cookie must reach the same instance on every request,
// the upgrade included), and signals with a peer on the other instance.
//
// Uses the real deploy/nginx/switchboard.conf, rewritten only to point at the
// two local instances and listen on a free loopback port. Starts its own
// redis-server and nginx (loopback, free ports) and stops them afterwards.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { io } from 'socket.io-client';

import {
  TIMEOUT_MS,
  closeAll,
  emitWithAck,
  getJson,
  recorder,
  startServer,
  waitConnected,
} from './server.mjs';
import { startRedis, waitUntil } from './processes.mjs';
import { startNginx } from './nginx.mjs';

const ROOM = 'lb';
/** Clients tried before giving up on landing one on the other instance (each has ~1/2 odds). */
const MAX_ATTEMPTS = 30;

let redis;
let instanceA;
let instanceB;
let nginx;
let nginxUrl;
const sockets = [];

/** `connections` of /health on each instance, fetched directly (not through nginx). */
async function connectionCounts() {
  const [a, b] = await Promise.all([getJson(instanceA.url, '/health'), getJson(instanceB.url, '/health')]);
  assert.equal(a.status, 200, `instance A /health: ${JSON.stringify(a.body)}`);
  assert.equal(b.status, 200, `instance B /health: ${JSON.stringify(b.body)}`);
  return [a.body.connections, b.body.connections];
}

/** Waits until the instances report exactly `expected` connections ([A, B]). */
function waitCounts(expected, ms = TIMEOUT_MS) {
  let last;
  return waitUntil(
    async () => {
      last = await connectionCounts();
      return last[0] === expected[0] && last[1] === expected[1] ? last : false;
    },
    `/health connections [A, B] = ${JSON.stringify(expected)}`,
    ms,
  );
}

/**
 * Waits until the instances report `total` connections in all, and returns
 * the counts [A, B].
 */
function waitTotal(total, ms = TIMEOUT_MS) {
  return waitUntil(
    async () => {
      const counts = await connectionCounts();
      return counts[0] + counts[1] === total ? counts : false;
    },
    `${total} connection(s) in all on /health of A and B`,
    ms,
  );
}

/**
 * A socket.io-client 4.8 socket through nginx: its own Manager (forceNew) and
 * so its own cookie jar (withCredentials), default transports (polling, then
 * the websocket upgrade), no reconnection. Resolves once connected, with
 * `upgraded`: a promise settled by the engine's upgrade (rejects on
 * upgradeError, on close, or after `ms`); listened to from the start, so an
 * upgrade that completes before "connect" is not missed.
 */
async function connectThroughNginx(ms = TIMEOUT_MS) {
  const socket = io(nginxUrl, {
    withCredentials: true,
    forceNew: true,
    reconnection: false,
    timeout: ms,
  });
  sockets.push(socket);
  const engine = socket.io.engine;
  const upgraded = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no websocket upgrade within ${ms} ms (transport: ${engine.transport?.name})`));
    }, ms);
    function cleanup() {
      clearTimeout(timer);
      engine.off('upgrade', onUpgrade);
      engine.off('upgradeError', onError);
      engine.off('close', onClose);
    }
    function onUpgrade(transport) {
      cleanup();
      resolve(transport.name);
    }
    function onError(err) {
      cleanup();
      reject(new Error(`websocket upgrade failed: ${err?.message ?? err} (${err?.description?.message ?? ''})`));
    }
    function onClose(reason) {
      cleanup();
      reject(new Error(`engine closed before upgrading: ${reason}`));
    }
    engine.on('upgrade', onUpgrade);
    engine.on('upgradeError', onError);
    engine.on('close', onClose);
  });
  // Marked handled: a client closed before upgrading is not an error by itself.
  upgraded.catch(() => {});
  await waitConnected(socket, ms);
  return { socket, upgraded };
}

/** The switchboard_route cookie in a socket's jar (undefined if none). */
function routeCookie(socket) {
  const jar = socket.io.engine._cookieJar;
  if (!jar) return undefined;
  for (const [name, cookie] of jar.cookies) {
    if (name === 'switchboard_route') return cookie.value;
  }
  return undefined;
}

before(async () => {
  redis = await startRedis();
  const extraEnv = { REDIS_URL: `redis://127.0.0.1:${redis.port}`, INSTANCE_TTL_MS: '2000' };
  [instanceA, instanceB] = await Promise.all([startServer({ extraEnv }), startServer({ extraEnv })]);
  nginx = await startNginx([instanceA.port, instanceB.port]);
  nginxUrl = nginx.url;
}, { timeout: 30000 });

after(async () => {
  closeAll(...sockets);
  const failures = [];
  if (nginx) {
    const exit = await nginx.stop();
    if (exit.code !== 0 && exit.signal !== 'SIGTERM') failures.push(`nginx exit ${JSON.stringify(exit)}: ${nginx.errorLog()}`);
    rmSync(nginx.dir, { recursive: true, force: true });
  }
  for (const [name, instance] of [['A', instanceA], ['B', instanceB]]) {
    if (!instance) continue;
    try {
      const code = await instance.stop();
      if (code !== 0) failures.push(`instance ${name} exited ${code}`);
    } catch (err) {
      failures.push(`instance ${name}: ${err.message}`);
    }
  }
  if (redis) await redis.stop();
  assert.deepEqual(failures, [], 'every process stops cleanly');
}, { timeout: 30000 });

test('through nginx: polling then websocket, sticky per client, signaling across two instances', { timeout: 60000 }, async (t) => {
  try {
    // Client 1: polling handshake, then the upgrade through nginx.
    const first = await connectThroughNginx();
    assert.equal(await first.upgraded, 'websocket');
    assert.equal(first.socket.io.engine.transport.name, 'websocket');
    assert.ok(routeCookie(first.socket), 'nginx set the switchboard_route cookie and the client kept it');

    // Which instance it landed on (health counts local connections only).
    const counts = await waitTotal(1);
    const home = counts[0] === 1 ? 0 : 1;
    const other = 1 - home;
    const names = ['A', 'B'];
    t.diagnostic(`client 1 on instance ${names[home]}`);
    // Upgraded on the same instance: still exactly one connection there.
    const expectedOne = [0, 0];
    expectedOne[home] = 1;
    await waitCounts(expectedOne);

    // More clients, each with its own cookie jar, until one lands on the other instance.
    let second;
    let attempts = 0;
    while (!second) {
      attempts += 1;
      assert.ok(attempts <= MAX_ATTEMPTS, `no client landed on instance ${names[other]} in ${MAX_ATTEMPTS} attempts`);
      const candidate = await connectThroughNginx();
      const now = await waitTotal(2);
      if (now[other] === 1) {
        second = candidate;
      } else {
        candidate.socket.close();
        await waitCounts(expectedOne);
      }
    }
    t.diagnostic(`client 2 on instance ${names[other]} after ${attempts} attempt(s)`);
    assert.equal(await second.upgraded, 'websocket');
    assert.equal(second.socket.io.engine.transport.name, 'websocket');
    assert.ok(routeCookie(second.socket), 'the second client kept its own switchboard_route cookie');
    assert.notEqual(routeCookie(second.socket), routeCookie(first.socket));
    await waitCounts([1, 1]);

    const c1 = first.socket;
    const c2 = second.socket;
    const rec1 = recorder(c1);
    const rec2 = recorder(c2);

    // Both join the room, one per instance.
    assert.deepEqual(await emitWithAck(c1, 'join-room', { roomId: ROOM, userId: 'u1' }), {
      ok: true,
      roomId: ROOM,
      users: ['u1'],
    });
    assert.deepEqual(await emitWithAck(c2, 'join-room', { roomId: ROOM, userId: 'u2' }), {
      ok: true,
      roomId: ROOM,
      users: ['u1', 'u2'],
    });
    const joined = await rec1.waitFor('user-joined', (d) => d?.userId === 'u2');
    assert.deepEqual(joined.data, { roomId: ROOM, userId: 'u2' });

    // Offer 1 -> 2, answer 2 -> 1.
    const offer = { type: 'offer', sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
    assert.deepEqual(await emitWithAck(c1, 'offer', { roomId: ROOM, targetId: 'u2', offer }), { ok: true });
    const gotOffer = await rec2.waitFor('offer');
    assert.deepEqual(gotOffer.data, { roomId: ROOM, senderId: 'u1', offer });

    const answer = { type: 'answer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' };
    assert.deepEqual(await emitWithAck(c2, 'answer', { roomId: ROOM, targetId: 'u1', answer }), { ok: true });
    const gotAnswer = await rec1.waitFor('answer');
    assert.deepEqual(gotAnswer.data, { roomId: ROOM, senderId: 'u2', answer });

    // One ICE candidate each way.
    const cand1 = {
      candidate: 'candidate:842163049 1 udp 1677729535 127.0.0.1 54400 typ srflx raddr 0.0.0.0 rport 0 generation 0',
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'abcd',
    };
    const cand2 = { ...cand1, candidate: cand1.candidate.replace('54400', '54401') };
    assert.deepEqual(await emitWithAck(c1, 'ice-candidate', { roomId: ROOM, targetId: 'u2', candidate: cand1 }), { ok: true });
    assert.deepEqual(await emitWithAck(c2, 'ice-candidate', { roomId: ROOM, targetId: 'u1', candidate: cand2 }), { ok: true });
    const ice2 = await rec2.waitFor('ice-candidate');
    const ice1 = await rec1.waitFor('ice-candidate');
    assert.deepEqual(ice2.data, { roomId: ROOM, senderId: 'u1', candidate: cand1 });
    assert.deepEqual(ice1.data, { roomId: ROOM, senderId: 'u2', candidate: cand2 });

    // Exactly one of each relay arrived, and only where it was sent.
    const relays = (rec) => rec.received.filter((r) => ['offer', 'answer', 'ice-candidate'].includes(r.event)).map((r) => r.event);
    assert.deepEqual(relays(rec1), ['answer', 'ice-candidate']);
    assert.deepEqual(relays(rec2), ['offer', 'ice-candidate']);

    // REST through nginx (any instance): the room lists both, in join order.
    const room = await getJson(nginxUrl, `/api/rooms/${ROOM}`);
    assert.equal(room.status, 200, JSON.stringify(room.body));
    assert.equal(room.body.id, ROOM);
    assert.deepEqual(room.body.participants, ['u1', 'u2']);
    assert.equal(room.body.participantCount, 2);

    // Still on websocket, still one connection per instance.
    assert.equal(c1.io.engine.transport.name, 'websocket');
    assert.equal(c2.io.engine.transport.name, 'websocket');
    await waitCounts([1, 1]);
  } catch (err) {
    if (nginx) err.message += `\nnginx error.log:\n${nginx.errorLog()}`;
    throw err;
  } finally {
    closeAll(...sockets);
  }
});
