// Faults for the soak test, run alongside the sessions: malformed and binary
// junk over a raw engine.io websocket, oversized frames over websocket and
// polling, abrupt TCP closes, pollers that vanish, and events with bad
// payloads. Each fault is counted by kind and outcome; an outcome the server
// must not produce (an oversized frame processed, a bad payload accepted, a
// dropped peer never announced, or announced before its seat grace ran out)
// is a violation. A socket.io client cut off (abrupt close, oversized frame)
// keeps its seat for the grace (docs/grace.md): its peer hears `user-left`
// only once the grace has run; relays to it meanwhile are acked queued and
// counted back to their sender by `relay-expired`.

import { randomBytes } from 'node:crypto';
import { io, WebSocket, withTimeout, pause, pollUntil } from './lib.mjs';

const STEP_MS = 10000;
const SEP = '\x1e'; // engine.io v4 polling packet separator

let faultCounter = 0;

/**
 * A raw engine.io v4 websocket session on the default namespace: answers
 * pings, resolves `ready` after the namespace CONNECT, matches acks by id.
 */
class RawWs {
  constructor(ctx) {
    this.ctx = ctx;
    this.ws = new WebSocket(`ws://127.0.0.1:${ctx.port}/socket.io/?EIO=4&transport=websocket`);
    this.nextAck = 1;
    this.acks = new Map();
    this.events = [];
    this.isClosed = false;
    this.sid = null;
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code) => {
        this.isClosed = true;
        for (const r of this.acks.values()) r(null);
        this.acks.clear();
        resolve(code);
      });
    });
    this.ws.on('error', () => {}); // 'close' follows
    this.opened = new Promise((resolve) => this.ws.once('open', resolve));
    this.ready = new Promise((resolve, reject) => {
      this.ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const s = data.toString();
        if (s === '2') this.ws.send('3');
        else if (s.startsWith('0{')) this.ws.send('40');
        else if (s.startsWith('40{')) {
          this.sid = JSON.parse(s.slice(2)).sid;
          resolve();
        } else if (s.startsWith('43')) {
          const m = /^43(\d+)(.*)$/s.exec(s);
          const r = m && this.acks.get(Number(m[1]));
          if (r) {
            this.acks.delete(Number(m[1]));
            r(JSON.parse(m[2])[0]);
          }
        } else if (s.startsWith('42')) {
          this.events.push(JSON.parse(s.slice(2)));
        }
      });
      this.closed.then(() => reject(new Error('closed before the namespace connect')));
    });
    this.ready.catch(() => {});
  }

  send(data, opts) {
    if (!this.isClosed && this.ws.readyState === WebSocket.OPEN) this.ws.send(data, opts);
  }

  /** Emits `event` with an ack id; resolves the ack, or null on close or timeout. */
  request(event, payload, ms = STEP_MS) {
    const id = this.nextAck++;
    return withTimeout(
      new Promise((resolve) => {
        this.acks.set(id, resolve);
        this.send(`42${id}${JSON.stringify([event, payload])}`);
      }),
      ms,
    ).catch(() => null);
  }

  terminate() {
    this.ws.terminate();
  }

  close() {
    this.ws.close();
  }
}

/** A raw engine.io v4 polling session (fetch only). */
class RawPoll {
  constructor(ctx) {
    this.ctx = ctx;
    this.base = `${ctx.url}/socket.io/?EIO=4&transport=polling`;
    this.sid = null;
  }

  async open() {
    const res = await fetch(this.base, { signal: AbortSignal.timeout(STEP_MS) });
    const text = await res.text();
    if (res.status !== 200 || !text.startsWith('0{')) throw new Error(`handshake ${res.status} ${text.slice(0, 80)}`);
    this.sid = JSON.parse(text.slice(1)).sid;
  }

  async post(body) {
    const res = await fetch(`${this.base}&sid=${this.sid}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      signal: AbortSignal.timeout(STEP_MS),
    });
    await res.text();
    return res.status;
  }

  /** One long-poll GET: { status, packets }. */
  async get() {
    const res = await fetch(`${this.base}&sid=${this.sid}`, { signal: AbortSignal.timeout(STEP_MS) });
    const text = await res.text();
    return { status: res.status, packets: res.status === 200 ? text.split(SEP) : [] };
  }
}

/** A socket.io-client 4.8 socket, connected, for watching a room. */
async function sioConnect(ctx, transports) {
  const s = io(ctx.url, { forceNew: true, reconnection: false, timeout: STEP_MS, transports });
  await withTimeout(
    new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('connect_error', reject);
    }),
    STEP_MS + 1000,
    'fault client did not connect',
  ).catch((e) => {
    s.disconnect();
    throw e;
  });
  return s;
}

function sioRequest(s, event, ...args) {
  return new Promise((resolve) => {
    s.timeout(STEP_MS).emit(event, ...args, (err, ack) => resolve(err ? null : ack));
  });
}

/** Resolves true once `s` gets `event` matching `pred`, false after `ms`. */
function sioWaitFor(s, event, pred, ms = STEP_MS) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.off(event, on);
      resolve(false);
    }, ms);
    function on(data) {
      if (!pred(data)) return;
      clearTimeout(timer);
      s.off(event, on);
      resolve(true);
    }
    s.on(event, on);
  });
}

/** A watcher in a fresh room: resolves { s, roomId } once joined. */
async function watcher(ctx, tag) {
  const s = await sioConnect(ctx, ['websocket']);
  const roomId = `fault-${ctx.runTag}-${tag}`;
  const ack = await sioRequest(s, 'join-room', { roomId, userId: 'watcher' });
  if (!ack?.ok) {
    s.disconnect();
    throw new Error(`watcher join failed: ${JSON.stringify(ack)}`);
  }
  return { s, roomId };
}

const MALFORMED = [
  '42garbage',
  '42["offer",',
  '4{',
  '9',
  '45',
  '4',
  '',
  '42[]',
  '42[1,2]',
  '42{"a":1}',
  '41',
  '40/nope,',
  '42["offer",{"roomId":"r"}',
  '6',
  '5',
  '2probe',
  '42["join-room",{"roomId":"r","userId":"u"}]]]',
  '4\u0000\u0001',
  '43["x"]',
  '42999999999999999999999["offer",{}]',
  '42-1["offer",{}]',
  '42["__proto__",{"constructor":{"prototype":{}}}]',
  `42["offer",${'['.repeat(5000)}`,
  `42["offer",{"a":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}]`,
  '451-["offer",{"_placeholder":true,"num":0}]',
  '42["offer",{"roomId":"r","targetId":"t","offer":"\\ud800"}]',
];

/** After a junk frame: the server either closed the session or still answers a probe. */
async function outcomeAfterJunk(raw) {
  const ack = await Promise.race([raw.request('soak-probe', {}), raw.closed.then(() => null)]);
  if (ack && ack.ok === false && ack.error?.code === 'invalid-payload') return 'answered';
  // After a namespace DISCONNECT ('41') the connection is closing: events get `unavailable`.
  if (ack && ack.ok === false && ack.error?.code === 'unavailable') return 'answered-closing';
  if (raw.isClosed) return 'closed';
  await withTimeout(raw.closed, 2000).catch(() => {});
  return raw.isClosed ? 'closed' : ack ? `odd-ack:${JSON.stringify(ack)}` : 'silent';
}

const FAULTS = {
  async 'malformed-ws'(ctx, rng) {
    const raw = new RawWs(ctx);
    try {
      await withTimeout(raw.ready, STEP_MS);
      const i = rng.int(0, MALFORMED.length - 1);
      raw.send(MALFORMED[i]);
      const out = await outcomeAfterJunk(raw);
      const allowed = MALFORMED[i] === '41' ? ['closed', 'answered-closing'] : ['closed', 'answered'];
      if (!allowed.includes(out)) return [`#${i}:${out}`, `malformed #${i} ${JSON.stringify(MALFORMED[i].slice(0, 40))}: ${out}`];
      return [out];
    } finally {
      raw.terminate();
    }
  },

  async 'binary-junk-ws'(ctx, rng) {
    const raw = new RawWs(ctx);
    try {
      await withTimeout(raw.ready, STEP_MS);
      raw.send(randomBytes(rng.int(1, 2048)), { binary: true });
      const out = await outcomeAfterJunk(raw);
      if (out !== 'closed' && out !== 'answered') return [out, `binary junk: ${out}`];
      return [out];
    } finally {
      raw.terminate();
    }
  },

  async 'invalid-utf8-text-ws'(ctx) {
    const raw = new RawWs(ctx);
    try {
      await withTimeout(raw.ready, STEP_MS);
      raw.send(Buffer.from([0x34, 0x32, 0xff, 0xfe, 0xc3, 0x28]), { binary: false });
      const out = await outcomeAfterJunk(raw);
      if (out !== 'closed' && out !== 'answered') return [out, `invalid UTF-8 text frame: ${out}`];
      return [out];
    } finally {
      raw.terminate();
    }
  },

  async 'oversize-ws'(ctx, rng) {
    const raw = new RawWs(ctx);
    try {
      await withTimeout(raw.ready, STEP_MS);
      const size = ctx.maxPayload + rng.int(1, 64 * 1024);
      raw.send(`42${JSON.stringify(['offer', { roomId: 'r', targetId: 't', offer: { sdp: 'y'.repeat(size) } }])}`);
      const ack = await Promise.race([raw.request('soak-probe', {}), raw.closed.then(() => null)]);
      await withTimeout(raw.closed, STEP_MS).catch(() => {});
      if (!raw.isClosed) return ['not-closed', `oversize websocket frame (${size} B): connection not closed`];
      if (ack) return ['processed', `oversize websocket frame: a later packet was still answered`];
      return ['closed'];
    } finally {
      raw.terminate();
    }
  },

  async 'oversize-polling'(ctx, rng) {
    const p = new RawPoll(ctx);
    await p.open();
    if ((await p.post('40')) !== 200) return ['connect-refused', 'polling: CONNECT POST refused'];
    await p.get();
    let body;
    if (rng.chance(0.5)) {
      body = `42${JSON.stringify(['offer', { roomId: 'r', targetId: 't', offer: { sdp: 'y'.repeat(ctx.maxPayload) } }])}`;
    } else {
      const one = '42["soak-probe",{"pad":"' + 'z'.repeat(1000) + '"}]';
      body = Array.from({ length: Math.ceil(ctx.maxPayload / one.length) + 2 }, () => one).join(SEP);
    }
    const status = await p.post(body).catch((e) => `error:${e.cause?.code ?? e.message}`);
    const after = await p.get().catch(() => ({ status: 'error' }));
    if (status === 200) return ['accepted', `oversize polling body (${body.length} B) got 200`];
    if (after.status === 200) return [`refused-${status}-session-alive`, `oversize polling body got ${status} but the session lives on`];
    return [`refused-${status}`];
  },

  /** An oversized relay from a joined socket.io client: it is cut off, its peer hears user-left, not the relay. */
  async 'oversize-in-room'(ctx, rng) {
    const tag = `big${++faultCounter}`;
    const w = await watcher(ctx, tag);
    const transports = rng.chance(0.5) ? ['websocket'] : ['polling'];
    let big;
    try {
      big = await sioConnect(ctx, transports);
      const ack = await sioRequest(big, 'join-room', { roomId: w.roomId, userId: 'big' });
      if (!ack?.ok) return ['join-failed', `oversize-in-room: join ${JSON.stringify(ack)}`];
      let relayed = false;
      w.s.on('offer', () => {
        relayed = true;
      });
      const left = sioWaitFor(w.s, 'user-left', (d) => d?.userId === 'big' && d?.roomId === w.roomId, ctx.graceMs + STEP_MS)
        .then((ok) => ok && Date.now());
      const dropped = new Promise((resolve) => big.once('disconnect', resolve));
      const sentAt = Date.now();
      ctx.dropped(w.roomId, 'big');
      big.emit('offer', { roomId: w.roomId, targetId: 'watcher', offer: { sdp: 'y'.repeat(ctx.maxPayload + 1) } });
      const reason = await withTimeout(dropped, STEP_MS).catch(() => null);
      const announced = await left;
      const kind = transports[0];
      if (!reason) return [`${kind}:not-closed`, `oversize relay over ${kind}: connection not closed`];
      if (!announced) return [`${kind}:no-user-left`, `oversize relay over ${kind}: peer got no user-left`];
      if (relayed) return [`${kind}:relayed`, `oversize relay over ${kind} reached the peer`];
      // The server cut the connection off: its seat is held for the grace, then left.
      if (announced - sentAt < ctx.graceMs) {
        return [`${kind}:user-left-early`, `oversize relay over ${kind}: user-left ${announced - sentAt} ms after, within the grace`];
      }
      return [`${kind}:closed`];
    } finally {
      big?.disconnect();
      w.s.disconnect();
    }
  },

  /**
   * A raw websocket dropped without a close frame at some stage. Joined: its
   * seat is held (the server's "seat held" line), relays the watcher sends it
   * then are acked queued, the watcher hears user-left only after the grace,
   * gets one relay-expired with their exact count, and a relay after that
   * gets target-not-found.
   */
  async 'abrupt-raw-ws'(ctx, rng) {
    const stage = rng.weighted({ 'before-open': 1, 'before-connect': 1, 'during-connect': 2, 'after-connect': 1, joined: 4 });
    const raw = new RawWs(ctx);
    if (stage === 'before-open') {
      raw.terminate();
      return [stage];
    }
    if (stage === 'during-connect') {
      // The namespace CONNECT and the close back to back: the server sees the
      // transport end while it is still setting the socket up.
      const how = rng.chance(0.5) ? 'terminate' : 'close';
      raw.ws.on('message', (d) => {
        if (d.toString().startsWith('0{')) raw[how]();
      });
      await withTimeout(raw.closed, STEP_MS).catch(() => raw.terminate());
      return [`${stage}:${how}`];
    }
    let w;
    try {
      await withTimeout(raw.opened, STEP_MS);
      if (stage === 'before-connect') {
        raw.terminate();
        return [stage];
      }
      await withTimeout(raw.ready, STEP_MS);
      if (stage === 'after-connect') {
        raw.terminate();
        return [stage];
      }
      w = await watcher(ctx, `raw${++faultCounter}`);
      const ack = await raw.request('join-room', { roomId: w.roomId, userId: 'raw' });
      if (!ack?.ok) return ['join-failed', `abrupt-raw-ws: join ${JSON.stringify(ack)}`];
      const left = sioWaitFor(w.s, 'user-left', (d) => d?.userId === 'raw' && d?.roomId === w.roomId, ctx.graceMs + STEP_MS)
        .then((ok) => ok && Date.now());
      const expired = [];
      w.s.on('relay-expired', (d) => expired.push(d));
      const droppedAt = Date.now();
      raw.terminate(); // destroys the TCP socket: no close frame
      ctx.dropped(w.roomId, 'raw');
      if (!(await ctx.seatHeld(w.roomId, 'raw', STEP_MS))) return ['not-held', 'abrupt raw websocket close: no "seat held"'];
      const heldAt = Date.now();
      const n = rng.int(1, 5);
      const offer = (i) => sioRequest(w.s, 'offer', { roomId: w.roomId, targetId: 'raw', offer: { i } });
      const acks = await Promise.all(Array.from({ length: n }, (_, i) => offer(i)));
      const ackedAt = Date.now();
      const queued = acks.filter((a) => a?.ok === true && a.queued === true).length;
      ctx.stats.grace.bump('queued-acks', queued);
      // Only acks slower than the grace may find the seat gone (target-not-found).
      const late = (a) => a?.ok === false && a.error?.code === 'target-not-found' && ackedAt - heldAt >= ctx.graceMs;
      const wrong = acks.filter((a) => !(a?.ok === true && a.queued === true) && !late(a));
      if (wrong.length) return ['not-queued', `abrupt raw websocket close: relays to the held seat acked ${JSON.stringify(wrong)}`];
      const leftAt = await left;
      if (!leftAt) return ['no-user-left', 'abrupt raw websocket close: peer got no user-left'];
      if (leftAt - droppedAt < ctx.graceMs) {
        return ['user-left-early', `abrupt raw websocket close: user-left ${leftAt - droppedAt} ms after the drop, within the grace`];
      }
      const sum = () => expired.reduce((k, d) => k + (d?.roomId === w.roomId && d?.targetId === 'raw' ? d.count : 0), 0);
      if (queued) await pollUntil(() => sum() >= queued, STEP_MS, 20);
      ctx.stats.grace.bump('queued-expired', Math.min(sum(), queued));
      if (sum() !== queued || expired.length !== (queued ? 1 : 0)) {
        return ['expired-miscounted', `abrupt raw websocket close: ${queued} queued, relay-expired ${JSON.stringify(expired)}`];
      }
      const after = await offer(n);
      if (after?.error?.code !== 'target-not-found') {
        return ['after-grace', `abrupt raw websocket close: a relay after the grace acked ${JSON.stringify(after)}`];
      }
      return [queued ? `${stage}:expired` : stage];
    } finally {
      raw.terminate();
      w?.s.disconnect();
    }
  },

  /** A poller that joins a room and stops polling: only the heartbeat can reap it. */
  async 'vanished-poller'(ctx, rng) {
    const p = new RawPoll(ctx);
    await p.open();
    if (rng.chance(0.3)) return ['after-handshake'];
    await p.post('40');
    const roomId = `ghost-${ctx.runTag}-${++faultCounter}`;
    await p.post(`421${JSON.stringify(['join-room', { roomId, userId: 'ghost' }])}`);
    for (let i = 0; i < 4; i++) {
      const { status, packets } = await p.get();
      if (status !== 200) return [`get-${status}`, `vanished-poller: GET ${status}`];
      const ack = packets.find((x) => x.startsWith('431'));
      if (ack) {
        if (!JSON.parse(ack.slice(3))[0]?.ok) return ['join-refused', `vanished-poller: ${ack}`];
        ctx.dropped(roomId, 'ghost'); // its seat is held once the heartbeat gives up on it
        return ['joined-then-vanished'];
      }
    }
    return ['no-join-ack', 'vanished-poller: no join ack'];
  },

  /** Events with bad payloads, with and without acks: each must be refused with its code. */
  async 'bad-payload'(ctx, rng) {
    const s = await sioConnect(ctx, [rng.pick(['websocket', 'polling'])]);
    try {
      const R = `bad-${ctx.runTag}-${++faultCounter}`;
      const joined = await sioRequest(s, 'join-room', { roomId: R, userId: 'me' });
      if (!joined?.ok) return ['join-failed', `bad-payload: join ${JSON.stringify(joined)}`];
      const NOARG = Symbol('no argument');
      const cases = [
        ['join-room', {}, 'invalid-payload'],
        ['join-room', { roomId: 5, userId: 'a' }, 'invalid-payload'],
        ['join-room', { roomId: 'x'.repeat(129), userId: 'a' }, 'invalid-payload'],
        ['join-room', { roomId: 'a\u0001b', userId: 'a' }, 'invalid-payload'],
        ['join-room', { roomId: 'ok', userId: '' }, 'invalid-payload'],
        ['join-room', 'just a string', 'invalid-payload'],
        ['join-room', [1, 2], 'invalid-payload'],
        ['join-room', NOARG, 'invalid-payload'],
        ['join-room', { roomId: R, userId: 'another-name' }, 'invalid-payload'],
        ['leave-room', {}, 'invalid-payload'],
        ['offer', { roomId: R, targetId: 'ghost' }, 'invalid-payload'],
        ['offer', { roomId: R, targetId: 'ghost', offer: null }, 'invalid-payload'],
        ['answer', { roomId: R, targetId: 7, answer: {} }, 'invalid-payload'],
        ['ice-candidate', { roomId: R, candidate: {} }, 'invalid-payload'],
        ['bogus-event', { roomId: R }, 'invalid-payload'],
        ['leave-room', { roomId: `${R}-never` }, 'not-in-room'],
        ['offer', { roomId: `${R}-never`, targetId: 'me', offer: { sdp: 'x' } }, 'not-in-room'],
        ['offer', { roomId: R, targetId: 'ghost', offer: { sdp: 'x' } }, 'target-not-found'],
        ['ice-candidate', { roomId: R, targetId: 'ghost', candidate: null }, 'target-not-found'],
      ];
      const bad = [];
      const n = rng.int(3, 7);
      for (let i = 0; i < n; i++) {
        const [event, payload, code] = rng.pick(cases);
        const args = payload === NOARG ? [] : [payload];
        let got;
        if (rng.chance(0.5)) {
          const ack = await sioRequest(s, event, ...args);
          got = ack?.ok === false ? ack.error?.code : `ack:${JSON.stringify(ack)}`;
          ctx.stats.events.bump('bad-payload:acked');
        } else {
          let seen = null;
          const ok = sioWaitFor(s, 'signaling-error', (e) => {
            seen = e;
            return true;
          });
          s.emit(event, ...args);
          got = (await ok) ? (seen.event === event ? seen.code : `event:${seen.event}`) : 'no-signaling-error';
          ctx.stats.events.bump('bad-payload:signaling-error');
        }
        ctx.stats.errors.bump(got);
        if (got !== code) bad.push(`${event} ${JSON.stringify(payload === NOARG ? '(none)' : payload).slice(0, 60)}: want ${code}, got ${got}`);
      }
      const left = await sioRequest(s, 'leave-room', { roomId: R });
      if (!left?.ok) bad.push(`leave after bad payloads: ${JSON.stringify(left)}`);
      return bad.length ? ['wrong-answer', bad.join('; ')] : ['refused-as-expected'];
    } finally {
      s.disconnect();
    }
  },
};

const WEIGHTS = {
  'malformed-ws': 25,
  'binary-junk-ws': 8,
  'invalid-utf8-text-ws': 4,
  'oversize-ws': 8,
  'oversize-polling': 8,
  'oversize-in-room': 6,
  'abrupt-raw-ws': 12,
  'vanished-poller': 4,
  'bad-payload': 15,
};

/** Runs one fault after another until the load deadline. */
export async function faultWorker(ctx, rng) {
  let n = 0;
  while (Date.now() < ctx.loadDeadline && n < 100000) {
    n += 1;
    const kind = rng.weighted(WEIGHTS);
    ctx.stats.faults.bump(kind);
    let result;
    try {
      result = await withTimeout(FAULTS[kind](ctx, rng), 45000, `${kind} did not finish in 45 s`);
    } catch (err) {
      result = ['failed', `${kind}: ${err.message}`];
    }
    const [outcome, violation] = result;
    ctx.stats.faultOutcomes.bump(`${kind}:${outcome}`);
    if (violation) ctx.stats.violations.add(violation);
    await pause(rng.int(20, 80)); // pacing, not waiting for anything
  }
}
