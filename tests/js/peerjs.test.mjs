// The PeerJS endpoint on one instance, with raw `ws` clients speaking the
// protocol of peerjs-server 1.0.2 (`peer` on npm): REST (info, id, peers),
// the refusals that come as ERROR / ID-TAKEN frames, OPEN then the messages
// that waited, relays as exactly {type, src, dst, payload}, what is ignored,
// EXPIRE, takeover and the alive timeout. The cases both servers share run
// against the reference too (PEERJS_TARGET=reference, see peerjs.mjs); the
// switchboard-only ones (its id bound, JWT, the queue bound, frame size, rate
// limit, per-address limit, Origin check, /health and /metrics) are defined
// for switchboard only. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { ALLOWED_ORIGIN, EVIL_ORIGIN, hs256Token } from './server.mjs';
import { waitUntil } from './processes.mjs';
import { MSG, SWITCHBOARD, assertWaitingBeforeLive, errorFrame, openPeer, openWhenFree, peer, refusedWith, restUrl, startTarget, terminateClients } from './peerjs.mjs';

after(terminateClients);

const INFO = {
  name: 'PeerJS Server',
  description: 'A server side element to broker connections between PeerJS clients.',
  website: 'https://peerjs.com/',
};
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ID_TAKEN = { type: 'ID-TAKEN', payload: { msg: 'ID is taken' } };

/** GET `url` with `headers`: { status, type, text, headers }. */
async function get(url, { method = 'GET', headers = {} } = {}) {
  const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(5000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text(), headers: res.headers };
}

/** What the PeerJS client adds to its REST calls to defeat caches. */
const ts = () => `?ts=${Date.now()}${Math.random()}`;

/** An interval that stops with `c`'s connection. */
function every(c, ms, fn) {
  const timer = setInterval(() => c.ws.readyState === WebSocket.OPEN && fn(), ms);
  timer.unref();
  c.ws.once('close', () => clearInterval(timer));
  return timer;
}

/**
 * Sends each of `junk` from `{prefix}-a`, then checks that nothing came back
 * to it, nothing reached `{prefix}-b`, and that it is still served.
 */
async function assertIgnored(t, prefix, junk) {
  const [idA, idB] = [`${prefix}-a`, `${prefix}-b`];
  const a = await openPeer(t, idA);
  const b = await openPeer(t, idB);
  for (const frame of junk) a.send(frame);
  await a.sync();
  assert.deepEqual(a.frames.map((f) => f.type), ['OPEN', 'OFFER'], 'nothing but the sync marker came back');
  await b.sync();
  assert.deepEqual(b.frames.map((f) => f.type), ['OPEN', 'OFFER'], 'nothing reached the other peer');
  a.send({ type: 'OFFER', dst: idB, payload: 'still here' });
  assert.deepEqual(await b.waitFor('OFFER', (f) => f.src === idA), { type: 'OFFER', src: idA, dst: idB, payload: 'still here' });
  assert.equal(a.ws.readyState, WebSocket.OPEN);
  a.ws.close();
  b.ws.close();
}

describe('default settings', () => {
  let t;
  before(async () => {
    t = await startTarget();
  });
  after(() => t.stop());

  test('GET {path}/ (with or without the slash) answers the PeerJS Server description as JSON', async () => {
    for (const url of [restUrl(t), `${t.url}${t.path}`]) {
      const res = await get(url);
      assert.equal(res.status, 200, url);
      assert.match(res.type, /^application\/json/, url);
      assert.deepEqual(JSON.parse(res.text), INFO, url);
    }
  });

  test('GET {path}/{key}/id answers a fresh UUID v4 as text/html, whatever the key', async () => {
    const seen = new Set();
    for (const key of ['peerjs', 'peerjs', 'not-the-key']) {
      const res = await get(restUrl(t, `${key}/id${ts()}`));
      assert.equal(res.status, 200, key);
      assert.match(res.type, /^text\/html/, key);
      assert.match(res.text, UUID_V4, key);
      seen.add(res.text);
    }
    assert.equal(seen.size, 3, 'a new id each time');
  });

  test('GET {path}/{key}/peers is 401 without discovery', async () => {
    const res = await get(restUrl(t, `peerjs/peers${ts()}`));
    assert.equal(res.status, 401);
  });

  test('REST answers an allowed Origin with CORS headers (GET and preflight) and another Origin without', async () => {
    for (const rest of ['', 'peerjs/id']) {
      const url = restUrl(t, rest);
      const allowed = await get(url, { headers: { origin: ALLOWED_ORIGIN } });
      assert.equal(allowed.status, 200, url);
      assert.equal(allowed.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN, url);
      const preflight = await get(url, {
        method: 'OPTIONS',
        headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'GET' },
      });
      assert.ok(preflight.status >= 200 && preflight.status < 300, `${url} preflight: ${preflight.status}`);
      assert.equal(preflight.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN, `${url} preflight`);
      const other = await get(url, { headers: { origin: EVIL_ORIGIN } });
      assert.equal(other.headers.get('access-control-allow-origin'), null, `${url} from another origin`);
    }
  });

  test('a missing or empty id, token or key gets the ERROR "No id, token, or key supplied" and is closed, before the key is checked', async () => {
    const cases = [
      ['no id', { id: undefined }],
      ['no token', { token: undefined }],
      ['no key', { key: undefined }],
      ['an empty id', { id: '' }],
      ['an empty token', { token: '' }],
      ['no id and a wrong key', { id: undefined, key: 'wrong' }],
      ['no token and a wrong key', { token: undefined, key: 'wrong' }],
    ];
    for (const [what, params] of cases) {
      const c = peer(t, 'params', { params, label: what });
      await refusedWith(c, errorFrame(MSG.params), assert);
    }
  });

  test('a wrong key gets the ERROR "Invalid key provided" and is closed; the id stays free', async () => {
    const c = peer(t, 'badkey', { params: { key: 'wrong' } });
    await refusedWith(c, errorFrame(MSG.key), assert);
    const again = await openPeer(t, 'badkey', { token: 'another' });
    again.ws.close();
  });

  test('an open server (no JWT_SECRET) accepts any token string', async () => {
    for (const [i, token] of ['x', 'a.b.c', 'not a jwt at all', hs256Token('whatever', 'someone-else')].entries()) {
      const c = await openPeer(t, `anytoken-${i}`, { token });
      c.ws.close();
    }
  });

  test('ids and tokens of any characters (spaces, unicode, URL specials) open and relay; the version parameter is optional', async () => {
    const ids = ['with space', 'dash-and_under', 'ünïcødé', '🎉 party', 'a/b?c=d&e=%41', 'x'.repeat(100)];
    const open = [];
    for (const id of ids) open.push(await openPeer(t, id, { token: `tök 🎉 ${id}&=?`, label: JSON.stringify(id) }));
    for (const [i, c] of open.entries()) {
      const to = open[(i + 1) % open.length];
      c.send({ type: 'OFFER', dst: to.id, payload: i });
      assert.deepEqual(await to.waitFor('OFFER', (f) => f.payload === i), { type: 'OFFER', src: c.id, dst: to.id, payload: i });
    }
    for (const c of open) c.ws.close();
    const noVersion = await openPeer(t, 'no-version', { params: { version: undefined } });
    noVersion.ws.close();
  });

  test('an id live under another token gets {"type":"ID-TAKEN"} and is closed; the holder keeps it', async () => {
    const holder = await openPeer(t, 'taken', { token: 'first' });
    const thief = peer(t, 'taken', { token: 'second' });
    await refusedWith(thief, ID_TAKEN, assert);
    const friend = await openPeer(t, 'taken-friend');
    friend.send({ type: 'OFFER', dst: 'taken', payload: 'still yours' });
    assert.deepEqual(await holder.waitFor('OFFER'), { type: 'OFFER', src: 'taken-friend', dst: 'taken', payload: 'still yours' });
    assert.equal(holder.ws.readyState, WebSocket.OPEN);
    holder.ws.close();
    friend.ws.close();
  });

  test('OPEN comes first, then the messages that waited for the id, in the order they were sent, before any sent after OPEN', async () => {
    const a = await openPeer(t, 'q-a');
    const c = await openPeer(t, 'q-c');
    a.send({ type: 'OFFER', dst: 'q-b', payload: { sdp: 'offer', n: 1 } });
    a.send({ type: 'CANDIDATE', dst: 'q-b', payload: { candidate: 'c1', n: 2 } });
    await a.sync();
    c.send({ type: 'OFFER', dst: 'q-b', payload: { n: 3 } });
    await c.sync();
    a.send({ type: 'CANDIDATE', dst: 'q-b', payload: { candidate: 'c2', n: 4 } });
    a.send({ type: 'ANSWER', dst: 'q-b', payload: { n: 5 } });
    a.send({ type: 'CANDIDATE', dst: 'q-b' });
    await a.sync();
    // A sender gone before the destination comes: what it sent still waits.
    const d = await openPeer(t, 'q-d');
    d.send({ type: 'OFFER', dst: 'q-b', payload: 'from a closed sender' });
    await d.sync();
    d.ws.close();
    await d.closedWithin();
    // A message sent as soon as OPEN came is not served before those that waited.
    const b = peer(t, 'q-b');
    b.ws.on('message', (data) => {
      if (JSON.parse(data.toString()).type === 'OPEN') c.send({ type: 'OFFER', dst: 'q-b', payload: 'live' });
    });
    await waitUntil(() => b.relays().length >= 8, 'the seven waiting messages and the live one');
    assert.deepEqual(b.frames, [
      { type: 'OPEN' },
      { type: 'OFFER', src: 'q-a', dst: 'q-b', payload: { sdp: 'offer', n: 1 } },
      { type: 'CANDIDATE', src: 'q-a', dst: 'q-b', payload: { candidate: 'c1', n: 2 } },
      { type: 'OFFER', src: 'q-c', dst: 'q-b', payload: { n: 3 } },
      { type: 'CANDIDATE', src: 'q-a', dst: 'q-b', payload: { candidate: 'c2', n: 4 } },
      { type: 'ANSWER', src: 'q-a', dst: 'q-b', payload: { n: 5 } },
      { type: 'CANDIDATE', src: 'q-a', dst: 'q-b' },
      { type: 'OFFER', src: 'q-d', dst: 'q-b', payload: 'from a closed sender' },
      { type: 'OFFER', src: 'q-c', dst: 'q-b', payload: 'live' },
    ]);
    // Delivered once: they are not kept for a next connection.
    b.ws.close();
    await b.closedWithin();
    const again = await openWhenFree(t, 'q-b', { token: 'later' });
    a.send({ type: 'OFFER', dst: 'q-b', payload: 'fresh' });
    await again.waitFor('OFFER');
    assert.deepEqual(again.frames, [{ type: 'OPEN' }, { type: 'OFFER', src: 'q-a', dst: 'q-b', payload: 'fresh' }]);
    for (const x of [a, c, again]) x.ws.close();
  });

  test('a message sent once the destination is open never overtakes those that waited for it (60 rounds)', async () => {
    await assertWaitingBeforeLive(assert, t, t, 'race');
  });

  test('a relay is exactly {type, src, dst, payload}: src set by the server (a forged one overwritten), other fields dropped', async () => {
    const a = await openPeer(t, 'relay-a');
    const b = await openPeer(t, 'relay-b');
    const payload = { sdp: 'v=0\r\n', type: 'offer', connectionId: 'dc_1', metadata: { n: [1, 2] }, label: 'dc_1', reliable: true };
    a.send({ type: 'OFFER', src: 'someone-else', dst: 'relay-b', payload, extra: 'dropped', token: 'secret' });
    assert.deepEqual(await b.waitFor('OFFER'), { type: 'OFFER', src: 'relay-a', dst: 'relay-b', payload });
    b.send({ type: 'ANSWER', dst: 'relay-a', payload: { sdp: 'answer' }, src: 'relay-a' });
    assert.deepEqual(await a.waitFor('ANSWER'), { type: 'ANSWER', src: 'relay-b', dst: 'relay-a', payload: { sdp: 'answer' } });
    a.ws.close();
    b.ws.close();
  });

  test('the payload is omitted when the sender gave none, and any JSON payload is passed as given', async () => {
    const a = await openPeer(t, 'pl-a');
    const b = await openPeer(t, 'pl-b');
    const payloads = ['text', 0, false, null, [1, 'two'], { deep: { er: [true] } }];
    a.send({ type: 'LEAVE', dst: 'pl-b' });
    for (const payload of payloads) a.send({ type: 'CANDIDATE', dst: 'pl-b', payload });
    await waitUntil(() => b.relays().length >= 1 + payloads.length, 'every relay');
    assert.deepEqual(b.relays(), [
      { type: 'LEAVE', src: 'pl-a', dst: 'pl-b' },
      ...payloads.map((payload) => ({ type: 'CANDIDATE', src: 'pl-a', dst: 'pl-b', payload })),
    ]);
    a.ws.close();
    b.ws.close();
  });

  test('OFFER, ANSWER, CANDIDATE, LEAVE and EXPIRE are forwarded to a connected id, in order, both ways', async () => {
    const a = await openPeer(t, 'five-a');
    const b = await openPeer(t, 'five-b');
    const types = ['OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE'];
    for (const [i, type] of types.entries()) a.send({ type, dst: 'five-b', payload: { i } });
    for (const [i, type] of types.entries()) b.send({ type, dst: 'five-a', payload: { i } });
    await waitUntil(() => b.relays().length >= 5 && a.relays().length >= 5, 'five relays each way');
    assert.deepEqual(b.relays(), types.map((type, i) => ({ type, src: 'five-a', dst: 'five-b', payload: { i } })));
    assert.deepEqual(a.relays(), types.map((type, i) => ({ type, src: 'five-b', dst: 'five-a', payload: { i } })));
    a.ws.close();
    b.ws.close();
  });

  test('unknown types and frames without a type or dst are ignored: no reply, nothing forwarded, the connection kept', async () => {
    await assertIgnored(t, 'junk', [
      '[1,2]',
      JSON.stringify({ dst: 'junk-b', payload: 'no type' }),
      JSON.stringify({ type: 'HELLO', dst: 'junk-b', payload: 1 }),
      JSON.stringify({ type: 'offer', dst: 'junk-b', payload: 'lower case' }),
      JSON.stringify({ type: 'OPEN', dst: 'junk-b' }),
      JSON.stringify({ type: 'ID-TAKEN', dst: 'junk-b', payload: { msg: 'ID is taken' } }),
      JSON.stringify({ type: 'ERROR', dst: 'junk-b', payload: { msg: 'forged' } }),
      JSON.stringify({ type: 'HEARTBEAT', dst: 'junk-b' }),
      JSON.stringify({ type: 'HEARTBEAT' }),
      JSON.stringify({ type: 'OFFER', payload: 'no dst' }),
      JSON.stringify({ type: 7, dst: 'junk-b' }),
    ]);
  });

  test('LEAVE and EXPIRE to an absent id are dropped, never delivered when it connects (an OFFER waits)', async () => {
    const a = await openPeer(t, 'drop-a');
    a.send({ type: 'LEAVE', dst: 'drop-ghost', payload: 'leave' });
    a.send({ type: 'EXPIRE', dst: 'drop-ghost', payload: 'expire' });
    a.send({ type: 'OFFER', dst: 'drop-ghost', payload: 'kept' });
    a.send({ type: 'LEAVE', dst: 'drop-ghost' });
    await a.sync();
    const ghost = await openPeer(t, 'drop-ghost');
    a.send({ type: 'CANDIDATE', dst: 'drop-ghost', payload: 'after' });
    await ghost.waitFor('CANDIDATE');
    assert.deepEqual(ghost.frames, [
      { type: 'OPEN' },
      { type: 'OFFER', src: 'drop-a', dst: 'drop-ghost', payload: 'kept' },
      { type: 'CANDIDATE', src: 'drop-a', dst: 'drop-ghost', payload: 'after' },
    ]);
    a.ws.close();
    ghost.ws.close();
  });

  test('the same id with the same token takes over at once' + (SWITCHBOARD
    ? ': the new socket gets OPEN and the relays, the older is closed and its close frees nothing'
    : ' (reference: no OPEN, the older socket stays open, relays go to the new one)'), async () => {
    const first = await openPeer(t, 'tk', { token: 'same' });
    const friend = await openPeer(t, 'tk-friend');
    const second = peer(t, 'tk', { token: 'same', label: 'tk (second)' });
    if (SWITCHBOARD) {
      await second.waitFor('OPEN');
      await first.closedWithin();
    } else {
      await second.opened;
    }
    friend.send({ type: 'OFFER', dst: 'tk', payload: 'to the newer' });
    const relay = { type: 'OFFER', src: 'tk-friend', dst: 'tk', payload: 'to the newer' };
    await second.waitFor('OFFER');
    assert.deepEqual(second.frames, SWITCHBOARD ? [{ type: 'OPEN' }, relay] : [relay]);
    assert.deepEqual(first.relays(), [], 'nothing reached the older socket');
    if (!SWITCHBOARD) assert.equal(first.ws.readyState, WebSocket.OPEN, 'the reference leaves the older socket open');
    // The id is still held (the older socket's close did not free it).
    await refusedWith(peer(t, 'tk', { token: 'other', label: 'tk (other token)' }), ID_TAKEN, assert);
    second.send({ type: 'ANSWER', dst: 'tk-friend', payload: 'from the newer' });
    assert.deepEqual(await friend.waitFor('ANSWER'), { type: 'ANSWER', src: 'tk', dst: 'tk-friend', payload: 'from the newer' });
    for (const c of [first, second, friend]) c.ws.close();
  });
});

describe('a custom path and key', () => {
  let t;
  before(async () => {
    t = await startTarget({ path: '/custom', key: 'sesame' });
  });
  after(() => t.stop());

  test('REST and the WebSocket are served under the path, the key is the one set, and the default path is not served', async () => {
    const info = await get(restUrl(t));
    assert.equal(info.status, 200);
    assert.deepEqual(JSON.parse(info.text), INFO);
    assert.match((await get(restUrl(t, 'sesame/id'))).text, UUID_V4);
    assert.equal((await get(`${t.url}/peerjs/`)).status, 404);
    const a = await openPeer(t, 'custom-a');
    await refusedWith(peer(t, 'custom-b', { params: { key: 'peerjs' } }), errorFrame(MSG.key), assert);
    const b = await openPeer(t, 'custom-b');
    a.send({ type: 'OFFER', dst: 'custom-b', payload: 1 });
    assert.deepEqual(await b.waitFor('OFFER'), { type: 'OFFER', src: 'custom-a', dst: 'custom-b', payload: 1 });
    a.ws.close();
    b.ws.close();
  });
});

describe('discovery', () => {
  let t;
  before(async () => {
    t = await startTarget({ allowDiscovery: true });
  });
  after(() => t.stop());

  test('GET {path}/{key}/peers lists the connected ids as a JSON array; a closed one leaves it', async () => {
    const peers = async () => {
      const res = await get(restUrl(t, `peerjs/peers${ts()}`));
      assert.equal(res.status, 200);
      assert.match(res.type, /^application\/json/);
      return JSON.parse(res.text);
    };
    assert.deepEqual(await peers(), []);
    const a = await openPeer(t, 'disc-a');
    const b = await openPeer(t, 'disc-b');
    assert.deepEqual((await peers()).sort(), ['disc-a', 'disc-b']);
    a.ws.close();
    await waitUntil(async () => (await peers()).join() === 'disc-b', 'disc-a to leave the list');
    b.ws.close();
  });
});

describe('concurrent limit', () => {
  let t;
  before(async () => {
    t = await startTarget({ concurrentLimit: 2 });
  });
  after(() => t.stop());

  test('a new id past the limit gets the ERROR "Server has reached its concurrent user limit"; a taken id still ID-TAKEN; a close frees a place', async () => {
    const one = await openPeer(t, 'lim-1');
    const two = await openPeer(t, 'lim-2');
    await refusedWith(peer(t, 'lim-3'), errorFrame(MSG.limit), assert);
    await refusedWith(peer(t, 'lim-1', { token: 'other' }), ID_TAKEN, assert);
    // The same id and token is no new id: not refused at the limit.
    const twoAgain = peer(t, 'lim-2', { token: two.token, label: 'lim-2 (again)' });
    if (SWITCHBOARD) await twoAgain.waitFor('OPEN');
    await twoAgain.sync();
    assert.deepEqual(twoAgain.frames.filter((f) => f.type === 'ERROR'), []);
    one.ws.close();
    const three = await openWhenFree(t, 'lim-3');
    twoAgain.send({ type: 'OFFER', dst: 'lim-3', payload: 'hi' });
    assert.deepEqual(await three.waitFor('OFFER'), { type: 'OFFER', src: 'lim-2', dst: 'lim-3', payload: 'hi' });
    for (const c of [two, twoAgain, three]) c.ws.close();
  });
});

describe('expiry', () => {
  const EXPIRE_MS = 800;
  let t;
  before(async () => {
    t = await startTarget({ expireTimeoutMs: EXPIRE_MS });
  });
  after(() => t.stop());

  test('messages to an id that does not come expire: one EXPIRE per destination to each sender, the messages dropped', async () => {
    const a = await openPeer(t, 'exp-a');
    const b = await openPeer(t, 'exp-b');
    const sent = Date.now();
    // Dropped, so no EXPIRE comes back for them (checked with the lists below).
    a.send({ type: 'LEAVE', dst: 'exp-ghost' });
    a.send({ type: 'EXPIRE', dst: 'exp-ghost' });
    for (let n = 0; n < 3; n += 1) a.send({ type: 'OFFER', dst: 'exp-nobody1', payload: { n } });
    for (let n = 0; n < 2; n += 1) a.send({ type: 'CANDIDATE', dst: 'exp-nobody2', payload: { n } });
    b.send({ type: 'OFFER', dst: 'exp-nobody1', payload: { n: 'b' } });
    const first = await a.waitFor('EXPIRE', (f) => f.src === 'exp-nobody1', 10000);
    assert.ok(Date.now() - sent >= EXPIRE_MS - 100, `EXPIRE came ${Date.now() - sent} ms after the message, before the expire timeout`);
    assert.deepEqual(first, { type: 'EXPIRE', src: 'exp-nobody1', dst: 'exp-a' });
    assert.deepEqual(await a.waitFor('EXPIRE', (f) => f.src === 'exp-nobody2', 10000), { type: 'EXPIRE', src: 'exp-nobody2', dst: 'exp-a' });
    assert.deepEqual(await b.waitFor('EXPIRE', (f) => f.src === 'exp-nobody1', 10000), { type: 'EXPIRE', src: 'exp-nobody1', dst: 'exp-b' });
    // A message queued now expires in a later round: by its EXPIRE, a
    // second EXPIRE for the first ones would have come.
    a.send({ type: 'OFFER', dst: 'exp-nobody3', payload: 'later' });
    await a.waitFor('EXPIRE', (f) => f.src === 'exp-nobody3', 10000);
    // (The order between destinations is not specified.)
    assert.deepEqual(a.relays().map((f) => `${f.type} ${f.src}`).sort(), ['EXPIRE exp-nobody1', 'EXPIRE exp-nobody2', 'EXPIRE exp-nobody3']);
    assert.deepEqual(b.relays().map((f) => `${f.type} ${f.src}`), ['EXPIRE exp-nobody1']);
    // The expired messages are gone: exp-nobody1 gets only what comes now.
    const late = await openPeer(t, 'exp-nobody1');
    a.send({ type: 'OFFER', dst: 'exp-nobody1', payload: 'fresh' });
    await late.waitFor('OFFER');
    assert.deepEqual(late.frames, [{ type: 'OPEN' }, { type: 'OFFER', src: 'exp-a', dst: 'exp-nobody1', payload: 'fresh' }]);
    for (const c of [a, b, late]) c.ws.close();
  });
});

describe('alive timeout', () => {
  const ALIVE_MS = 1000;
  let t;
  before(async () => {
    t = await startTarget({ aliveTimeoutMs: ALIVE_MS });
  });
  after(() => t.stop());

  test('HEARTBEAT keeps a client; one sending only other frames is closed after the alive timeout and its id freed', async () => {
    const beating = await openPeer(t, 'alive-hb');
    every(beating, 200, () => beating.send({ type: 'HEARTBEAT' }));
    const busy = async (id) => {
      const c = await openPeer(t, id);
      every(c, 200, () => c.send({ type: 'OFFER', dst: id, payload: 'busy' }));
      return c;
    };
    const chatty = await busy('alive-chatty');
    await chatty.closedWithin(ALIVE_MS * 5);
    assert.ok(chatty.relays().length > 0, 'it was sending (and relaying) until closed');
    const again = await openWhenFree(t, 'alive-chatty', { token: 'another' });
    // A second busy client is closed too: the beating one has lived through
    // more than two alive timeouts by then.
    const chatty2 = await busy('alive-chatty2');
    await chatty2.closedWithin(ALIVE_MS * 5);
    assert.equal(beating.ws.readyState, WebSocket.OPEN, 'the beating client stays');
    await beating.sync();
    again.ws.terminate();
    beating.ws.close();
  });
});

if (SWITCHBOARD) {
  describe('switchboard only: default settings', () => {
    let t;
    before(async () => {
      t = await startTarget();
    });
    after(() => t.stop());

    test('the 401 of {path}/{key}/peers has a JSON error body', async () => {
      const res = await get(restUrl(t, 'peerjs/peers'));
      assert.equal(res.status, 401);
      assert.match(res.type, /^application\/json/);
      const body = JSON.parse(res.text);
      assert.equal(typeof body.error, 'object', res.text);
      assert.equal(typeof body.error.code, 'string', res.text);
    });

    test('invalid JSON and JSON that is not an object are ignored too: no reply, the connection kept and served', async () => {
      // (The reference's command line has no 'error' listener: the exception
      // such a frame raises is caught by its uncaughtException handler, and
      // that connection's later frames are never handled. Not reproduced.)
      await assertIgnored(t, 'badjson', ['not json', '{"type":', '', 'null', '42', '"OFFER"', 'true']);
    });

    test('an id longer than 128 characters or with a control character gets the ERROR "Invalid id" and is closed; 128 are fine', async () => {
      for (const id of ['x'.repeat(129), 'a\u0001b', 'line\nbreak', 'del\u007f']) {
        await refusedWith(peer(t, id, { label: JSON.stringify(id) }), errorFrame(MSG.id), assert);
      }
      const long = await openPeer(t, 'y'.repeat(128));
      long.ws.close();
    });

    test('an upgrade from another Origin is refused 403; the allowed Origin and none are served', async () => {
      const evil = peer(t, 'origin-evil', { wsOptions: { origin: EVIL_ORIGIN } });
      await assert.rejects(evil.opened, /403/);
      assert.deepEqual(evil.frames, []);
      const fromPage = await openPeer(t, 'origin-ok', { wsOptions: { origin: ALLOWED_ORIGIN } });
      const noOrigin = await openPeer(t, 'origin-none');
      fromPage.ws.close();
      noOrigin.ws.close();
    });

    test('/health names peerjs among the protocols served (all six by default)', async () => {
      const health = JSON.parse((await get(`${t.url}/health`)).text);
      assert.ok(Array.isArray(health.protocols), `protocols in ${JSON.stringify(health)}`);
      assert.deepEqual([...health.protocols].sort(), ['peerjs', 'seed-000', 'seed-001', 'seed-004', 'socket.io', 'y-webrtc']);
    });

    test('/metrics counts peerjs connections and messages', async () => {
      const a = await openPeer(t, 'metrics-a');
      await a.sync();
      const lines = (await get(`${t.url}/metrics`)).text.split('\n').filter((l) => !l.startsWith('#') && l.includes('peerjs'));
      const positive = (re) => lines.some((l) => re.test(l.split(' ')[0]) && Number(l.split(' ').at(-1)) > 0);
      assert.ok(positive(/connection/), `a peerjs connection counter above 0 in ${JSON.stringify(lines)}`);
      assert.ok(positive(/message/), `a peerjs message counter above 0 in ${JSON.stringify(lines)}`);
      a.ws.close();
    });
  });

  describe('switchboard only: PROTOCOLS without peerjs', () => {
    let t;
    before(async () => {
      t = await startTarget({ env: { PROTOCOLS: 'socket.io' } });
    });
    after(() => t.stop());

    test('/health lists only the protocols served', async () => {
      assert.deepEqual(JSON.parse((await get(`${t.url}/health`)).text).protocols, ['socket.io']);
    });

    test('neither the REST routes nor the WebSocket of PeerJS are served', async () => {
      assert.equal((await get(restUrl(t))).status, 404);
      assert.equal((await get(restUrl(t, 'peerjs/id'))).status, 404);
      const c = peer(t, 'nope');
      await assert.rejects(c.opened, /Unexpected server response/);
    });
  });

  describe('switchboard only: with JWT_SECRET', () => {
    const SECRET = 'peerjs-secret';
    let t;
    before(async () => {
      t = await startTarget({ env: { JWT_SECRET: SECRET } });
    });
    after(() => t.stop());

    test('the token must be a valid JWT whose sub (or id claim) is the id, else the ERROR "Invalid token provided"', async () => {
      const hour = Math.floor(Date.now() / 1000) - 3600;
      for (const [what, token] of [
        ['not a JWT', 'not-a-jwt'],
        ['another sub', hs256Token(SECRET, 'mallory')],
        ['another id claim', hs256Token(SECRET, undefined, { id: 'mallory' })],
        ['another secret', hs256Token('not-the-secret', 'jwt-alice')],
        ['expired', hs256Token(SECRET, 'jwt-alice', { exp: hour })],
      ]) {
        await refusedWith(peer(t, 'jwt-alice', { token, label: what }), errorFrame(MSG.token), assert);
      }
      const alice = await openPeer(t, 'jwt-alice', { token: hs256Token(SECRET, 'jwt-alice') });
      const zed = await openPeer(t, 'jwt-zed', { token: hs256Token(SECRET, undefined, { id: 'jwt-zed' }) });
      zed.send({ type: 'OFFER', dst: 'jwt-alice', payload: 'signed' });
      assert.deepEqual(await alice.waitFor('OFFER'), { type: 'OFFER', src: 'jwt-zed', dst: 'jwt-alice', payload: 'signed' });
      alice.ws.close();
      zed.ws.close();
    });

    test('a missing token is still the ERROR "No id, token, or key supplied": the parameters are checked first', async () => {
      await refusedWith(peer(t, 'jwt-alice', { params: { token: undefined } }), errorFrame(MSG.params), assert);
    });
  });

  describe('switchboard only: queue and frame bounds', () => {
    let t;
    before(async () => {
      t = await startTarget({ env: { MAX_PAYLOAD_BYTES: '4096', PEERJS_QUEUE_MAX: '4' } });
    });
    after(() => t.stop());

    test('at most PEERJS_QUEUE_MAX messages wait for one id, delivered in order after OPEN', async () => {
      const a = await openPeer(t, 'cap-a');
      for (let n = 0; n < 7; n += 1) a.send({ type: 'CANDIDATE', dst: 'cap-b', payload: { n } });
      await a.sync();
      const b = await openPeer(t, 'cap-b');
      a.send({ type: 'OFFER', dst: 'cap-b', payload: 'after' });
      await waitUntil(() => b.relays().some((f) => f.payload === 'after') && b.relays().length >= 5, 'the waiting messages and the one sent after OPEN');
      const waited = b.relays().filter((f) => f.type === 'CANDIDATE');
      assert.equal(waited.length, 4, `four waited: ${JSON.stringify(b.relays())}`);
      const ns = waited.map((f) => f.payload.n);
      assert.deepEqual(ns, [...ns].sort((x, y) => x - y), 'in the order sent');
      assert.ok(waited.every((f) => f.src === 'cap-a'));
      assert.equal(b.relays().at(-1).payload, 'after', `the waiting messages come before one sent after OPEN: ${JSON.stringify(b.relays())}`);
      a.ws.close();
      b.ws.close();
    });

    test('a frame over MAX_PAYLOAD_BYTES closes that connection with 1009 and frees its id; others go on', async () => {
      const big = await openPeer(t, 'big-a');
      const b = await openPeer(t, 'big-b');
      big.send({ type: 'OFFER', dst: 'big-b', payload: 'x'.repeat(8000) });
      assert.equal((await big.closedWithin()).code, 1009);
      await b.sync();
      assert.deepEqual(b.relays().map((f) => f.src), ['big-b'], 'the big frame was not forwarded');
      const c = await openPeer(t, 'big-c');
      c.send({ type: 'OFFER', dst: 'big-b', payload: 'small' });
      await b.waitFor('OFFER', (f) => f.src === 'big-c');
      const again = await openWhenFree(t, 'big-a', { token: 'another' });
      for (const x of [b, c, again]) x.ws.close();
    });
  });

  describe('switchboard only: rate limit', () => {
    let t;
    before(async () => {
      t = await startTarget({ env: { EVENTS_PER_SECOND: '2', EVENT_BURST: '3', RATE_LIMIT_DISCONNECT_AFTER: '10' } });
    });
    after(() => t.stop());

    test('past the rate limit a frame gets an ERROR naming the rate limit and the connection stays; flooding on closes with 1008', async () => {
      const a = await openPeer(t, 'rate-a');
      const b = await openPeer(t, 'rate-b');
      for (let n = 0; n < 4; n += 1) a.send({ type: 'OFFER', dst: 'rate-b', payload: { n } });
      const refused = await a.waitFor('ERROR');
      assert.deepEqual(Object.keys(refused).sort(), ['payload', 'type']);
      assert.match(refused.payload.msg, /rate|limit|fast/i);
      await waitUntil(() => b.relays().length >= 3, 'the burst');
      // Still open: once the bucket refills, frames are served again.
      await waitUntil(async () => {
        a.send({ type: 'OFFER', dst: 'rate-b', payload: 'again' });
        try {
          await b.waitFor('OFFER', (f) => f.payload === 'again', 700);
          return true;
        } catch {
          return false;
        }
      }, 'a frame served after the refusal');
      assert.deepEqual(b.relays().slice(0, 3).map((f) => f.payload.n), [0, 1, 2]);
      assert.ok(!b.relays().some((f) => f.payload?.n === 3), 'the refused frame was not forwarded');
      assert.equal(a.ws.readyState, WebSocket.OPEN);
      for (let n = 0; n < 40 && a.ws.readyState === WebSocket.OPEN; n += 1) a.send({ type: 'OFFER', dst: 'rate-b', payload: 'flood' });
      assert.equal((await a.closedWithin()).code, 1008);
      b.ws.close();
    });
  });

  describe('switchboard only: connections per address', () => {
    let t;
    before(async () => {
      t = await startTarget({ env: { MAX_CONNECTIONS_PER_IP: '3' } });
    });
    after(() => t.stop());

    test('past MAX_CONNECTIONS_PER_IP the upgrade is refused 429; a close frees a place', async () => {
      const open = [];
      for (let i = 0; i < 3; i += 1) open.push(await openPeer(t, `ip-${i}`));
      const over = peer(t, 'ip-3');
      await assert.rejects(over.opened, /429/);
      open[0].ws.close();
      await open[0].closedWithin();
      let n = 0;
      const next = await waitUntil(async () => {
        n += 1;
        const c = peer(t, `ip-next-${n}`);
        try {
          await c.opened;
        } catch {
          return false;
        }
        await c.waitFor('OPEN');
        return c;
      }, 'a place freed by the close');
      for (const c of [...open, next]) c.ws.close();
    });
  });

  describe('switchboard only: WebSocket pings', () => {
    let t;
    before(async () => {
      t = await startTarget({ env: { PING_INTERVAL_MS: '200', PING_TIMEOUT_MS: '400' } });
    });
    after(() => t.stop());

    test('a client that does not answer pings is dropped and its id freed; one that answers stays', async () => {
      const answering = await openPeer(t, 'ping-yes');
      every(answering, 200, () => answering.send({ type: 'HEARTBEAT' }));
      let pings = 0;
      answering.ws.on('ping', () => (pings += 1));
      const deaf = await openPeer(t, 'ping-deaf', { wsOptions: { autoPong: false } });
      every(deaf, 200, () => deaf.send({ type: 'HEARTBEAT' }));
      await deaf.closedWithin();
      const again = await openWhenFree(t, 'ping-deaf', { token: 'another' });
      await waitUntil(() => pings >= 5, 'five pings answered');
      assert.equal(answering.ws.readyState, WebSocket.OPEN);
      await answering.sync();
      again.ws.close();
      answering.ws.close();
    });
  });
}
