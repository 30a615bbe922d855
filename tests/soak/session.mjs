// Signaling sessions for the soak test: a room of 2 to 6 socket.io clients
// that join, relay offers/answers/ICE candidates to each other with a sequence
// number per (sender, target) stream, are checked for exactly-once in-order
// delivery, then leave, disconnect or drop, and come back in the next session.
//
// Exact bookkeeping (all in this one process, so the test can "tell" a target
// out of band what its sender's acks confirmed):
// - A relay is *expected* at its target when its ack said ok:true, or when it
//   was sent without an ack on a stream whose sender and target both stay
//   connected and joined for the whole exchange. Nobody leaves the room until
//   every target has received everything expected of it (bounded wait), so a
//   relay that is expected but never arrives is *missing*, not a race.
// - A relay acked with an error must never arrive (counted if it does).
// - Every arrival is checked: right target, right sender, body exactly as
//   sent, not seen before on its stream (duplicate), not behind a higher
//   sequence number already seen (out of order).
// - Streams to a peer that departs mid-exchange ("churn") are always acked and
//   only checked for duplicates, order, integrity and refused-but-delivered:
//   whether an ok'd relay reached a connection that then closed is unknowable.
//   Un-acked relays *from* a departing peer are likewise not expected.
// - `signaling-error`s carry no relay id, so for a sender without acks each one
//   for a relay event excuses one missing relay of that sender; every such
//   error between stable peers is also reported as unexpected.

import { isDeepStrictEqual } from 'node:util';
import { io, pause, withTimeout, pollUntil } from './lib.mjs';

export const RELAY_KINDS = ['offer', 'answer', 'ice-candidate'];
const BODY_FIELD = { offer: 'offer', answer: 'answer', 'ice-candidate': 'candidate' };

export const CONNECT_MS = 20000;
export const ACK_MS = 20000;
const EXCHANGE_MS = 30000;
const DELIVERY_WAIT_MS = 30000;

/** One socket.io-client 4.8 connection; routes what it receives to the session holding the room. */
export class Client {
  constructor(ctx, mode) {
    this.ctx = ctx;
    this.mode = mode; // 'websocket' | 'polling' | 'upgrade' (polling, then upgrades)
    this.closing = false;
    this.lostReason = null;
    /** roomId -> { session, peer } */
    this.seats = new Map();
    const transports =
      mode === 'websocket' ? ['websocket'] : mode === 'polling' ? ['polling'] : ['polling', 'websocket'];
    this.socket = io(ctx.url, {
      forceNew: true,
      reconnection: false,
      timeout: CONNECT_MS,
      transports,
    });
    ctx.clients.add(this);
    for (const kind of RELAY_KINDS) {
      this.socket.on(kind, (data) => this.onRelay(kind, data));
    }
    this.socket.on('signaling-error', (e) => this.onSignalingError(e));
    this.socket.on('disconnect', (reason) => {
      ctx.clients.delete(this);
      if (!this.closing) {
        this.lostReason = reason;
        ctx.stats.clients.bump(`involuntary-disconnect:${reason}`);
        ctx.stats.unexpected.add(`client ${this.socket.id ?? '?'} (${mode}) lost its connection: ${reason}`);
        for (const { session, peer } of this.seats.values()) session.onPeerLost(peer, reason);
      }
    });
  }

  async connect() {
    const s = this.socket;
    try {
      await withTimeout(
        new Promise((resolve, reject) => {
          if (s.connected) return resolve();
          s.once('connect', resolve);
          s.once('connect_error', reject);
        }),
        CONNECT_MS + 1000,
        `connect timed out after ${CONNECT_MS} ms`,
      );
      this.ctx.stats.clients.bump(`connected:${this.mode}`);
      return true;
    } catch (err) {
      this.ctx.stats.clients.bump('connect-failed');
      this.ctx.stats.unexpected.add(`connect (${this.mode}) failed: ${err.message}`);
      this.close();
      return false;
    }
  }

  get usable() {
    return this.socket.connected && !this.closing;
  }

  /** The engine.io transport in use now ('websocket' or 'polling'). */
  get transportName() {
    return this.socket.io.engine?.transport?.name;
  }

  /** Emits with an ack; resolves { ack } or { error } (timeout or disconnect), never rejects. */
  request(event, payload, ms = ACK_MS) {
    return new Promise((resolve) => {
      this.socket.timeout(ms).emit(event, payload, (err, ack) => resolve(err ? { error: err } : { ack }));
    });
  }

  close() {
    this.closing = true;
    this.ctx.clients.delete(this);
    this.socket.disconnect();
  }

  /**
   * Drops the connection without a goodbye: destroys the TCP socket under a
   * websocket (the server sees the stream end, no close frame, no socket.io
   * DISCONNECT). Polling has no connection to cut, so it closes normally.
   * Resolves to what was done.
   */
  abrupt() {
    this.closing = true;
    this.ctx.clients.delete(this);
    const transport = this.socket.io.engine?.transport;
    const tcp = transport?.name === 'websocket' ? transport.ws?._socket : null;
    if (tcp) {
      // The client notices the dead socket by itself ('transport close').
      tcp.destroy();
      return 'abrupt-tcp-close';
    }
    this.socket.disconnect();
    return 'graceful-close';
  }

  onRelay(kind, data, spared = false) {
    if (this.ctx.selfTest && !spared && this.sabotage(kind, data)) return;
    this.routeRelay(kind, data);
  }

  routeRelay(kind, data) {
    const seat = data && this.seats.get(data.roomId);
    if (!seat) {
      this.ctx.stats.relays.bump('stray');
      this.ctx.stats.delivery.add(`stray ${kind} for room ${data?.roomId} from ${data?.senderId} (not joined here)`);
      return;
    }
    seat.session.onRelay(seat.peer, kind, data);
  }

  /**
   * --self-test: this client, not the server, loses, repeats or swaps a few
   * relays, to show that the delivery checks catch each kind of fault.
   * Returns true when it handled (or swallowed) the relay itself.
   */
  sabotage(kind, data) {
    const r = Math.random();
    if (this.held) {
      const held = this.held;
      this.held = null;
      this.onRelay(kind, data, true);
      this.onRelay(held.kind, held.data, true);
      return true;
    }
    if (r < 0.0005) return true; // lost
    if (r < 0.001) {
      this.routeRelay(kind, data); // delivered twice
      return false;
    }
    if (r < 0.0015) {
      this.held = { kind, data }; // delivered after the next one
      return true;
    }
    return false;
  }

  onSignalingError(e) {
    this.ctx.stats.errors.bump(e?.code ?? 'no-code');
    for (const { session, peer } of this.seats.values()) {
      if (session.onSignalingError(peer, e)) return;
    }
    this.ctx.stats.unexpected.add(`signaling-error outside a session: ${JSON.stringify(e)}`);
  }
}

/** Picks a transport mode: websocket, polling, or polling that upgrades. */
export function pickMode(rng) {
  return rng.weighted({ websocket: 45, polling: 35, upgrade: 20 });
}

let sessionCounter = 0;

class Session {
  constructor(ctx, rng, pool) {
    this.ctx = ctx;
    this.rng = rng;
    this.pool = pool;
    this.id = ++sessionCounter;
    this.roomId = `soak-${ctx.runTag}-${this.id}`;
    this.peers = [];
    /** `${from}>${to}` -> stream */
    this.streams = new Map();
    this.exchangeDeadline = 0;
  }

  get stats() {
    return this.ctx.stats;
  }

  /** Takes a pooled, still-connected client or makes a new one. */
  async takeClient() {
    while (this.pool.length) {
      const c = this.pool.pop();
      if (c.usable) {
        this.stats.clients.bump('reused');
        return c;
      }
      c.close();
    }
    const c = new Client(this.ctx, pickMode(this.rng));
    return (await c.connect()) ? c : null;
  }

  seat(peer, client) {
    peer.client = client;
    client.seats.set(this.roomId, { session: this, peer });
  }

  unseat(peer) {
    peer.client?.seats.delete(this.roomId);
  }

  async join(peer) {
    const { ack, error } = await peer.client.request('join-room', { roomId: this.roomId, userId: peer.userId });
    this.stats.events.bump('join-room');
    if (error || !ack?.ok) {
      this.noteError('join-room', ack, error);
      return false;
    }
    if (!Array.isArray(ack.users) || ack.users.filter((u) => u === peer.userId).length !== 1) {
      this.stats.unexpected.add(`join ack of ${peer.userId} lists users ${JSON.stringify(ack.users)}`);
      return false;
    }
    return true;
  }

  noteError(what, ack, error) {
    if (error) {
      this.stats.unexpected.add(`${what} in ${this.roomId}: no ack (${error.message})`);
      this.stats.events.bump('ack-timeout');
    } else {
      const code = ack?.error?.code ?? 'malformed-ack';
      this.stats.errors.bump(code);
      this.stats.unexpected.add(`${what} in ${this.roomId}: ${JSON.stringify(ack)}`);
    }
  }

  async run() {
    const { rng, stats } = this;
    stats.sessions.bump('started');
    const k = rng.int(2, 6);
    for (let i = 0; i < k; i++) {
      this.peers.push({
        idx: i,
        userId: `${this.roomId}-u${i}`,
        client: null,
        acked: rng.chance(0.5),
        departing: false,
        departed: false,
        relayErrors: 0,
      });
    }
    try {
      const clients = await Promise.all(this.peers.map(() => this.takeClient()));
      clients.forEach((c, i) => c && this.seat(this.peers[i], c));
      if (clients.some((c) => !c)) return this.abort('connect');
      const joined = await Promise.all(this.peers.map((p) => this.join(p)));
      if (joined.some((ok) => !ok)) return this.abort('join');

      if (rng.chance(0.12)) {
        if (!(await this.rejoin(rng.pick(this.peers)))) return this.abort('rejoin');
      }
      await this.exchange();
      await this.verify();
      await this.teardown();
      stats.sessions.bump('completed');
    } catch (err) {
      stats.unexpected.add(`session ${this.roomId} threw: ${err?.stack ?? err}`);
      await this.abort('exception');
    }
  }

  async abort(why) {
    this.stats.sessions.bump(`aborted:${why}`);
    for (const p of this.peers) {
      this.unseat(p);
      p.client?.close();
    }
  }

  /**
   * The same userId joins from a new connection (a reconnect): it takes the
   * seat over; then the old connection goes away, gracefully or not, and its
   * disconnect must not remove the new seat (relays to it keep working).
   */
  async rejoin(peer) {
    this.stats.sessions.bump('rejoin');
    const fresh = new Client(this.ctx, pickMode(this.rng));
    if (!(await fresh.connect())) return false;
    const old = peer.client;
    this.unseat(peer);
    this.seat(peer, fresh);
    if (!(await this.join(peer))) return false;
    const how = this.rng.chance(0.5) ? old.abrupt() : (old.close(), 'graceful-close');
    this.stats.faults.bump(`replaced-connection:${how}`);
    return true;
  }

  newStream(from, to) {
    const s = {
      from,
      to,
      key: `${from.userId}>${to.userId}`,
      // Streams to a peer that departs are acked so their errors are attributable.
      acked: from.acked || to.departing,
      status: [], // per seq: 'pending' | 'ok' | 'err' | 'noack' | 'lost' | 'timeout'
      bodies: [],
      kinds: [],
      seen: new Set(),
      maxSeen: -1,
      nullSeq: null,
    };
    this.streams.set(s.key, s);
    return s;
  }

  async exchange() {
    const { rng, peers } = this;
    this.exchangeDeadline = Date.now() + EXCHANGE_MS;
    let departure = null;
    if (peers.length >= 3 && rng.chance(0.2)) {
      const d = rng.pick(peers);
      d.departing = true; // decided up front: streams to it are acked
      this.stats.sessions.bump('churn');
      departure = this.depart(d, rng.int(0, 200));
    }
    const streams = [];
    for (const from of peers) {
      for (const to of peers) {
        if (from !== to) streams.push(this.newStream(from, to));
      }
    }
    if (rng.chance(0.15)) {
      const p = rng.pick(peers);
      streams.push(this.newStream(p, p)); // a relay to yourself is allowed
      this.stats.sessions.bump('self-relay');
    }
    await Promise.all([...streams.map((s) => this.sendStream(s)), departure]);
  }

  /** A peer leaves mid-exchange: leave-room then close, close, or an abrupt drop. */
  async depart(peer, afterMs) {
    await pause(afterMs);
    peer.departed = true; // stops its streams
    const how = this.rng.weighted({ leave: 1, close: 1, abrupt: 1 });
    if (how === 'leave') {
      const { ack, error } = await peer.client.request('leave-room', { roomId: this.roomId });
      this.stats.events.bump('leave-room');
      if (error || !ack?.ok) this.noteError('leave-room (departing)', ack, error);
      this.unseat(peer);
      peer.client.close();
      this.stats.faults.bump('departure:leave-then-close');
    } else if (how === 'close') {
      this.unseat(peer);
      peer.client.close();
      this.stats.faults.bump('departure:graceful-close');
    } else {
      this.unseat(peer);
      this.stats.faults.bump(`departure:${peer.client.abrupt()}`);
    }
  }

  async sendStream(s) {
    const { rng } = this;
    const n = rng.chance(0.05) ? rng.int(100, 300) : rng.int(3, 30);
    const endOfCandidates = rng.chance(0.3);
    const total = n + (endOfCandidates ? 1 : 0);
    let seq = 0;
    while (seq < total && !s.from.departed && Date.now() < this.exchangeDeadline) {
      const chunk = rng.int(1, 8);
      const acks = [];
      for (let c = 0; c < chunk && seq < total; c++, seq++) {
        acks.push(this.emitRelay(s, seq, endOfCandidates && seq === total - 1));
      }
      if (s.acked) await Promise.all(acks);
      else await pause(rng.int(0, 15));
    }
  }

  emitRelay(s, seq, endOfCandidates) {
    const { rng, stats } = this;
    let kind;
    let body;
    if (endOfCandidates) {
      kind = 'ice-candidate';
      body = null; // the browser's end-of-candidates signal
      s.nullSeq = seq;
    } else {
      kind = seq === 0 ? 'offer' : rng.chance(0.15) ? 'answer' : 'ice-candidate';
      const padLen = rng.chance(0.03) ? rng.int(8000, 30000) : rng.int(0, 400);
      body = { from: s.from.userId, to: s.to.userId, seq, kind, u: 'é✓😀\n"\\', pad: 'x'.repeat(padLen) };
      if (kind === 'ice-candidate') Object.assign(body, { sdpMid: '0', sdpMLineIndex: seq % 3 });
    }
    s.kinds[seq] = kind;
    s.bodies[seq] = body;
    const payload = { roomId: this.roomId, targetId: s.to.userId, [BODY_FIELD[kind]]: body };
    stats.relays.bump('sent');
    stats.events.bump(kind);
    const client = s.from.client;
    if (!s.acked) {
      s.status[seq] = 'noack';
      stats.relays.bump('sent-without-ack');
      client.socket.emit(kind, payload);
      return null;
    }
    s.status[seq] = 'pending';
    return client.request(kind, payload).then(({ ack, error }) => {
      if (error) {
        if (s.from.departed) {
          s.status[seq] = 'lost'; // its own connection closed before the ack
          stats.relays.bump('ack-lost-sender-departed');
        } else {
          s.status[seq] = 'timeout';
          stats.relays.bump('ack-timeout');
          stats.unexpected.add(`${kind} ${s.key}#${seq}: no ack (${error.message})`);
        }
      } else if (ack?.ok === true) {
        s.status[seq] = 'ok';
        stats.relays.bump('acked-ok');
      } else {
        s.status[seq] = 'err';
        const code = ack?.error?.code ?? 'malformed-ack';
        stats.relays.bump('acked-error');
        stats.errors.bump(code);
        if (!s.to.departing && !s.from.departed) {
          stats.unexpected.add(`${kind} ${s.key}#${seq} between stable peers refused: ${JSON.stringify(ack)}`);
        }
      }
    });
  }

  onRelay(peer, kind, data) {
    const { stats } = this;
    const s = this.streams.get(`${data.senderId}>${peer.userId}`);
    if (!s) {
      stats.relays.bump('misrouted');
      stats.delivery.add(`${peer.userId} got ${kind} from ${data.senderId}: no such stream`);
      return;
    }
    const body = data[BODY_FIELD[kind]];
    const seq = body === null ? s.nullSeq : body?.seq;
    if (!Number.isInteger(seq) || seq < 0 || seq >= s.bodies.length) {
      stats.relays.bump('corrupted');
      stats.delivery.add(`${s.key}: unidentifiable ${kind} ${JSON.stringify(data).slice(0, 200)}`);
      return;
    }
    if (s.kinds[seq] !== kind || !isDeepStrictEqual(body, s.bodies[seq])) {
      stats.relays.bump('corrupted');
      stats.delivery.add(`${s.key}#${seq}: ${kind} arrived altered`);
    }
    if (s.seen.has(seq)) {
      stats.relays.bump('duplicates');
      stats.delivery.add(`${s.key}#${seq}: duplicate`);
      return;
    }
    if (seq < s.maxSeen) {
      stats.relays.bump('out-of-order');
      stats.delivery.add(`${s.key}#${seq}: after #${s.maxSeen}`);
    }
    s.seen.add(seq);
    s.maxSeen = Math.max(s.maxSeen, seq);
    stats.relays.bump('delivered');
  }

  /** True if this session owns the error (a peer of it got a signaling-error). */
  onSignalingError(peer, e) {
    if (RELAY_KINDS.includes(e?.event)) {
      peer.relayErrors += 1;
      this.stats.unexpected.add(`${peer.userId}: signaling-error for ${e.event}: ${e.code}`);
    } else {
      this.stats.unexpected.add(`${peer.userId}: signaling-error ${JSON.stringify(e)}`);
    }
    return true;
  }

  onPeerLost(peer, reason) {
    peer.lost = reason;
  }

  /** Sequence numbers that must arrive on stream `s` (see the header). */
  expected(s) {
    if (s.to.departing) return [];
    const out = [];
    s.status.forEach((st, seq) => {
      if (st === 'ok' || (st === 'noack' && !s.from.departing)) out.push(seq);
    });
    return out;
  }

  /** Missing relays, after excusing no-ack senders' signaling-errors. */
  missing() {
    const bySender = new Map();
    for (const s of this.streams.values()) {
      const miss = this.expected(s).filter((seq) => !s.seen.has(seq));
      if (!miss.length) continue;
      const e = bySender.get(s.from) ?? { noack: 0, acked: 0, detail: [] };
      for (const seq of miss) {
        if (s.status[seq] === 'noack') e.noack += 1;
        else e.acked += 1;
      }
      e.detail.push(`${s.key}: ${miss.length} of ${this.expected(s).length} (${miss.slice(0, 5).join(',')}${miss.length > 5 ? ',…' : ''})`);
      bySender.set(s.from, e);
    }
    let missing = 0;
    let excused = 0;
    const detail = [];
    for (const [sender, e] of bySender) {
      const ex = Math.min(e.noack, sender.relayErrors);
      excused += ex;
      missing += e.acked + e.noack - ex;
      if (e.acked + e.noack - ex > 0) detail.push(...e.detail);
    }
    return { missing, excused, detail };
  }

  async verify() {
    await pollUntil(() => this.missing().missing === 0, DELIVERY_WAIT_MS, 20);
    const { missing, excused, detail } = this.missing();
    const { stats } = this;
    stats.relays.bump('missing', missing);
    stats.relays.bump('refused-without-ack', excused);
    if (missing) {
      const lost = this.peers.filter((p) => p.lost).map((p) => `${p.userId}:${p.lost}`);
      stats.delivery.add(`${this.roomId} missing ${missing}: ${detail.join('; ')}${lost.length ? ` (lost peers ${lost})` : ''}`);
    }
    for (const s of this.streams.values()) {
      s.status.forEach((st, seq) => {
        if (st === 'err' && s.seen.has(seq)) {
          stats.relays.bump('refused-but-delivered');
          stats.delivery.add(`${s.key}#${seq}: refused, yet delivered`);
        }
        if (st === 'noack' && s.from.departing) stats.relays.bump('not-expected:sender-departed');
        if (st === 'ok' && s.to.departing) stats.relays.bump('not-expected:target-departed');
      });
    }
  }

  async teardown() {
    const { rng, stats } = this;
    await Promise.all(
      this.peers
        .filter((p) => !p.departed)
        .map(async (p) => {
          const how = rng.weighted({ 'leave-keep': 30, close: 40, abrupt: 20, 'leave-close': 10 });
          if (how.startsWith('leave')) {
            const { ack, error } = await p.client.request('leave-room', { roomId: this.roomId });
            stats.events.bump('leave-room');
            if (error || !ack?.ok) this.noteError('leave-room', ack, error);
          }
          this.unseat(p);
          if (how === 'leave-keep' && p.client.usable && this.pool.length < 2) {
            this.pool.push(p.client); // reconnect-free reuse: joins the next session's room
          } else if (how === 'abrupt') {
            stats.faults.bump(`teardown:${p.client.abrupt()}`);
          } else {
            p.client.close();
          }
        }),
    );
  }
}

/** One session after another until the load deadline; resolves when its last session ends. */
export async function sessionWorker(ctx, rng) {
  const pool = [];
  let n = 0;
  while (Date.now() < ctx.loadDeadline && n < 100000) {
    n += 1;
    await new Session(ctx, rng, pool).run();
  }
  for (const c of pool) c.close();
}

/** A few clients connect, join, relay and leave, to warm the server up before the RSS baseline. */
export async function warmUp(ctx, rng) {
  const pool = [];
  const s = new Session(ctx, rng, pool);
  await s.run();
  for (const c of pool) c.close();
}
