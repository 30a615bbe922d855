// Seed 004's own WebSocket at /signaling/{deviceId}, with the `ws` client,
// written from seed 004's document: `{type, toPeerId, data}` in, `{type,
// fromPeerId, toPeerId, data, timestamp}` out, `{error: "Invalid message
// format"}` for what is not such a message, a bad token closed with 1008,
// and the queue REST reads (GET /signaling/messages/{deviceId}). Beside it:
// interoperation with /devices (socket.io), delivery confirmed by WebSocket
// ping/pong (nothing lost when a connection drops mid-stream), keepalive by
// ping/pong only, the bounds every connection has (frame size, rate limit,
// per-address count, origin, shutdown), and two instances with Redis.
// Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { io } from 'socket.io-client';

import { ALLOWED_ORIGIN, EVIL_ORIGIN, announce, closeAll, emitWithAck, getJson, hs256Token, startServer, waitConnected, withTimeout } from './server.mjs';
import { startRedis, waitUntil } from './processes.mjs';

const clients = [];
after(() => {
  for (const c of clients) c.terminate?.() ?? c.close?.();
});

const wsUrl = (url, path) => url.replace(/^http/, 'ws') + path;

/**
 * A raw seed-004 client for `deviceId`, every frame it gets recorded in
 * `got`, its close in `closed` ({ code, reason }). Resolves once open, or
 * with the close when the server closes it first.
 */
function raw(url, deviceId, opts = {}) {
  const { query = '', dieAfter, ...wsOpts } = opts;
  const ws = new WebSocket(wsUrl(url, `/signaling/${deviceId}${query}`), wsOpts);
  clients.push(ws);
  const c = { ws, got: [], closed: null };
  c.closedP = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      resolve(c.closed);
    });
  });
  ws.on('message', (data, isBinary) => {
    // A client that dies after `dieAfter` signals: what ws parses after terminate() never reaches the app.
    if (c.dead) return;
    c.got.push(isBinary ? { binary: true } : JSON.parse(data.toString()));
    if (dieAfter !== undefined && c.signals().length >= dieAfter) {
      c.dead = true;
      ws.terminate();
    }
  });
  ws.on('error', () => {});
  c.send = (msg) => ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  c.signals = () => c.got.filter((m) => m.fromPeerId);
  c.errors = () => c.got.filter((m) => m.error);
  const opened = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (_, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
  return withTimeout(Promise.race([opened, c.closedP.then(() => c)]), 5000, `raw ${deviceId} did not open`);
}

/** A log predicate that matches only lines `server` logged from index `mark` on. */
const since = (server, mark, pred) => (l) => server.logs.indexOf(l) >= mark && pred(l.fields ?? l);

/** Waits until `c` got `n` frames satisfying `pick`. */
function waitFrames(c, pick, n, what) {
  return waitUntil(() => c.got.filter(pick).length >= n, what).then(() => c.got.filter(pick));
}

/** The data bodies of `deviceId`'s queue, as the REST peek shows them. */
async function peek(url, deviceId) {
  const { status, body } = await getJson(url, `/signaling/messages/${deviceId}?peek=true`);
  assert.equal(status, 200);
  return body.messages.map((m) => m.data);
}

describe('one instance', () => {
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { MAX_PAYLOAD_BYTES: '4096', PING_INTERVAL_MS: '200', PING_TIMEOUT_MS: '400' } });
    for (const peer of ['peer_ann', 'peer_ben', 'peer_cat', 'peer_dan', 'peer_eve', 'peer_fay', 'peer_gus', 'peer_sio', 'peer_liar']) {
      await announce(server.url, 'home', peer);
    }
  });
  after(() => server.stop());

  test('a signal reaches a connected device as seed 004 delivers it; nothing answers a signal taken', async () => {
    const ann = await raw(server.url, 'peer_ann');
    const ben = await raw(server.url, 'peer_ben');
    // /health's connected_clients counts raw connections too.
    assert.equal((await getJson(server.url, '/health')).body.connected_clients, 2);
    ann.send({ type: 'offer', toPeerId: 'peer_ben', data: { sdp: 'v=0' } });
    const [msg] = await waitFrames(ben, (m) => m.fromPeerId, 1, 'the offer');
    assert.deepEqual(Object.keys(msg).sort(), ['data', 'fromPeerId', 'timestamp', 'toPeerId', 'type']);
    assert.deepEqual(
      { type: msg.type, fromPeerId: msg.fromPeerId, toPeerId: msg.toPeerId, data: msg.data },
      { type: 'offer', fromPeerId: 'peer_ann', toPeerId: 'peer_ben', data: { sdp: 'v=0' } },
    );
    assert.ok(Math.abs(msg.timestamp - Date.now()) < 60_000);
    ben.send({ type: 'answer', toPeerId: 'peer_ann', data: { sdp: 'v=0 answer' } });
    ben.send({ type: 'ice-candidate', toPeerId: 'peer_ann', data: { candidate: 'c1' } });
    const back = await waitFrames(ann, (m) => m.fromPeerId, 2, 'the answer and candidate, in order');
    assert.deepEqual(back.map((m) => m.type), ['answer', 'ice-candidate']);
    // Delivered means read: the pong after it confirmed it, so it left the queue.
    await waitUntil(async () => (await peek(server.url, 'peer_ann')).length === 0, 'the confirmed signals to leave the queue');
    assert.deepEqual(ann.errors(), [], 'nothing answers a signal taken');
    assert.deepEqual(ann.got.filter((m) => !m.fromPeerId), [], 'nothing but signals reached the sender');
    // A close the client starts is answered: a clean close, not a dropped connection.
    ann.ws.close(1000, 'bye');
    assert.equal((await withTimeout(ann.closedP)).code, 1000);
    ben.ws.close();
  });

  test('what is not a signaling message gets {error: "Invalid message format"} and the connection stays open', async () => {
    const cat = await raw(server.url, 'peer_cat');
    const dan = await raw(server.url, 'peer_dan');
    const bad = [
      'not json',
      JSON.stringify([1, 2]),
      JSON.stringify({ toPeerId: 'peer_dan', data: {} }),
      JSON.stringify({ type: 'offer', data: {} }),
      JSON.stringify({ type: 'offer', toPeerId: 'peer_dan' }),
      JSON.stringify({ type: 'hello', toPeerId: 'peer_dan', data: {} }),
      JSON.stringify({ type: 'offer', toPeerId: 'bob', data: {} }),
      Buffer.from([1, 2, 3]),
    ];
    for (const frame of bad) cat.send(frame);
    const errors = await waitFrames(cat, (m) => m.error, bad.length, 'one error per bad frame');
    for (const e of errors) {
      assert.equal(e.error, 'Invalid message format');
      assert.equal(e.code, 'invalid-payload');
      assert.equal(typeof e.message, 'string');
    }
    assert.match(errors[7].message, /binary/);
    // A refusal that is not about the format names its code too.
    cat.send({ type: 'offer', toPeerId: 'peer_nobody', data: {} });
    const [missing] = (await waitFrames(cat, (m) => m.error, bad.length + 1, 'the refusal')).slice(-1);
    assert.equal(missing.code, 'target-not-found');
    // Still open, and still serving.
    cat.send({ type: 'offer', toPeerId: 'peer_dan', data: { ok: 1 } });
    await waitFrames(dan, (m) => m.fromPeerId === 'peer_cat', 1, 'a good signal after the bad ones');
    assert.equal(cat.closed, null);
    cat.ws.close();
    dan.ws.close();
  });

  test('a frame over MAX_PAYLOAD_BYTES closes that connection with 1009; others go on', async () => {
    const eve = await raw(server.url, 'peer_eve');
    const fay = await raw(server.url, 'peer_fay');
    eve.send({ type: 'offer', toPeerId: 'peer_fay', data: { sdp: 'x'.repeat(8000) } });
    assert.equal((await withTimeout(eve.closedP)).code, 1009);
    const gus = await raw(server.url, 'peer_gus');
    gus.send({ type: 'offer', toPeerId: 'peer_fay', data: { n: 1 } });
    await waitFrames(fay, (m) => m.fromPeerId === 'peer_gus', 1, 'the others keep working');
    fay.ws.close();
    gus.ws.close();
  });

  test('signals to an offline device wait in the queue GET /signaling/messages reads, or come on its next connection', async () => {
    const ann = await raw(server.url, 'peer_ann');
    for (let n = 0; n < 3; n += 1) ann.send({ type: 'ice-candidate', toPeerId: 'peer_ben', data: { n } });
    await waitUntil(async () => (await peek(server.url, 'peer_ben')).length === 3, 'three queued');
    // Read over REST, as seed 004's client does after being offline: read and removed.
    const { status, body } = await getJson(server.url, '/signaling/messages/peer_ben');
    assert.equal(status, 200);
    assert.deepEqual(body.messages.map((m) => [m.type, m.from, m.to, m.data.n]), [
      ['ice-candidate', 'peer_ann', 'peer_ben', 0],
      ['ice-candidate', 'peer_ann', 'peer_ben', 1],
      ['ice-candidate', 'peer_ann', 'peer_ben', 2],
    ]);
    assert.deepEqual(await peek(server.url, 'peer_ben'), []);
    // Or delivered on the next connection, in order.
    for (let n = 3; n < 6; n += 1) ann.send({ type: 'ice-candidate', toPeerId: 'peer_ben', data: { n } });
    await waitUntil(async () => (await peek(server.url, 'peer_ben')).length === 3, 'three more queued');
    const ben = await raw(server.url, 'peer_ben');
    const got = await waitFrames(ben, (m) => m.fromPeerId, 3, 'the queue on connect');
    assert.deepEqual(got.map((m) => m.data.n), [3, 4, 5]);
    ann.ws.close();
    ben.ws.close();
  });

  test('a raw device and a /devices socket.io device signal each other; the newer connection of a device turns the older out', async () => {
    const ann = await raw(server.url, 'peer_ann');
    const sio = io(`${server.url}/devices`, { forceNew: true, reconnection: false, auth: { deviceId: 'peer_sio' } });
    const sioGot = [];
    sio.on('signal', (msg, ack) => {
      sioGot.push(msg);
      ack({ ok: true });
    });
    await waitConnected(sio);
    ann.send({ type: 'offer', toPeerId: 'peer_sio', data: { from: 'raw' } });
    await waitUntil(() => sioGot.length === 1, 'raw to socket.io');
    assert.deepEqual([sioGot[0].fromPeerId, sioGot[0].data], ['peer_ann', { from: 'raw' }]);
    const ack = await emitWithAck(sio, 'signal', { type: 'answer', toPeerId: 'peer_ann', data: { from: 'sio' } });
    assert.equal(ack.status, 'delivered');
    const [answer] = await waitFrames(ann, (m) => m.fromPeerId === 'peer_sio', 1, 'socket.io to raw');
    assert.deepEqual(answer.data, { from: 'sio' });
    // peer_ann connects again (raw): the first raw connection is closed; a socket.io one too.
    const again = await raw(server.url, 'peer_ann');
    assert.equal((await withTimeout(ann.closedP)).code, 1000);
    const turnedOut = new Promise((resolve) => sio.once('disconnect', resolve));
    const sioAgain = await raw(server.url, 'peer_sio');
    assert.equal(await withTimeout(turnedOut), 'io server disconnect');
    again.send({ type: 'offer', toPeerId: 'peer_sio', data: { n: 2 } });
    await waitFrames(sioAgain, (m) => m.fromPeerId === 'peer_ann', 1, 'to the newer connection');
    closeAll(sio);
    again.ws.close();
    sioAgain.ws.close();
  });

  test('a listener is kept alive by ping/pong alone; one that stops answering pings is dropped and its seat freed', async () => {
    const listener = await raw(server.url, 'peer_cat');
    const deaf = await raw(server.url, 'peer_dan', { autoPong: false });
    const clients = async () => (await getJson(server.url, '/health')).body.connected_clients;
    const both = await clients();
    const mark = server.logs.length;
    let pings = 0;
    listener.ws.on('ping', () => (pings += 1));
    // Many ping intervals (200 ms) and timeouts (400 ms) pass: the listener, sending nothing, stays.
    await waitUntil(() => pings >= 8, 'eight pings answered');
    assert.equal(listener.closed, null);
    await withTimeout(deaf.closedP, 5000, 'the deaf client is dropped');
    await server.waitForLog(since(server, mark, (l) => l.message === 'raw connection dropped: no pong in time'));
    await server.waitForLog(since(server, mark, (l) => l.message === 'device disconnected (raw)' && l.device_id === 'peer_dan'));
    await waitUntil(async () => (await clients()) === both - 1, 'the dropped connection counted out');
    // Its seat is free: a signal to it waits in the queue.
    listener.send({ type: 'offer', toPeerId: 'peer_dan', data: { n: 'after' } });
    await waitUntil(async () => (await peek(server.url, 'peer_dan')).some((d) => d.n === 'after'), 'queued for the dropped device');
    assert.equal(listener.closed, null);
    listener.ws.close();
  });

  test('a device that stops reading is dropped; the others are still served', async () => {
    const sender = await raw(server.url, 'peer_gus');
    const stuck = await raw(server.url, 'peer_cat');
    const other = await raw(server.url, 'peer_dan');
    const mark = server.logs.length;
    stuck.ws._socket.pause(); // reads nothing more: no frame, no ping
    const big = 'x'.repeat(3000);
    for (let n = 0; n < 200; n += 1) sender.send({ type: 'ice-candidate', toPeerId: 'peer_cat', data: { n, big } });
    const dropped = ['raw connection dropped: no pong in time', 'slow consumer disconnected: it did not read what was sent (logged at most once a second)'];
    await server.waitForLog(since(server, mark, (l) => dropped.includes(l.message)), 5000);
    await server.waitForLog(since(server, mark, (l) => l.message === 'device disconnected (raw)' && l.device_id === 'peer_cat'));
    sender.send({ type: 'offer', toPeerId: 'peer_dan', data: { still: true } });
    await waitFrames(other, (m) => m.data?.still, 1, 'the others are served');
    stuck.ws.terminate();
    sender.ws.close();
    other.ws.close();
  });

  test('a pong the server did not ask for confirms nothing: the signal stays queued', async () => {
    const sender = await raw(server.url, 'peer_gus');
    const liar = await raw(server.url, 'peer_liar', { autoPong: false });
    sender.send({ type: 'offer', toPeerId: 'peer_liar', data: { n: 'forged' } });
    await waitFrames(liar, (m) => m.data?.n === 'forged', 1, 'the signal');
    // Pongs answering pings never sent: the highest number, and no number.
    liar.ws.pong(Buffer.from('ffffffffffffffff', 'hex'));
    liar.ws.pong(Buffer.from('hello'));
    // Frames are handled in order: once this is answered, the pongs were read.
    liar.send('not json');
    await waitFrames(liar, (m) => m.error, 1, 'the answer after the pongs');
    assert.deepEqual((await peek(server.url, 'peer_liar')).map((d) => d.n), ['forged'], 'still queued');
    liar.ws.terminate();
    sender.ws.close();
  });

  test('nothing is lost when a connection drops mid-stream: what was not confirmed comes again', async () => {
    const sender = await raw(server.url, 'peer_eve');
    const N = 60;
    // Queued first, so the connection below is pushed a whole window at once.
    for (let n = 0; n < N; n += 1) sender.send({ type: 'ice-candidate', toPeerId: 'peer_fay', data: { n } });
    await waitUntil(async () => (await peek(server.url, 'peer_fay')).length === N, 'all queued');
    // The receiver's connection dies abruptly (no close frame) at the 10th
    // signal, with more written behind it that it never reads.
    const first = await raw(server.url, 'peer_fay', { dieAfter: 10 });
    await withTimeout(first.closedP);
    const second = await raw(server.url, 'peer_fay');
    assert.equal(first.signals().length, 10);
    // The server agrees: what the dead client never read is still queued.
    assert.ok((await peek(server.url, 'peer_fay')).length >= N - 10);
    const seen = new Set(first.signals().map((m) => m.data.n));
    await waitUntil(() => {
      for (const m of second.signals()) seen.add(m.data.n);
      return seen.size === N;
    }, `all ${N} signals, at least once`).catch((e) => {
      const missing = [...Array(N).keys()].filter((n) => !seen.has(n));
      throw new Error(`${e.message}: missing ${missing}; first saw ${first.signals().map((m) => m.data.n)}; second ${second.signals().map((m) => m.data.n)}`);
    });
    const again = second.signals().map((m) => m.data.n);
    assert.deepEqual(again, [...again].sort((a, b) => a - b), 'in order on the new connection');
    await waitUntil(async () => (await peek(server.url, 'peer_fay')).length === 0, 'an empty queue once confirmed');
    sender.ws.close();
    second.ws.close();
  });

  test('a plain GET is 426 JSON; a bad device id or a disallowed origin is refused', async () => {
    const { status, body } = await getJson(server.url, '/signaling/peer_ann');
    assert.equal(status, 426);
    assert.equal(body.error.code, 'upgrade-required');
    const badId = await raw(server.url, 'bob');
    assert.equal((await withTimeout(badId.closedP)).code, 1008);
    assert.match(badId.closed.reason, /deviceId must match/);
    await assert.rejects(raw(server.url, 'peer_ann', { origin: EVIL_ORIGIN }), { status: 403 });
    const fromPage = await raw(server.url, 'peer_gus', { origin: ALLOWED_ORIGIN });
    assert.equal(fromPage.closed, null);
    fromPage.ws.close();
  });
});

describe('bounds', () => {
  let server;
  before(async () => {
    server = await startServer({
      extraEnv: { EVENTS_PER_SECOND: '2', EVENT_BURST: '3', RATE_LIMIT_DISCONNECT_AFTER: '5', MAX_CONNECTIONS_PER_IP: '3' },
    });
    await announce(server.url, 'home', 'peer_one');
  });
  after(() => server.stop());

  test('past the rate limit frames are refused with rate-limited, and sustained flooding closes with 1008', async () => {
    const one = await raw(server.url, 'peer_one');
    for (let n = 0; n < 12; n += 1) one.send({ type: 'offer', toPeerId: 'peer_one', data: { n } });
    const limited = await waitFrames(one, (m) => m.code === 'rate-limited', 5, 'rate-limited refusals');
    assert.match(limited[0].message, /faster/);
    assert.equal((await withTimeout(one.closedP)).code, 1008);
  });

  test('binary frames count against the rate limit too: a binary flood closes with 1008', async () => {
    const one = await raw(server.url, 'peer_one');
    for (let n = 0; n < 12; n += 1) one.send(Buffer.from([n]));
    const answers = await waitFrames(one, (m) => m.error, 3, 'answers to the first binary frames');
    assert.match(answers[0].message, /binary/);
    assert.equal((await withTimeout(one.closedP)).code, 1008);
  });

  test('MAX_CONNECTIONS_PER_IP counts raw connections: the next upgrade is refused 429', async () => {
    const open = [];
    for (let i = 0; i < 3; i += 1) open.push(await raw(server.url, `peer_n${i}`));
    await assert.rejects(raw(server.url, 'peer_n3'), { status: 429 });
    open[0].ws.close();
    await withTimeout(open[0].closedP);
    await waitUntil(async () => {
      try {
        const c = await raw(server.url, 'peer_n4');
        open.push(c);
        return c.closed === null;
      } catch {
        return false;
      }
    }, 'a slot freed by a close');
    for (const c of open) c.ws.close();
  });

  test('shutdown closes raw connections with 1001 after their clean-up', async () => {
    const one = await raw(server.url, 'peer_one');
    const code = await server.stop();
    assert.equal(code, 0);
    assert.equal((await withTimeout(one.closedP)).code, 1001);
    // Its clean-up ran during the shutdown.
    assert.ok(server.logs.some((l) => (l.fields ?? l).message === 'device disconnected (raw)' && (l.fields ?? l).device_id === 'peer_one'));
  });
});

describe('with JWT', () => {
  const SECRET = 'raw-devices-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { JWT_SECRET: SECRET } });
    await announce(server.url, 'home', 'peer_alice', hs256Token(SECRET, 'alice'));
    // A token as seed 004's server issues it: the user is `id`, no `sub`.
    await announce(server.url, 'home', 'peer_zed', hs256Token(SECRET, undefined, { id: 'zed' }));
  });
  after(() => server.stop());

  test('a missing or bad token closes with 1008; Bearer or ?token= with the announcing user (sub or id) opens', async () => {
    for (const [what, opts] of [
      ['no token', {}],
      ['a bad token', { query: '?token=not.a.token' }],
      ['another user', { headers: { authorization: `Bearer ${hs256Token(SECRET, 'mallory')}` } }],
      ['a wrong secret', { query: `?token=${hs256Token('other', 'alice')}` }],
    ]) {
      const c = await raw(server.url, 'peer_alice', opts);
      assert.equal((await withTimeout(c.closedP)).code, 1008, what);
    }
    const byHeader = await raw(server.url, 'peer_alice', { headers: { authorization: `Bearer ${hs256Token(SECRET, 'alice')}` } });
    const zed = await raw(server.url, 'peer_zed', { query: `?token=${hs256Token(SECRET, undefined, { id: 'zed' })}` });
    assert.equal(byHeader.closed, null);
    assert.equal(zed.closed, null);
    zed.send({ type: 'offer', toPeerId: 'peer_alice', data: { n: 1 } });
    await waitFrames(byHeader, (m) => m.fromPeerId === 'peer_zed', 1, 'a signal between token users');
    // The same seed-004 token reads the queue over REST.
    const res = await fetch(new URL('/signaling/messages/peer_zed', server.url), {
      headers: { authorization: `Bearer ${hs256Token(SECRET, undefined, { id: 'zed' })}` },
    });
    assert.equal(res.status, 200);
    byHeader.ws.close();
    zed.ws.close();
  });
});

describe('at RUST_LOG=trace', () => {
  const SECRET = 'raw-redaction-secret';
  let server;
  before(async () => {
    server = await startServer({ extraEnv: { JWT_SECRET: SECRET, RUST_LOG: 'trace' } });
    await announce(server.url, 'home', 'peer_tom', hs256Token(SECRET, 'tom'));
    await announce(server.url, 'home', 'peer_ula', hs256Token(SECRET, 'ula'));
  });
  after(() => server.stop());

  test('neither the token in ?token= nor a signal body reaches the logs', async () => {
    const [tomToken, ulaToken] = [hs256Token(SECRET, 'tom'), hs256Token(SECRET, 'ula')];
    const sdp = 'RECOGNISABLE-RAW-SDP-7f3e';
    const tom = await raw(server.url, 'peer_tom', { query: `?token=${tomToken}` });
    const ula = await raw(server.url, 'peer_ula', { query: `?token=${ulaToken}` });
    tom.send({ type: 'offer', toPeerId: 'peer_ula', data: { sdp } });
    await waitFrames(ula, (m) => m.data?.sdp === sdp, 1, 'the offer');
    tom.ws.close();
    ula.ws.close();
    await withTimeout(Promise.all([tom.closedP, ula.closedP]));
    assert.equal(await server.stop(), 0);
    const all = server.logs.map((l) => JSON.stringify(l)).join('\n');
    assert.ok(all.includes('device connected (raw)'), 'the connections were logged');
    assert.ok(all.includes('"level":"DEBUG"'), 'debug lines were written');
    assert.ok(!all.includes(sdp), 'no signal body in the logs');
    assert.ok(!all.includes(tomToken.split('.')[2]), 'no token in the logs');
  });
});

describe('with Redis', () => {
  let redis;
  const servers = [];
  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i += 1) {
      servers.push(await startServer({ extraEnv: { REDIS_URL: `redis://127.0.0.1:${redis.port}`, INSTANCE_TTL_MS: '1000' } }));
    }
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await redis.stop();
  });

  test('a raw device on one instance and a socket.io device on another signal each other; a raw reconnection elsewhere turns the first out', async () => {
    const [a, b] = servers;
    await announce(a.url, 'mesh', 'peer_red');
    await announce(b.url, 'mesh', 'peer_blue');
    const red = await raw(a.url, 'peer_red');
    const blue = io(`${b.url}/devices`, { forceNew: true, reconnection: false, auth: { deviceId: 'peer_blue' } });
    const blueGot = [];
    blue.on('signal', (msg, ack) => {
      blueGot.push(msg);
      ack({ ok: true });
    });
    await waitConnected(blue);
    red.send({ type: 'offer', toPeerId: 'peer_blue', data: { n: 1 } });
    await waitUntil(() => blueGot.length === 1, 'raw on a to socket.io on b');
    const ack = await emitWithAck(blue, 'signal', { type: 'answer', toPeerId: 'peer_red', data: { n: 2 } });
    assert.equal(ack.status, 'delivered');
    await waitFrames(red, (m) => m.fromPeerId === 'peer_blue', 1, 'socket.io on b to raw on a');
    const redOnB = await raw(b.url, 'peer_red');
    assert.equal((await withTimeout(red.closedP)).code, 1000, 'the older connection, on the other instance, is closed');
    await emitWithAck(blue, 'signal', { type: 'offer', toPeerId: 'peer_red', data: { n: 3 } });
    await waitFrames(redOnB, (m) => m.data?.n === 3, 1, 'to the newer connection');
    closeAll(blue);
    redOnB.ws.close();
  });
});
