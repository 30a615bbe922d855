// Signaling sessions for the soak test: a room of 2 to 6 socket.io clients
// that join, relay offers/answers/ICE candidates to each other with a sequence
// number per (sender, target) stream, are checked for exactly-once in-order
// delivery, then leave, disconnect or drop, and come back in the next session.
//
// Exact bookkeeping (all in this one process, so the test can "tell" a target
// out of band what its sender's acks confirmed):
// - A relay is *expected* at its target when its ack said ok:true (plain or
//   `queued`), or when it was sent without an ack on a stream whose sender and
//   target both stay connected and joined for the whole exchange. Nobody
//   leaves the room until every target has received everything expected of
//   it (bounded wait), so a relay that is expected but never arrives is
//   *missing*, not a race.
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
//
// Seat grace (docs/grace.md; the soak's server holds a dropped seat for
// ctx.graceMs). A drop is `Client.abrupt()`: the TCP socket under a websocket
// destroyed, or the engine.io transport closed (`socket.io.engine.close()`,
// websocket or polling); neither sends a socket.io DISCONNECT, so the server
// holds the seat. The test learns the moment it did from the server's
// "seat held" log line (ctx.seatHeld): a relay emitted after that line was
// seen was necessarily handled by the server while the seat was held or after
// it was resumed. Graces are checked in exact counts (grace notes on failure):
// - Every relay acked `{ ok: true, queued: true }` ends either delivered to the
//   target's resumed connection (exactly once, in order, after its
//   `room-users`) or counted in a `relay-expired { roomId, targetId, count }`
//   its sender received: per (sender, target, room), queued acks not delivered
//   == the sum of the counts, and at most one such event. A queued ack for a
//   target whose seat cannot be held (connected, or gone on purpose) is wrong.
// - "Blip" sessions (the abrupt close then resume ending): one peer drops its
//   transport during the exchange while a NEW connection for it is already
//   open; once the seat is held every stream to it sends a few relays (its
//   "gap"; acked ones wait for their acks, which must all say queued), then the
//   new connection joins with the same userId (the resume) and the streams go
//   on (live). Relays to it emitted after the hold (acked or not) must arrive
//   at the new connection; those acked queued before the join was emitted must
//   arrive after its `room-users` and before its join ack (kept relays come
//   first); the resumed join keeps the user's place in the join order; its own
//   streams pause during the gap and go on from the new connection. No peer
//   ever sees `user-left` for it, nor a `user-joined` beyond the one of its
//   first join (exactly one for a peer seated before it, none after).
//   Relays to it emitted before the hold was seen may have gone to the dropped
//   connection and been lost (acked ok): not expected, but checked if seen.
// - A churn departure by drop is not resumed: its seat expires. Stable peers
//   get exactly one `user-left` for it, not before the grace has run since
//   the drop; each sender gets `relay-expired` with the exact count of its
//   queued acks (streams to a departing peer are all acked, so the count is
//   exact); a departure on purpose (leave-room, socket.disconnect()) gives
//   `user-left` and never a queued ack. Senders stay joined until then (the
//   server tells only senders still seated in the room).
// - No relay to a seat whose connection dropped may be refused before its
//   grace ends (docs/grace.md: it is kept and acked queued). Counted as
//   `problem:refused-before-hold` (by the phase it was sent in): any refusal
//   of a relay to a blipping peer; a `target-not-found` whose message says the
//   target's connection has closed (not "no participant": the grace ended)
//   for an expiring one; an un-acked relay's `target-not-found` in a blip
//   session, where the blipping peer is the only one that can be refused.
//   With --redis, `unavailable` for such a relay (keeping it, or waiting for
//   its hold, needed Redis while it was stalled) is counted, not a problem.
// - The server logs "seat held" once per abrupt drop of a seated connection
//   and for no other seat (ctx.dropped; checked in soak.mjs).
// - A blip session has no takeover (rejoin) and no churn departure, so who is
//   seated where, and who was told what, is known at every step.

import { isDeepStrictEqual } from 'node:util';
import { io, pause, withTimeout, pollUntil, deferred } from './lib.mjs';

export const RELAY_KINDS = ['offer', 'answer', 'ice-candidate'];
const BODY_FIELD = { offer: 'offer', answer: 'answer', 'ice-candidate': 'candidate' };

export const CONNECT_MS = 20000;
export const ACK_MS = 20000;
const EXCHANGE_MS = 30000;
const DELIVERY_WAIT_MS = 30000;
/** Sessions whose ending is a blip (drop, then resume from a new connection). */
const BLIP_CHANCE = 0.15;
/** How long a resume waits for the streams to send their gap relays (and have them acked), at most. */
const GAP_WAIT_MS = 300;
/** The message of the `target-not-found` of a route to a connection that has closed (a seat not left yet). */
const CONNECTION_CLOSED = /connection has closed/;

/** One socket.io-client 4.8 connection; routes what it receives to the session holding the room. */
export class Client {
  constructor(ctx, mode) {
    this.ctx = ctx;
    this.mode = mode; // 'websocket' | 'polling' | 'upgrade' (polling, then upgrades)
    this.closing = false;
    this.lostReason = null;
    /** roomId -> { session, peer } */
    this.seats = new Map();
    /** Rooms this connection got `room-users` for. */
    this.roomUsers = new Set();
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
    this.socket.on('room-users', (d) => {
      if (typeof d?.roomId !== 'string') return;
      this.roomUsers.add(d.roomId);
      this.seats.get(d.roomId)?.session.onRoomUsers(this.seats.get(d.roomId).peer, this, d);
    });
    for (const kind of ['user-joined', 'user-left']) {
      this.socket.on(kind, (d) => {
        const seat = d && this.seats.get(d.roomId);
        if (seat) seat.session.onPresence(seat.peer, kind, d);
      });
    }
    this.socket.on('relay-expired', (d) => {
      const seat = d && this.seats.get(d.roomId);
      if (seat) return seat.session.onRelayExpired(seat.peer, d);
      ctx.stats.grace.bump('problem:relay-expired-stray');
      ctx.stats.graceNotes.add(`relay-expired for a room this connection is not seated in: ${JSON.stringify(d)}`);
    });
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
   * Drops the connection without a socket.io DISCONNECT, so that the server
   * holds its seats for the grace: destroys the TCP socket under a websocket
   * (the server sees the stream end, no close frame), or closes the engine.io
   * transport (`socket.io.engine.close()`: a websocket close frame, or an
   * engine.io close packet over polling). Without `rng` a websocket's TCP
   * socket is destroyed; with it, either at even odds. Returns what was done.
   */
  abrupt(rng) {
    this.closing = true;
    this.ctx.clients.delete(this);
    const engine = this.socket.io.engine;
    const transport = engine?.transport;
    const tcp = transport?.name === 'websocket' ? transport.ws?._socket : null;
    if (tcp && (!rng || rng.chance(0.5))) {
      // The client notices the dead socket by itself ('transport close').
      tcp.destroy();
      return 'abrupt-tcp-close';
    }
    if (engine) {
      engine.close();
      return `abrupt-engine-close:${transport?.name ?? 'none'}`;
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
    seat.session.onRelay(seat.peer, kind, data, this);
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

/**
 * A blip of one peer (see the header): its old connection drops, the new one
 * (`fresh`, connected beforehand) resumes the seat. `state` is the phase the
 * streams to it are in: 'connected', 'dropping' (dropped, the hold not seen
 * yet), 'held' (the server's "seat held" line seen), 'resumed' (join acked).
 */
class Blip {
  constructor(fresh) {
    this.fresh = fresh;
    this.old = null;
    this.state = 'connected';
    this.held = deferred();
    this.resumed = deferred();
    /** Streams to the blipping peer that have not sent their gap relays yet. */
    this.pendingGaps = new Set();
    this.gapsDone = deferred();
    /** Set in the resume's join ack callback, synchronously with its arrival. */
    this.joinAcked = false;
    this.droppedAt = 0;
    this.heldSeenAt = 0;
  }

  gapDone(s) {
    if (this.pendingGaps.delete(s) && this.pendingGaps.size === 0) this.gapsDone.resolve();
  }
}

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
    /** The users in join order, from the join ack that listed them all. */
    this.order = null;
    /** `${observer}|${event}|${subject}` -> arrival times (user-joined / user-left). */
    this.presence = new Map();
    /** `${sender}>${target}` -> { count, events }, from relay-expired. */
    this.expired = new Map();
    /** The peer that blips (drops, then resumes from a new connection), if any. */
    this.blipper = null;
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
    return this.newClient();
  }

  async newClient() {
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
    return this.joinAcked(peer, ack, error);
  }

  joinAcked(peer, ack, error) {
    if (error || !ack?.ok) {
      this.noteError('join-room', ack, error);
      return false;
    }
    if (!Array.isArray(ack.users) || ack.users.filter((u) => u === peer.userId).length !== 1) {
      this.stats.unexpected.add(`join ack of ${peer.userId} lists users ${JSON.stringify(ack.users)}`);
      return false;
    }
    if (ack.users.length === this.peers.length) this.order = ack.users;
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

  /** A seat grace check failed: counted by kind (`problem:<kind>` in the summary) and described. */
  graceNote(kind, text) {
    this.stats.grace.bump(`problem:${kind}`);
    this.stats.graceNotes.add(`${this.roomId}: ${text}`);
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
        expiring: false,
        blip: null,
        relayErrors: 0,
      });
    }
    // At most one of a takeover, a blip, a churn departure (see the header).
    const rejoin = rng.chance(0.12);
    const blip = !rejoin && rng.chance(BLIP_CHANCE);
    let fresh = null;
    try {
      const clients = await Promise.all([...this.peers.map(() => this.takeClient()), ...(blip ? [this.newClient()] : [])]);
      if (blip) fresh = clients.pop();
      clients.forEach((c, i) => c && this.seat(this.peers[i], c));
      if (clients.some((c) => !c) || (blip && !fresh)) {
        fresh?.close();
        return this.abort('connect');
      }
      const joined = await Promise.all(this.peers.map((p) => this.join(p)));
      if (joined.some((ok) => !ok)) {
        fresh?.close();
        return this.abort('join');
      }
      if (blip) {
        this.blipper = rng.pick(this.peers);
        this.blipper.blip = new Blip(fresh);
        fresh = null;
      }

      if (rejoin) {
        if (!(await this.rejoin(rng.pick(this.peers)))) return this.abort('rejoin');
      }
      await this.exchange();
      await this.verify();
      await this.teardown();
      stats.sessions.bump('completed');
    } catch (err) {
      stats.unexpected.add(`session ${this.roomId} threw: ${err?.stack ?? err}`);
      fresh?.close();
      await this.abort('exception');
    }
  }

  async abort(why) {
    this.stats.sessions.bump(`aborted:${why}`);
    for (const p of this.peers) {
      this.unseat(p);
      p.client?.close();
      if (p.blip && p.blip.fresh !== p.client) p.blip.fresh.close();
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
    const how = this.rng.chance(0.5) ? old.abrupt(this.rng) : (old.close(), 'graceful-close');
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
      status: [], // per seq: 'pending' | 'ok' | 'queued' | 'err' | 'noack' | 'lost' | 'timeout'
      bodies: [],
      kinds: [],
      /** per seq: the Client it was emitted from */
      via: [],
      /** per seq: the target's blip state when it was emitted (blip targets only) */
      phase: [],
      seen: new Set(),
      /** seq -> the Client it arrived at */
      seenAt: new Map(),
      /** seqs that arrived at a resumed connection after its join ack */
      afterJoinAck: new Set(),
      /** seqs acked queued when the resume's join was emitted */
      keptAtJoin: [],
      maxSeen: -1,
      nullSeq: null,
    };
    this.streams.set(s.key, s);
    return s;
  }

  async exchange() {
    const { rng, peers } = this;
    this.exchangeDeadline = Date.now() + EXCHANGE_MS;
    let departing = null;
    if (!this.blipper && peers.length >= 3 && rng.chance(0.2)) {
      departing = rng.pick(peers);
      departing.departing = true; // decided up front: streams to it are acked
      this.stats.sessions.bump('churn');
    }
    const streams = [];
    for (const from of peers) {
      for (const to of peers) {
        if (from !== to) streams.push(this.newStream(from, to));
      }
    }
    if (rng.chance(0.15)) {
      const p = rng.pick(peers.filter((x) => !x.blip));
      streams.push(this.newStream(p, p)); // a relay to yourself is allowed
      this.stats.sessions.bump('self-relay');
    }
    let ending = null;
    if (departing) ending = this.depart(departing, rng.int(0, 200));
    if (this.blipper) {
      for (const s of streams) if (s.to === this.blipper) this.blipper.blip.pendingGaps.add(s);
      this.stats.sessions.bump('blip');
      ending = this.blipAndResume(this.blipper, rng.int(0, 100));
    }
    await Promise.all([...streams.map((s) => this.sendStream(s)), ending]);
  }

  /** A peer leaves mid-exchange: leave-room then close, close, or a drop (its seat then expires). */
  async depart(peer, afterMs) {
    await pause(afterMs);
    peer.departed = true; // stops its streams
    peer.departedAt = Date.now();
    const how = this.rng.weighted({ leave: 1, close: 1, abrupt: 1 });
    peer.departure = how;
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
      // Stays seated here until the teardown: engine.close() first drains what it has to write.
      peer.expiring = true;
      this.stats.faults.bump(`departure:${peer.client.abrupt(this.rng)}`);
      this.ctx.dropped(this.roomId, peer.userId);
      this.stats.grace.bump('expiring-departures');
    }
  }

  /**
   * The blip ending: `peer` drops its connection; once the server holds the
   * seat, the streams to it send their gap relays; then its new connection
   * joins again with the same userId (within the grace) and resumes it.
   */
  async blipAndResume(peer, afterMs) {
    const { ctx, stats } = this;
    const b = peer.blip;
    try {
      await pause(afterMs);
      const old = peer.client;
      b.old = old;
      b.state = 'dropping';
      b.droppedAt = Date.now();
      // The old connection stays seated here: engine.close() first drains what
      // it has to write, and relays may arrive on it until then.
      stats.faults.bump(`blip:${old.abrupt(this.rng)}`);
      this.ctx.dropped(this.roomId, peer.userId);
      const held = await ctx.seatHeld(this.roomId, peer.userId, ctx.graceMs + 10000);
      b.heldSeenAt = Date.now();
      stats.timings.note('drop-to-held-seen-ms', b.heldSeenAt - b.droppedAt);
      if (held) stats.grace.bump('blip-held');
      else this.graceNote('not-held', `${peer.userId} dropped its connection, and the server logged no "seat held" for it`);
      b.state = 'held';
      b.held.resolve();
      // Peers relay to the held seat meanwhile; bounded so the resume stays well within the grace.
      const gaps = await withTimeout(b.gapsDone.promise, GAP_WAIT_MS).then(
        () => true,
        () => false,
      );
      if (!gaps) stats.grace.bump('blip-gap-wait-cut');
      for (const s of this.streams.values()) {
        if (s.to !== peer) continue;
        s.status.forEach((st, seq) => {
          if (st === 'queued') s.keptAtJoin.push(seq);
          // Emitted once the hold was seen, acked before the resume was sent: it was kept.
          if (st === 'ok' && s.phase[seq] === 'held') {
            this.graceNote('held-acked-ok', `${s.key}#${seq}: sent to the held seat, acked ${JSON.stringify({ ok: true })} without queued before the resume`);
          }
        });
      }
      this.seat(peer, b.fresh);
      const sentAt = Date.now();
      const { ack, error } = await new Promise((resolve) => {
        b.fresh.socket.timeout(ACK_MS).emit('join-room', { roomId: this.roomId, userId: peer.userId }, (err, a) => {
          b.joinAcked = true; // before any event that follows the ack is handled
          resolve(err ? { error: err } : { ack: a });
        });
      });
      stats.events.bump('join-room');
      const order = this.order;
      const resumeMs = Date.now() - b.heldSeenAt;
      stats.timings.note('resume-ms', resumeMs);
      if (resumeMs >= ctx.graceMs) this.graceNote('resume-late', `${peer.userId} resumed ${resumeMs} ms after its seat was held: after the grace (test too slow)`);
      if (!this.joinAcked(peer, ack, error)) return;
      stats.grace.bump('resumed');
      stats.timings.note('resume-join-ack-ms', Date.now() - sentAt);
      if (order && !isDeepStrictEqual(ack.users, order)) {
        this.graceNote('resume-place', `${peer.userId} resumed with users ${JSON.stringify(ack.users)}, not its place in ${JSON.stringify(order)}`);
      }
      if (!b.fresh.roomUsers.has(this.roomId)) this.graceNote('resume-order', `${peer.userId}'s resumed connection got its join ack before room-users`);
    } finally {
      b.state = 'resumed';
      b.held.resolve();
      b.resumed.resolve();
    }
  }

  async sendStream(s) {
    const { rng } = this;
    const n = rng.chance(0.05) ? rng.int(100, 300) : rng.int(3, 30);
    const endOfCandidates = rng.chance(0.3);
    const total = n + (endOfCandidates ? 1 : 0);
    // To a blipping peer: `gapFrom` relays, then (the hold seen) those up to `gapTo`, then (resumed) the rest.
    const b = s.to.blip;
    const gapFrom = b ? rng.int(0, Math.min(total - 1, 10)) : -1;
    const gapTo = b ? Math.min(total, gapFrom + rng.int(1, 8)) : -1;
    let seq = 0;
    try {
      while (seq < total && !s.from.departed && Date.now() < this.exchangeDeadline) {
        if (seq === gapFrom) await b.held.promise;
        if (seq === gapTo) {
          b.gapDone(s);
          await b.resumed.promise;
        }
        // A blipping sender is silent from its drop to its resume, then goes on from its new connection.
        const fb = s.from.blip;
        if (fb && fb.state !== 'connected' && fb.state !== 'resumed') await fb.resumed.promise;
        let chunk = rng.int(1, 8);
        if (b && seq < gapFrom) chunk = Math.min(chunk, gapFrom - seq);
        else if (b && seq < gapTo) chunk = Math.min(chunk, gapTo - seq);
        const acks = [];
        for (let c = 0; c < chunk && seq < total; c++, seq++) {
          acks.push(this.emitRelay(s, seq, endOfCandidates && seq === total - 1));
        }
        if (s.acked) await Promise.all(acks);
        else await pause(rng.int(0, 15));
      }
    } finally {
      b?.gapDone(s);
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
    s.via[seq] = client;
    if (s.to.blip) s.phase[seq] = s.to.blip.state;
    if (!s.acked) {
      s.status[seq] = 'noack';
      stats.relays.bump('sent-without-ack');
      client.socket.emit(kind, payload);
      return null;
    }
    s.status[seq] = 'pending';
    return client.request(kind, payload).then(({ ack, error }) => {
      if (error) {
        if (s.from.departed || client.closing) {
          s.status[seq] = 'lost'; // its own connection closed (departed or dropped) before the ack
          stats.relays.bump('ack-lost-sender-closed');
        } else {
          s.status[seq] = 'timeout';
          stats.relays.bump('ack-timeout');
          stats.unexpected.add(`${kind} ${s.key}#${seq}: no ack (${error.message})`);
        }
      } else if (ack?.ok === true) {
        stats.relays.bump('acked-ok');
        if (ack.queued === true) {
          s.status[seq] = 'queued';
          stats.relays.bump('acked-queued');
          stats.grace.bump('queued-acks');
          if (!s.to.blip && !s.to.expiring) {
            this.graceNote('queued-not-held', `${kind} ${s.key}#${seq} acked queued, but ${s.to.userId}'s seat cannot be held (${s.to.departed ? 'it left on purpose' : 'connected'})`);
          }
        } else {
          s.status[seq] = 'ok';
        }
      } else {
        s.status[seq] = 'err';
        const code = ack?.error?.code ?? 'malformed-ack';
        stats.relays.bump('acked-error');
        stats.errors.bump(code);
        if (code === 'unavailable' && this.ctx.redis && (s.to.blip || s.to.expiring)) {
          // Keeping it, or waiting for its hold, needed Redis while it was stalled: the
          // documented answer (docs/failures.md); the sender knows it was not kept.
          stats.grace.bump('unavailable-during-redis-stall');
        } else if (s.to.blip || (s.to.expiring && code === 'target-not-found' && CONNECTION_CLOSED.test(ack?.error?.message))) {
          // A dropped seat is held, never refused, until its grace ends (docs/grace.md).
          stats.grace.bump(`refused-before-hold-at:${s.to.blip ? s.phase[seq] : 'expiring'}`);
          this.graceNote('refused-before-hold', `${kind} ${s.key}#${seq} to a seat whose connection dropped (${s.to.blip ? `blip, ${s.phase[seq]}` : 'expiring'}) refused: ${JSON.stringify(ack)}`);
        } else if (!s.to.departing && !s.from.departed) {
          stats.unexpected.add(`${kind} ${s.key}#${seq} between stable peers refused: ${JSON.stringify(ack)}`);
        }
      }
    });
  }

  onRelay(peer, kind, data, client) {
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
    s.seenAt.set(seq, client);
    s.maxSeen = Math.max(s.maxSeen, seq);
    stats.relays.bump('delivered');
    const b = peer.blip;
    if (b && client === b.fresh) {
      if (!client.roomUsers.has(this.roomId)) this.graceNote('resume-order', `${s.key}#${seq} reached the resumed connection before its room-users`);
      if (b.joinAcked) s.afterJoinAck.add(seq);
    }
  }

  onRoomUsers(peer, client, data) {
    const b = peer.blip;
    if (b && client === b.fresh && this.order && !isDeepStrictEqual(data.users, this.order)) {
      this.graceNote('resume-place', `${peer.userId}'s resumed connection got room-users ${JSON.stringify(data.users)}, not ${JSON.stringify(this.order)}`);
    }
  }

  onPresence(observer, kind, data) {
    const key = `${observer.userId}|${kind}|${data.userId}`;
    if (!this.presence.has(key)) this.presence.set(key, []);
    this.presence.get(key).push(Date.now());
  }

  presenceOf(observer, kind, subject) {
    return this.presence.get(`${observer.userId}|${kind}|${subject.userId}`) ?? [];
  }

  onRelayExpired(sender, data) {
    const { stats } = this;
    stats.grace.bump('relay-expired-events');
    if (data.roomId !== this.roomId || typeof data.targetId !== 'string' || !Number.isInteger(data.count) || data.count < 1) {
      this.graceNote('relay-expired-malformed', `${sender.userId} got a malformed relay-expired ${JSON.stringify(data)}`);
      return;
    }
    stats.grace.bump('relay-expired-count', data.count);
    const key = `${sender.userId}>${data.targetId}`;
    const e = this.expired.get(key) ?? { count: 0, events: 0 };
    e.count += data.count;
    e.events += 1;
    this.expired.set(key, e);
  }

  /** True if this session owns the error (a peer of it got a signaling-error). */
  onSignalingError(peer, e) {
    if (RELAY_KINDS.includes(e?.event) && this.blipper && e.code === 'target-not-found') {
      // Every peer of a blip session stays; only the blipping one can have been refused.
      peer.relayErrors += 1;
      this.stats.grace.bump('refused-before-hold-at:un-acked');
      this.graceNote('refused-before-hold', `${peer.userId}: un-acked ${e.event} refused ${e.code} ("${e.message}") in a blip session, where only the dropped seat can be its target`);
    } else if (RELAY_KINDS.includes(e?.event)) {
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

  /** Whether the relay `seq` of `s` must arrive (see the header). */
  isExpected(s, seq) {
    const st = s.status[seq];
    if (s.to.departing) return false;
    // Un-acked relays a blipping sender emitted from its dropped connection may have died with it.
    const fromKept = !s.from.departing && !(s.from.blip && s.via[seq] !== s.from.blip.fresh);
    if (s.to.blip) {
      const afterHold = s.phase[seq] === 'held' || s.phase[seq] === 'resumed';
      return st === 'queued' || (st === 'ok' && afterHold) || (st === 'noack' && afterHold && fromKept);
    }
    return st === 'ok' || (st === 'noack' && fromKept);
  }

  /** Sequence numbers that must arrive on stream `s`. */
  expected(s) {
    const out = [];
    s.status.forEach((_, seq) => {
      if (this.isExpected(s, seq)) out.push(seq);
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

  /** Peers seated through the whole exchange. */
  get stable() {
    return this.peers.filter((p) => !p.departing);
  }

  /** Whether every departure has been announced to the stable peers, and every expiry counted to its senders. */
  departuresSettled() {
    for (const d of this.peers.filter((p) => p.departing)) {
      if (this.stable.some((o) => this.presenceOf(o, 'user-left', d).length === 0)) return false;
      if (!d.expiring) continue;
      for (const s of this.streams.values()) {
        if (s.to !== d) continue;
        const queued = s.status.filter((st) => st === 'queued').length;
        if ((this.expired.get(s.key)?.count ?? 0) < queued) return false;
      }
    }
    return true;
  }

  async verify() {
    await pollUntil(() => this.missing().missing === 0 && this.departuresSettled(), DELIVERY_WAIT_MS + this.ctx.graceMs, 20);
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
        if (!this.isExpected(s, seq) && (st === 'ok' || st === 'queued' || st === 'noack')) {
          const why = s.to.departing ? 'target-departed' : s.to.blip ? 'to-blip-before-hold' : 'sender-closed';
          stats.relays.bump(`not-expected:${why}`);
          // Acked ok: handed to the connection that then dropped, and gone with it (a figure, not a failure).
          if (s.to.blip && st === 'ok' && !s.seen.has(seq)) stats.grace.bump('acked-ok-lost-with-dropped-connection');
        }
      });
    }
    this.checkGrace();
  }

  /** The seat grace checks of this session (see the header); failures are grace notes. */
  checkGrace() {
    const { stats } = this;
    for (const s of this.streams.values()) {
      const queued = [];
      s.status.forEach((st, seq) => st === 'queued' && queued.push(seq));
      const e = this.expired.get(s.key) ?? { count: 0, events: 0 };
      if (s.to.blip) {
        const fresh = s.to.blip.fresh;
        const delivered = queued.filter((seq) => s.seenAt.get(seq) === fresh);
        stats.grace.bump('queued-delivered', delivered.length);
        if (delivered.length !== queued.length) {
          const lost = queued.filter((seq) => s.seenAt.get(seq) !== fresh);
          this.graceNote('queued-undelivered', `${s.key}: ${lost.length} of ${queued.length} queued relays not delivered to the resumed connection (${lost.slice(0, 5)})`);
        }
        const late = s.keptAtJoin.filter((seq) => s.afterJoinAck.has(seq));
        if (late.length) this.graceNote('kept-after-join-ack', `${s.key}: kept relays ${late.slice(0, 5)} arrived after the resume's join ack`);
        if (e.events) this.graceNote('relay-expired-resumed', `${s.key}: relay-expired ${JSON.stringify(e)} although the seat was resumed`);
      } else if (s.to.expiring) {
        stats.grace.bump('queued-expired', Math.min(e.count, queued.length));
        if (e.count !== queued.length || e.events > 1) {
          this.graceNote('relay-expired-count', `${s.key}: ${queued.length} queued acks, relay-expired counts ${e.count} in ${e.events} event(s)`);
        }
        if (queued.some((seq) => s.seen.has(seq))) this.graceNote('relay-expired-count', `${s.key}: a queued relay to an expired seat arrived`);
      } else if (e.events) {
        this.graceNote('relay-expired-not-held', `${s.key}: relay-expired ${JSON.stringify(e)} for a seat that was never held`);
      }
    }
    for (const key of this.expired.keys()) {
      if (!this.streams.has(key)) this.graceNote('relay-expired-not-held', `relay-expired for ${key}, which no stream sent to`);
    }
    // Presence around a departure: one user-left, not before the grace for a drop.
    for (const d of this.peers.filter((p) => p.departing)) {
      for (const o of this.stable) {
        const left = this.presenceOf(o, 'user-left', d);
        if (left.length !== 1) this.graceNote('user-left-count', `${o.userId} got ${left.length} user-left for departed ${d.userId}`);
        if (!left.length) continue;
        const after = left[0] - d.departedAt;
        if (d.expiring) {
          stats.timings.note('expiry-user-left-ms', after);
          // The drop precedes the hold, and the hold precedes the grace's end.
          if (after < this.ctx.graceMs) this.graceNote('user-left-early', `${o.userId} got user-left for dropped ${d.userId} ${after} ms after the drop, within the grace`);
        } else {
          stats.timings.note(`departure-${d.departure}-user-left-ms`, after);
        }
      }
    }
    // Presence around a blip: nothing at all.
    const b = this.blipper;
    if (b) {
      const at = this.order?.indexOf(b.userId) ?? -1;
      for (const o of this.peers) {
        if (o === b) continue;
        const left = this.presenceOf(o, 'user-left', b).length;
        const joined = this.presenceOf(o, 'user-joined', b).length;
        const want = at < 0 ? null : this.order.indexOf(o.userId) < at ? 1 : 0;
        if (left || (want === null ? joined > 1 : joined !== want)) {
          this.graceNote('blip-presence', `${o.userId} got ${left} user-left and ${joined} user-joined for ${b.userId}, which blipped (want 0 and ${want ?? '0 or 1'})`);
        }
      }
    }
  }

  async teardown() {
    const { rng, stats } = this;
    for (const p of this.peers) {
      if (p.departed) this.unseat(p);
      p.blip?.old?.seats.delete(this.roomId);
    }
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
            stats.faults.bump(`teardown:${p.client.abrupt(rng)}`); // held, then expires with nothing kept
            this.ctx.dropped(this.roomId, p.userId);
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
