// The /devices namespace (seed 004) with socket.io-client 4.8: live and
// queued signals, confirmation by ack, one connection per device, expiry
// notices, validation, and, with Redis, two instances, a restart and the
// jobs lease. Short TTLs come from the environment; every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  TIMEOUT_MS,
  announce,
  closeAll,
  emitWithAck,
  getJson,
  handshakeOutcome,
  hs256Token,
  once,
  recorder,
  startServer,
  waitConnected,
} from './server.mjs';
import { io } from 'socket.io-client';
import { startRedis, waitUntil } from './processes.mjs';

const sockets = [];

/**
 * A /devices socket for `deviceId`; `acking` decides whether it acks each
 * signal (default: yes). Every signal and notice it gets is recorded.
 */
async function device(url, deviceId, { acking = () => true } = {}) {
  // Handlers go on before connecting: queued mail arrives right after the connect.
  const socket = io(`${url}/devices`, { forceNew: true, reconnection: false, auth: { deviceId } });
  sockets.push(socket);
  const got = { signals: [], expired: [], socket };
  socket.on('signal', (msg, ack) => {
    got.signals.push(msg);
    if (acking(msg)) ack({ ok: true });
  });
  socket.on('signal-expired', (notice, ack) => {
    got.expired.push(notice);
    ack({ ok: true });
  });
  await waitConnected(socket);
  return got;
}

function send(from, toPeerId, n, type = 'ice-candidate') {
  return emitWithAck(from.socket, 'signal', { type, toPeerId, data: { n } });
}

/** The queue of `deviceId` as the REST peek shows it. */
async function peek(url, deviceId) {
  const { status, body } = await getJson(url, `/signaling/messages/${deviceId}?peek=true`);
  assert.equal(status, 200);
  return body.messages.map((m) => m.data.n);
}

after(() => closeAll(...sockets));

describe('one instance', () => {
  let server;
  before(async () => {
    // Event limits lifted for the queue-full test (1000 signals in a row).
    server = await startServer({ extraEnv: { EVENTS_PER_SECOND: '100000', EVENT_BURST: '100000' } });
    for (const [net, peer] of [
      ['home', 'peer_erin'],
      ['home', 'peer_frank'],
      ['home', 'peer_full'],
      ['home', 'peer_alice'],
      ['home', 'peer_bob'],
      ['home', 'peer_carol'],
      ['home', 'peer_dave'],
      ['work', 'peer_walt'],
    ]) {
      await announce(server.url, net, peer);
    }
  });
  after(() => server.stop());

  test('a signal to a connected device is delivered live with its sender, and the ack says delivered', async () => {
    const alice = await device(server.url, 'peer_alice');
    const bob = await device(server.url, 'peer_bob');
    const ack = await emitWithAck(alice.socket, 'signal', { type: 'offer', toPeerId: 'peer_bob', data: { sdp: 'v=0' } });
    assert.deepEqual({ ok: ack.ok, status: ack.status }, { ok: true, status: 'delivered' });
    await waitUntil(() => bob.signals.length === 1, 'the live signal');
    const msg = bob.signals[0];
    assert.deepEqual(
      { type: msg.type, fromPeerId: msg.fromPeerId, toPeerId: msg.toPeerId, data: msg.data, id: msg.id },
      { type: 'offer', fromPeerId: 'peer_alice', toPeerId: 'peer_bob', data: { sdp: 'v=0' }, id: ack.id },
    );
    assert.ok(Math.abs(msg.timestamp - Date.now()) < 60_000, `timestamp is Unix ms: ${msg.timestamp}`);
    await waitUntil(async () => (await peek(server.url, 'peer_bob')).length === 0, 'the confirmed signal to leave the queue');
    closeAll(alice.socket, bob.socket);
  });

  test('signals to an offline device are queued, then delivered in order; each leaves only when acked', async () => {
    const alice = await device(server.url, 'peer_alice');
    for (let n = 1; n <= 5; n += 1) {
      const ack = await send(alice, 'peer_carol', n);
      assert.deepEqual({ ok: ack.ok, status: ack.status }, { ok: true, status: 'queued' });
    }
    assert.deepEqual(await peek(server.url, 'peer_carol'), [1, 2, 3, 4, 5]);
    // Carol confirms the first two, then drops mid-delivery.
    const first = await device(server.url, 'peer_carol', { acking: (m) => m.data.n <= 2 });
    await waitUntil(() => first.signals.length === 5, 'all five pushed');
    assert.deepEqual(first.signals.map((m) => m.data.n), [1, 2, 3, 4, 5]);
    await waitUntil(async () => (await peek(server.url, 'peer_carol')).length === 3, 'the two confirmed to leave');
    first.socket.close();
    // The unconfirmed three come again, in order, on the next connection.
    const second = await device(server.url, 'peer_carol');
    await waitUntil(() => second.signals.length === 3, 'the rest on reconnect');
    assert.deepEqual(second.signals.map((m) => m.data.n), [3, 4, 5]);
    await waitUntil(async () => (await peek(server.url, 'peer_carol')).length === 0, 'an empty queue');
    closeAll(alice.socket, second.socket);
  });

  test('a second connection of a device turns the first out: a signal never reaches two connections', async () => {
    const alice = await device(server.url, 'peer_alice');
    const first = await device(server.url, 'peer_dave', { acking: () => false });
    await send(alice, 'peer_dave', 1);
    await waitUntil(() => first.signals.length === 1, 'the first connection to get it');
    const turnedOut = once(first.socket, 'disconnect');
    const second = await device(server.url, 'peer_dave');
    assert.equal(await turnedOut, 'io server disconnect');
    // Unconfirmed by the first, so the second gets it; then new ones reach only the second.
    await waitUntil(() => second.signals.length === 1, 'the unconfirmed signal on the new connection');
    const ack = await send(alice, 'peer_dave', 2);
    assert.equal(ack.status, 'delivered');
    await waitUntil(() => second.signals.length === 2, 'the new signal');
    assert.deepEqual(first.signals.map((m) => m.data.n), [1]);
    closeAll(alice.socket, second.socket);
  });

  test('bad signals get invalid-payload, not-announced or target-not-found; other networks do not exist', async () => {
    const alice = await device(server.url, 'peer_alice');
    const cases = [
      [{ type: 'hello', toPeerId: 'peer_bob', data: {} }, 'invalid-payload'],
      [{ type: 'offer', toPeerId: 'bob', data: {} }, 'invalid-payload'],
      [{ type: 'offer', toPeerId: 'peer_bob' }, 'invalid-payload'],
      [{ type: 'offer', toPeerId: 'peer_walt', data: {} }, 'target-not-found'],
      [{ type: 'offer', toPeerId: 'peer_nobody', data: {} }, 'target-not-found'],
    ];
    for (const [payload, code] of cases) {
      const ack = await emitWithAck(alice.socket, 'signal', payload);
      assert.equal(ack.ok, false, JSON.stringify(payload));
      assert.equal(ack.error.code, code, JSON.stringify({ payload, ack }));
      assert.equal(typeof ack.error.message, 'string');
    }
    const stranger = await device(server.url, 'peer_stranger');
    const refused = await send(stranger, 'peer_bob', 1);
    assert.equal(refused.error.code, 'not-announced');
    // Without an ack the error comes as signaling-error.
    const errors = recorder(alice.socket);
    alice.socket.emit('signal', { type: 'offer', toPeerId: 'peer_walt', data: {} });
    const { data } = await errors.waitFor('signaling-error');
    assert.deepEqual({ event: data.event, code: data.code }, { event: 'signal', code: 'target-not-found' });
    alice.socket.emit('no-such-event', {});
    const unknown = await errors.waitFor('signaling-error', (d) => d.event === 'no-such-event');
    assert.equal(unknown.data.code, 'invalid-payload');
    // The namespace still serves: a good signal goes through.
    assert.equal((await send(alice, 'peer_bob', 9)).ok, true);
    closeAll(alice.socket, stranger.socket);
  });

  test('over REST a queue is peeked with ids, confirmed up to an id, and read-and-removed by exactly one reader', async () => {
    const alice = await device(server.url, 'peer_alice');
    const ids = [];
    for (let n = 1; n <= 5; n += 1) ids.push((await send(alice, 'peer_erin', n)).id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ids increase');
    const { body: peeked } = await getJson(server.url, '/signaling/messages/peer_erin?peek=true');
    assert.deepEqual(peeked.messages.map((m) => m.id), ids);
    assert.deepEqual(Object.keys(peeked.messages[0]).sort(), ['data', 'from', 'id', 'timestamp', 'to', 'type']);
    const confirm = await fetch(new URL(`/signaling/messages/peer_erin?upTo=${ids[1]}`, server.url), { method: 'DELETE' });
    assert.deepEqual(await confirm.json(), { removed: 2 });
    assert.deepEqual(await peek(server.url, 'peer_erin'), [3, 4, 5]);
    // Two readers at once: together they get each message exactly once.
    const [a, b] = await Promise.all([
      getJson(server.url, '/signaling/messages/peer_erin'),
      getJson(server.url, '/signaling/messages/peer_erin'),
    ]);
    const got = [...a.body.messages, ...b.body.messages].map((m) => m.data.n).sort();
    assert.deepEqual(got, [3, 4, 5]);
    assert.deepEqual(await peek(server.url, 'peer_erin'), []);
    const bad = await fetch(new URL('/signaling/messages/peer_erin?upTo=soon', server.url), { method: 'DELETE' });
    assert.equal(bad.status, 400);
    alice.socket.close();
  });

  test('deviceId may come in the query, and a queue of 1000 refuses the next signal with target-busy', async () => {
    const alice = await device(server.url, 'peer_alice');
    for (let n = 1; n <= 1000; n += 1) {
      const ack = await send(alice, 'peer_full', n);
      assert.equal(ack.status, 'queued', `signal ${n}: ${JSON.stringify(ack)}`);
    }
    const full = await send(alice, 'peer_full', 1001);
    assert.deepEqual({ ok: full.ok, code: full.error.code }, { ok: false, code: 'target-busy' });
    // A client that can only set the query (no auth) connects and drains the queue.
    const socket = io(`${server.url}/devices`, { forceNew: true, reconnection: false, query: { deviceId: 'peer_full' } });
    sockets.push(socket);
    let received = 0;
    socket.on('signal', (_msg, ack) => {
      received += 1;
      ack();
    });
    await waitConnected(socket);
    await waitUntil(() => received === 1000, 'the whole queue', 20_000);
    await waitUntil(async () => (await peek(server.url, 'peer_full')).length === 0, 'an empty queue');
    assert.equal((await send(alice, 'peer_full', 1002)).status, 'delivered');
    closeAll(alice.socket, socket);
  });

  test('a handshake without a valid deviceId is refused with the reason', async () => {
    for (const auth of [{}, { deviceId: 'alice' }]) {
      const socket = io(`${server.url}/devices`, {
        forceNew: true,
        reconnection: false,
        auth,
      });
      sockets.push(socket);
      const err = await once(socket, 'connect_error');
      assert.match(err.message, /deviceId must match/);
      socket.close();
    }
  });

});

describe('with a signal TTL of about a second', () => {
  let server;
  before(async () => {
    server = await startServer({
      extraEnv: { SIGNALING_TTL_HOURS: '0.0003', SIGNAL_EXPIRY_INTERVAL: '100', SIGNAL_ACK_TIMEOUT_MS: '200' },
    });
    await announce(server.url, 'home', 'peer_alice');
    await announce(server.url, 'home', 'peer_bob');
    await announce(server.url, 'home', 'peer_slow');
  });
  after(() => server.stop());

  test('a push not acked within SIGNAL_ACK_TIMEOUT_MS comes again on the same connection, with the same id', async () => {
    const alice = await device(server.url, 'peer_alice');
    let first = true;
    // Ignores the first push, acks the repeat.
    const slow = await device(server.url, 'peer_slow', {
      acking: () => {
        const ack = !first;
        first = false;
        return ack;
      },
    });
    const { id } = await send(alice, 'peer_slow', 1);
    await waitUntil(() => slow.signals.length === 2, 'the repeat');
    assert.deepEqual(slow.signals.map((m) => m.id), [id, id]);
    await waitUntil(async () => (await peek(server.url, 'peer_slow')).length === 0, 'the confirmed repeat to leave the queue');
    closeAll(alice.socket, slow.socket);
  });

  test('an expired signal leaves the queue and its sender gets signal-expired, live or on its next connection', async () => {
    const alice = await device(server.url, 'peer_alice');
    const ack = await send(alice, 'peer_bob', 1, 'offer');
    assert.equal(ack.status, 'queued');
    await waitUntil(() => alice.expired.length === 1, 'the live expiry notice', 10_000);
    const notice = alice.expired[0];
    assert.deepEqual({ toPeerId: notice.toPeerId, type: notice.type }, { toPeerId: 'peer_bob', type: 'offer' });
    assert.ok(typeof notice.queuedAt === 'number' && notice.queuedAt <= Date.now());
    assert.deepEqual(await peek(server.url, 'peer_bob'), []);
    // Sent, then the sender goes away: the notice waits for its next connection.
    await send(alice, 'peer_bob', 2, 'answer');
    alice.socket.close();
    await server.waitForLog((e) => (e.fields ?? e).message === 'signal expired unconfirmed' && (e.fields ?? e).kind === 'answer', 10_000);
    const back = await device(server.url, 'peer_alice');
    await waitUntil(() => back.expired.length === 1, 'the notice on reconnect');
    assert.equal(back.expired[0].type, 'answer');
    // Confirmed notices are not sent again.
    back.socket.close();
    const again = await device(server.url, 'peer_alice');
    const bob = await device(server.url, 'peer_bob');
    await send(again, 'peer_bob', 3);
    await waitUntil(() => bob.signals.length === 1, 'a later live signal');
    assert.deepEqual(again.expired, []);
    assert.deepEqual(bob.signals.map((m) => m.data.n), [3], 'expired signals never reach the receiver');
    closeAll(again.socket, bob.socket);
  });
});

describe('with JWT', () => {
  const SECRET = 'devices-test-secret';
  let server;
  /** An HS256 token for `sub`, valid for a minute. */
  const token = (sub) => hs256Token(SECRET, sub);
  before(async () => {
    server = await startServer({ extraEnv: { JWT_SECRET: SECRET } });
    const res = await fetch(new URL('/network/home/announce', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token('alice')}` },
      body: JSON.stringify({ peerId: 'peer_alice', signalAddress: 'wss://signal.test/a' }),
    });
    assert.equal(res.status, 200);
  });
  after(() => server.stop());

  test('only the user who announced a device connects as it, with a valid token', async () => {
    const attempt = (auth) => handshakeOutcome(`${server.url}/devices`, { auth });
    assert.equal(await attempt({ deviceId: 'peer_alice', token: token('alice') }), 'connected');
    assert.match(await attempt({ deviceId: 'peer_alice', token: token('mallory') }), /not announced by this token's user/);
    assert.match(await attempt({ deviceId: 'peer_alice' }), /token/i);
    assert.match(await attempt({ deviceId: 'peer_alice', token: 'not.a.token' }), /token/i);
    assert.match(await attempt({ deviceId: 'peer_unknown', token: token('alice') }), /not announced by this token's user/);
  });
});

describe('with Redis', () => {
  let redis;
  const servers = [];
  const env = () => ({
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    INSTANCE_TTL_MS: '1000',
    JOB_LEASE_MS: '600',
  });
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await redis.stop();
  });
  async function instance() {
    const s = await startServer({ extraEnv: env() });
    servers.push(s);
    return s;
  }

  test('two instances: a signal sent on one is delivered live on the other; a reconnection elsewhere turns the first out', async () => {
    const [a, b] = [await instance(), await instance()];
    await announce(a.url, 'mesh', 'peer_one');
    await announce(b.url, 'mesh', 'peer_two');
    const one = await device(a.url, 'peer_one');
    const two = await device(b.url, 'peer_two');
    const ack = await send(one, 'peer_two', 1, 'offer');
    assert.equal(ack.status, 'delivered');
    await waitUntil(() => two.signals.length === 1, 'delivery on the other instance');
    assert.equal(two.signals[0].fromPeerId, 'peer_one');
    const back = await send(two, 'peer_one', 2, 'answer');
    assert.equal(back.status, 'delivered');
    await waitUntil(() => one.signals.length === 1, 'the answer back');
    // peer_two connects again on instance a: its connection on b is closed.
    const turnedOut = once(two.socket, 'disconnect');
    const twoAgain = await device(a.url, 'peer_two');
    assert.equal(await turnedOut, 'io server disconnect');
    await send(one, 'peer_two', 3);
    await waitUntil(() => twoAgain.signals.length === 1, 'delivery to the new connection');
    assert.equal(two.signals.length, 1);
    closeAll(one.socket, twoAgain.socket);
  });

  test('queued signals survive a restart of switchboard', async () => {
    const first = await instance();
    await announce(first.url, 'mesh', 'peer_sender');
    await announce(first.url, 'mesh', 'peer_sleeper');
    const sender = await device(first.url, 'peer_sender');
    for (let n = 1; n <= 3; n += 1) assert.equal((await send(sender, 'peer_sleeper', n)).status, 'queued');
    sender.socket.close();
    assert.equal(await first.stop(), 0);
    const restarted = await instance();
    const sleeper = await device(restarted.url, 'peer_sleeper');
    await waitUntil(() => sleeper.signals.length === 3, 'the queue after the restart');
    assert.deepEqual(sleeper.signals.map((m) => m.data.n), [1, 2, 3]);
    sleeper.socket.close();
  });

  test('the jobs run on one instance; when it is killed another takes the lease and runs them', async () => {
    // A cluster of its own (another key prefix), with a fast sweep and a short device TTL.
    const jobsEnv = {
      REDIS_PREFIX: 'leasetest',
      PRESENCE_CLEANUP_INTERVAL: '100',
      DEVICE_TTL_MINUTES: '0.01',
    };
    const all = [];
    for (let i = 0; i < 3; i += 1) {
      const s = await startServer({ extraEnv: { ...env(), ...jobsEnv } });
      servers.push(s);
      all.push(s);
    }
    const holds = (s) => s.logs.some((e) => (e.fields ?? e).message === 'this instance is the leader: it runs the cluster-wide jobs');
    const holder = await waitUntil(() => all.find(holds), 'a lease holder');
    assert.deepEqual(all.filter(holds), [holder], 'one holder among the instances');
    holder.process.kill('SIGKILL');
    // JOB_LEASE_MS (600) plus a renewal period (200) bound the takeover; the wait allows for a slow machine.
    const others = all.filter((s) => s !== holder);
    const next = await waitUntil(() => others.find(holds), 'another holder after the kill', 5000);
    assert.equal(others.filter(holds).length, 1, 'one new holder');
    // The new holder runs the jobs: a device announced now goes offline by its sweep.
    await announce(next.url, 'leasenet', 'peer_fading');
    const swept = (e) => (e.fields ?? e).message === 'presence sweep' && (e.fields ?? e).offline >= 1;
    await next.waitForLog(swept, 5000);
    assert.ok(!others.find((s) => s !== next).logs.some(swept), 'the other survivor ran no sweep');
  });
});
