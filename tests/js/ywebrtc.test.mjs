// y-webrtc's signaling protocol at Y_WEBRTC_PATH (default /y-webrtc), with
// raw `ws` clients speaking what y-webrtc's clients send: subscribe,
// unsubscribe, publish (to every subscriber, the sender too, `clients` set,
// every field kept), ping/pong. The behaviour both servers share runs
// against switchboard and against y-webrtc's own reference server
// (node_modules/y-webrtc/bin/server.js, 10.3.0), so these tests encode what
// the reference does. Then what only switchboard does: bad input that would
// stop the reference is ignored, the topic and size limits, WebSocket
// keepalive, refusals without an answer, JWT, and two instances with Redis.
// Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { EVIL_ORIGIN, getJson, hs256Token, rawSocket, startServer, withTimeout } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';
import { startYWebrtcReference } from './references.mjs';

const PATH = '/y-webrtc';
const open = [];

after(() => {
  for (const ws of open) ws.terminate();
});

/**
 * A y-webrtc signaling client at `url` + `path`: every frame recorded;
 * `settle()` (rawSocket's) returns once a ping sent now is answered (everything sent
 * before it was handled, on one server); `published(topic)` the publishes it got.
 */
async function client(url, { path = PATH, ...wsOptions } = {}) {
  const c = rawSocket(url + path, wsOptions, path);
  open.push(c.ws);
  await withTimeout(c.opened);
  return Object.assign(c, {
    published: (topic) => c.frames.filter((f) => f.type === 'publish' && (topic === undefined || f.topic === topic)),
  });
}

/** `n` clients at `path` subscribed to `topics`, each settled. */
async function subscribed(url, n, topics, path = PATH) {
  const clients = [];
  for (let i = 0; i < n; i += 1) {
    const c = await client(url, { path });
    c.send({ type: 'subscribe', topics });
    await c.settle();
    clients.push(c);
  }
  return clients;
}

/** A publish to `topic` as y-webrtc's clients send it, with fields of its own. */
const announce = (topic, from) => ({ type: 'publish', topic, data: { type: 'announce', from }, extra: [1, { deep: true }] });

/** A log predicate that matches only lines `server` logged from index `mark` on. */
const since = (server, mark, pred) => (l) => server.logs.indexOf(l) >= mark && pred(l.fields ?? l);

/**
 * Publishes to `topic` from `from` (as peer `label`) until `from` gets its
 * own copy with `clients` = `n` (other instances' counts come over the bus); that copy.
 */
async function publishUntilCounted(from, topic, n, label = 'counted') {
  let last;
  await waitUntil(async () => {
    const before = from.published(topic).length;
    from.send(announce(topic, label));
    await waitUntil(() => from.published(topic).length > before, 'its own copy');
    last = from.published(topic).at(-1);
    return last.clients === n;
  }, `clients = ${n} on ${topic}`);
  return last;
}

/** The tests both servers pass: `target()` is the server under test. */
function sharedBehaviour(target) {
  test('a publish reaches every subscriber of its topic, the sender too, with clients = subscribers and every field kept', async () => {
    const { url } = target();
    const [a, b, c] = await subscribed(url, 3, ['room-1']);
    const outsider = (await subscribed(url, 1, ['room-2']))[0];
    const sent = announce('room-1', 'peer-a');
    a.send(sent);
    for (const x of [a, b, c]) {
      assert.deepEqual(await x.waitFor('publish', (f) => f.topic === 'room-1'), { ...sent, clients: 3 });
    }
    await outsider.settle();
    assert.deepEqual(outsider.published(), [], 'nothing to a subscriber of another topic');
    for (const x of [a, b, c, outsider]) x.ws.close();
  });

  test('a client that did not subscribe can publish: the subscribers get it, the sender does not', async () => {
    const { url } = target();
    const [sub] = await subscribed(url, 1, ['room-3']);
    const lone = await client(url);
    lone.send({ type: 'publish', topic: 'room-3', data: 'signal', clients: 'forged' });
    assert.deepEqual(await sub.waitFor('publish'), { type: 'publish', topic: 'room-3', data: 'signal', clients: 1 });
    await lone.settle();
    assert.deepEqual(lone.published(), []);
    sub.ws.close();
    lone.ws.close();
  });

  test('unsubscribe stops delivery and the count; a topic nobody subscribed gets nothing', async () => {
    const { url } = target();
    const [a, b] = await subscribed(url, 2, ['room-4', 'room-5']);
    b.send({ type: 'unsubscribe', topics: ['room-4'] });
    await b.settle();
    a.send(announce('room-4', 'a'));
    assert.equal((await a.waitFor('publish', (f) => f.topic === 'room-4')).clients, 1);
    b.send(announce('room-5', 'b'));
    assert.equal((await a.waitFor('publish', (f) => f.topic === 'room-5')).clients, 2, 'its other topic is kept');
    a.send(announce('nobody-here', 'a'));
    await Promise.all([a.settle(), b.settle()]);
    assert.deepEqual(b.published('room-4'), [], 'not to the unsubscribed');
    assert.deepEqual([...a.published('nobody-here'), ...b.published('nobody-here')], []);
    a.ws.close();
    b.ws.close();
  });

  test('ping gets {type: "pong"}', async () => {
    const { url } = target();
    const a = await client(url);
    a.send({ type: 'ping' });
    assert.deepEqual(await a.waitFor('pong'), { type: 'pong' });
    a.ws.close();
  });

  test('a closed connection leaves its topics', async () => {
    const { url } = target();
    const [a, b, c] = await subscribed(url, 3, ['room-6']);
    c.ws.close();
    await withTimeout(c.closed);
    const counted = await publishUntilCounted(a, 'room-6', 2, 'a');
    assert.deepEqual(await b.waitFor('publish', (f) => f.clients === 2), counted);
    a.ws.close();
    b.ws.close();
  });

  test('topics that are not strings are skipped, the strings subscribed; a frame without a type or of an unknown type is ignored', async () => {
    const { url } = target();
    const a = await client(url);
    a.send({ type: 'subscribe', topics: [7, null, 'room-7', { t: 1 }, ['room-8']] });
    a.send({ topics: ['room-8'] });
    a.send({ type: 'join', topics: ['room-8'] });
    a.send({ type: 'publish' });
    a.send({ type: 'publish', topic: 42, data: 1 });
    await a.settle();
    a.send(announce('room-7', 'a'));
    assert.equal((await a.waitFor('publish', (f) => f.topic === 'room-7')).clients, 1);
    a.send(announce('room-8', 'a'));
    await a.settle();
    assert.deepEqual(a.published('room-8'), []);
    assert.deepEqual(a.frames.map((f) => f.type), ['pong', 'publish', 'pong'], 'nothing answers what is ignored');
    a.ws.close();
  });
}

describe('the reference server (y-webrtc 10.3.0 bin/server.js)', () => {
  let server;
  before(async () => {
    server = await startYWebrtcReference();
  });
  after(() => server.stop());
  // It answers an upgrade at any path: the clients use /y-webrtc there too.
  sharedBehaviour(() => server);
});

describe('switchboard at /y-webrtc', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { PING_INTERVAL_MS: '200', PING_TIMEOUT_MS: '400' } });
  });
  after(() => server.stop());
  sharedBehaviour(() => server);

  // The reference server exits on a frame that is not JSON or whose topics is
  // not an array (or absent); it parses a binary frame as JSON text, which
  // switchboard's raw transport does not read (y-webrtc's clients send text).
  test('what would stop the reference server (not JSON, topics not an array) and a binary frame are ignored; the connection and the others go on', async () => {
    const [a, b] = await subscribed(server.url, 2, ['room-9']);
    for (const bad of ['{not json', '', '[]', 'null', '"subscribe"', '{"type":"subscribe","topics":"room-10"}', '{"type":"subscribe","topics":{"0":"room-10"}}', '{"type":"unsubscribe","topics":"room-9"}', '{"type":"subscribe","topics":1}']) {
      a.send(bad);
    }
    a.ws.send(Buffer.from(JSON.stringify({ type: 'subscribe', topics: ['room-10'] })));
    await a.settle();
    assert.deepEqual(a.frames, [{ type: 'pong' }, { type: 'pong' }], 'nothing answers what is ignored');
    b.send(announce('room-9', 'b'));
    assert.equal((await a.waitFor('publish', (f) => f.topic === 'room-9')).clients, 2, 'still subscribed');
    a.send(announce('room-10', 'a'));
    await a.settle();
    assert.deepEqual(a.published('room-10'), [], 'no topic taken from a bad frame');
    assert.equal(server.process.exitCode, null);
    a.ws.close();
    b.ws.close();
  });

  test('a plain GET is 426 JSON; a disallowed origin is refused with 403', async () => {
    const { status, body } = await getJson(server.url, PATH);
    assert.equal(status, 426);
    assert.equal(body.error.code, 'upgrade-required');
    const evil = rawSocket(server.url + PATH, { headers: { origin: EVIL_ORIGIN } }, 'evil');
    open.push(evil.ws);
    await assert.rejects(withTimeout(evil.opened), /403/);
  });

  test('a client that stops answering WebSocket pings is closed and leaves its topics; one that answers stays', async () => {
    const [listener] = await subscribed(server.url, 1, ['room-11']);
    const deaf = await client(server.url, { autoPong: false });
    deaf.send({ type: 'subscribe', topics: ['room-11'] });
    await deaf.settle();
    const mark = server.logs.length;
    let pings = 0;
    listener.ws.on('ping', () => (pings += 1));
    await withTimeout(deaf.closed, 5000, 'the deaf client is closed');
    await server.waitForLog(since(server, mark, (l) => l.message === 'raw connection dropped: no pong in time' && l.protocol === 'y-webrtc'));
    // Many ping intervals (200 ms) and timeouts (400 ms) pass: the listener, sending nothing, stays.
    await waitUntil(() => pings >= 5, 'five pings answered');
    assert.equal(listener.ws.readyState, listener.ws.OPEN);
    await publishUntilCounted(listener, 'room-11', 1);
    listener.ws.close();
  });
});

describe('with Y_WEBRTC_PATH=/yjs/signal, Y_WEBRTC_MAX_TOPICS=3, MAX_PAYLOAD_BYTES=1024', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { Y_WEBRTC_PATH: '/yjs/signal', Y_WEBRTC_MAX_TOPICS: '3', MAX_PAYLOAD_BYTES: '1024' } });
  });
  after(() => server.stop());

  test('the endpoint is at Y_WEBRTC_PATH only', async () => {
    const a = await client(server.url, { path: '/yjs/signal' });
    await a.settle();
    assert.equal((await getJson(server.url, PATH)).status, 404);
    a.ws.close();
  });

  test('topics past Y_WEBRTC_MAX_TOPICS are ignored and logged; one given up can be taken again', async () => {
    const a = await client(server.url, { path: '/yjs/signal' });
    const mark = server.logs.length;
    a.send({ type: 'subscribe', topics: ['t1', 't2', 't3', 't4', 't5'] });
    a.send({ type: 'subscribe', topics: ['t1'] });
    for (const t of ['t1', 't3', 't4', 't5']) a.send(announce(t, 'a'));
    await a.settle();
    assert.deepEqual(a.published().map((f) => f.topic), ['t1', 't3'], 'the first three only, an old one again is no extra');
    const line = await server.waitForLog(since(server, mark, (l) => l.message.startsWith('y-webrtc topics past Y_WEBRTC_MAX_TOPICS ignored')));
    assert.equal((line.fields ?? line).ignored, 2);
    a.send({ type: 'unsubscribe', topics: ['t2'] });
    a.send({ type: 'subscribe', topics: ['t4'] });
    a.send(announce('t4', 'a'));
    assert.equal((await a.waitFor('publish', (f) => f.topic === 't4')).clients, 1);
    a.ws.close();
  });

  test('a frame over MAX_PAYLOAD_BYTES closes that connection with 1009; the others go on', async () => {
    const [a, b] = await subscribed(server.url, 2, ['big'], '/yjs/signal');
    a.send({ type: 'publish', topic: 'big', data: 'x'.repeat(2000) });
    assert.equal((await withTimeout(a.closed)).code, 1009);
    b.send({ type: 'publish', topic: 'big', data: 'small' });
    assert.equal((await b.waitFor('publish')).data, 'small');
    assert.equal(b.published().length, 1, 'the big one reached nobody');
    b.ws.close();
  });
});

describe('with EVENT_BURST=4, EVENTS_PER_SECOND=1', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { EVENT_BURST: '4', EVENTS_PER_SECOND: '1' } });
  });
  after(() => server.stop());

  test('a frame past the rate limit is dropped unanswered and logged; the connection goes on', async () => {
    const a = await client(server.url);
    const mark = server.logs.length;
    let pings = 0;
    const ping = () => {
      pings += 1;
      a.send({ type: 'ping' });
    };
    for (let i = 0; i < 7; i += 1) ping();
    const line = await server.waitForLog(since(server, mark, (l) => l.message.startsWith('y-webrtc frame refused unanswered')));
    assert.equal((line.fields ?? line).code, 'rate-limited');
    await waitUntil(() => a.frames.length >= 4, 'the burst answered');
    await waitUntil(async () => {
      const before = a.frames.length;
      ping();
      return waitUntil(() => a.frames.length > before, 'a pong', 1500).then(() => true, () => false);
    }, 'a pong once the bucket refilled', 10000);
    // Everything before that last pong has arrived: pongs only, fewer than the pings.
    assert.ok(a.frames.every((f) => f.type === 'pong'), `no error frame: ${JSON.stringify(a.frames)}`);
    assert.ok(a.frames.length < pings, `${a.frames.length} pongs for ${pings} pings: the refused ones got no answer`);
    a.ws.close();
  });
});

describe('with JWT_SECRET', () => {
  const secret = 'y-webrtc-test-secret-of-at-least-32-bytes';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { JWT_SECRET: secret } });
  });
  after(() => server.stop());

  test('an upgrade without a token is closed with 1008; with ?token= it is served', async () => {
    const anonymous = rawSocket(server.url + PATH, {}, 'anonymous');
    open.push(anonymous.ws);
    assert.equal((await withTimeout(anonymous.closed)).code, 1008);
    const a = await client(server.url, { path: `${PATH}?token=${hs256Token(secret, 'ann')}` });
    a.send({ type: 'subscribe', topics: ['secret-room'] });
    a.send(announce('secret-room', 'ann'));
    assert.equal((await a.waitFor('publish')).clients, 1);
    a.ws.close();
  });
});

describe('two instances with Redis', () => {
  let cluster;
  before(async () => {
    // The default INSTANCE_TTL_MS (10 s): a count that is not told on a change
    // would take longer than any wait here to expire.
    cluster = await startCluster(2);
  });
  after(() => cluster?.stop());

  test('a publish on one instance reaches the subscribers on both, clients counting both; one that unsubscribes or closes stops counting at once', async () => {
    const [A, B] = cluster.servers;
    const [a] = await subscribed(A.url, 1, ['shared']);
    const [b] = await subscribed(B.url, 1, ['shared']);
    const fromA = await publishUntilCounted(a, 'shared', 2, 'a');
    assert.deepEqual(fromA, { ...announce('shared', 'a'), clients: 2 });
    assert.deepEqual(await b.waitFor('publish', (f) => f.clients === 2 && f.data.from === 'a'), fromA, 'B got what A sent');
    const fromB = await publishUntilCounted(b, 'shared', 2, 'b');
    assert.deepEqual(await a.waitFor('publish', (f) => f.clients === 2 && f.data.from === 'b'), fromB, 'A got what B sent');
    // Publishing to a topic only another instance's client holds.
    const lone = await client(A.url);
    const [onlyB] = await subscribed(B.url, 1, ['only-b']);
    await waitUntil(async () => {
      lone.send({ type: 'publish', topic: 'only-b', data: 'to b' });
      return waitUntil(() => onlyB.published('only-b').length > 0, 'delivery', 500).then(() => true, () => false);
    }, 'a publish from A to a topic held on B');
    assert.equal(onlyB.published('only-b')[0].data, 'to b');
    b.send({ type: 'unsubscribe', topics: ['shared'] });
    await publishUntilCounted(a, 'shared', 1, 'a');
    b.send({ type: 'subscribe', topics: ['shared'] });
    await publishUntilCounted(a, 'shared', 2, 'a');
    b.ws.close();
    await publishUntilCounted(a, 'shared', 1, 'a');
    for (const c of [a, lone, onlyB]) c.ws.close();
  });
});
