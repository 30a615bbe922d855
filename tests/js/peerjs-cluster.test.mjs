// The PeerJS endpoint on two switchboard instances sharing a Redis, with raw
// `ws` clients: ids unique cluster-wide, relays, waiting messages, EXPIRE and
// takeover across instances, /peers listing both instances' ids, ids put
// back after Redis is flushed, the
// concurrent limit counted cluster-wide, and the ids of an instance killed
// with SIGKILL free again on the survivor within INSTANCE_TTL_MS. The
// reference has no cluster: this file runs against switchboard whatever
// PEERJS_TARGET says. Every wait has a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { findExecutable, startCluster, waitUntil } from './processes.mjs';
import { MSG, assertWaitingBeforeLive, errorFrame, openPeer, openWhenFree, peer, refusedWith, restUrl, switchboardTarget, terminateClients } from './peerjs.mjs';

after(terminateClients);

const ID_TAKEN = { type: 'ID-TAKEN', payload: { msg: 'ID is taken' } };
const EXPIRE_MS = 800;
const INSTANCE_TTL_MS = 2000;
/** What a dead instance's ids may take beyond INSTANCE_TTL_MS to be free: retries of the open. */
const FREED_SLACK_MS = 1500;

/** The ids GET {path}/{key}/peers lists on `t`, sorted. */
async function peers(t) {
  const res = await fetch(restUrl(t, 'peerjs/peers'), { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return (await res.json()).sort();
}

describe('two instances with Redis', () => {
  let cluster;
  let A;
  let B;
  before(async () => {
    cluster = await startCluster(2, {
      INSTANCE_TTL_MS: String(INSTANCE_TTL_MS),
      PEERJS_EXPIRE_TIMEOUT_MS: String(EXPIRE_MS),
      PEERJS_ALLOW_DISCOVERY: 'true',
    });
    [A, B] = cluster.servers.map((s) => switchboardTarget(s));
  });
  after(() => cluster.stop());

  test('an id live on A gets ID-TAKEN on B under another token; A keeps it', async () => {
    const holder = await openPeer(A, 'cl-taken', { token: 'first' });
    await refusedWith(peer(B, 'cl-taken', { token: 'second' }), ID_TAKEN, assert);
    const friend = await openPeer(B, 'cl-taken-friend');
    friend.send({ type: 'OFFER', dst: 'cl-taken', payload: 'still yours' });
    assert.deepEqual(await holder.waitFor('OFFER'), { type: 'OFFER', src: 'cl-taken-friend', dst: 'cl-taken', payload: 'still yours' });
    holder.ws.close();
    friend.ws.close();
  });

  test('relays cross instances both ways as exactly {type, src, dst, payload}, in order', async () => {
    const a = await openPeer(A, 'cl-a');
    const b = await openPeer(B, 'cl-b');
    const types = ['OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE'];
    for (const [i, type] of types.entries()) a.send({ type, src: 'forged', dst: 'cl-b', payload: { i } });
    for (const type of types) b.send({ type, dst: 'cl-a' });
    await waitUntil(() => b.relays().length >= 5 && a.relays().length >= 5, 'five relays each way');
    assert.deepEqual(b.relays(), types.map((type, i) => ({ type, src: 'cl-a', dst: 'cl-b', payload: { i } })));
    assert.deepEqual(a.relays(), types.map((type) => ({ type, src: 'cl-b', dst: 'cl-a' })));
    a.ws.close();
    b.ws.close();
  });

  test('messages sent on A to an absent id come, after OPEN and in order, when it connects on B', async () => {
    const a = await openPeer(A, 'cl-q-a');
    for (let n = 0; n < 3; n += 1) a.send({ type: 'CANDIDATE', dst: 'cl-q-b', payload: { n } });
    a.send({ type: 'LEAVE', dst: 'cl-q-b' });
    await a.sync();
    const b = await openPeer(B, 'cl-q-b');
    a.send({ type: 'OFFER', dst: 'cl-q-b', payload: 'after' });
    await b.waitFor('OFFER');
    assert.deepEqual(b.frames, [
      { type: 'OPEN' },
      ...[0, 1, 2].map((n) => ({ type: 'CANDIDATE', src: 'cl-q-a', dst: 'cl-q-b', payload: { n } })),
      { type: 'OFFER', src: 'cl-q-a', dst: 'cl-q-b', payload: 'after' },
    ]);
    a.ws.close();
    b.ws.close();
  });

  test('a message sent on A once the destination is open on B never overtakes those that waited (60 rounds)', async () => {
    await assertWaitingBeforeLive(assert, A, B, 'cl-race');
  });

  test('senders on both instances each get one EXPIRE for an id that never came; the messages are dropped', async () => {
    const a = await openPeer(A, 'cl-exp-a');
    const b = await openPeer(B, 'cl-exp-b');
    for (let n = 0; n < 3; n += 1) a.send({ type: 'OFFER', dst: 'cl-exp-nobody', payload: { n } });
    b.send({ type: 'CANDIDATE', dst: 'cl-exp-nobody', payload: 'b' });
    assert.deepEqual(await a.waitFor('EXPIRE', () => true, 10000), { type: 'EXPIRE', src: 'cl-exp-nobody', dst: 'cl-exp-a' });
    assert.deepEqual(await b.waitFor('EXPIRE', () => true, 10000), { type: 'EXPIRE', src: 'cl-exp-nobody', dst: 'cl-exp-b' });
    // A message queued now expires in a later round: by its EXPIRE, a
    // second EXPIRE for the first ones would have come (from either instance).
    a.send({ type: 'OFFER', dst: 'cl-exp-later', payload: 'later' });
    b.send({ type: 'OFFER', dst: 'cl-exp-later', payload: 'later' });
    await a.waitFor('EXPIRE', (f) => f.src === 'cl-exp-later', 10000);
    await b.waitFor('EXPIRE', (f) => f.src === 'cl-exp-later', 10000);
    assert.deepEqual(a.relays().map((f) => `${f.type} ${f.src}`), ['EXPIRE cl-exp-nobody', 'EXPIRE cl-exp-later']);
    assert.deepEqual(b.relays().map((f) => `${f.type} ${f.src}`), ['EXPIRE cl-exp-nobody', 'EXPIRE cl-exp-later']);
    const late = await openPeer(B, 'cl-exp-nobody');
    a.send({ type: 'OFFER', dst: 'cl-exp-nobody', payload: 'fresh' });
    await late.waitFor('OFFER');
    assert.deepEqual(late.frames, [{ type: 'OPEN' }, { type: 'OFFER', src: 'cl-exp-a', dst: 'cl-exp-nobody', payload: 'fresh' }]);
    for (const c of [a, b, late]) c.ws.close();
  });

  test('the same id and token on B takes over from A: OPEN on B, the socket on A closed, relays to B', async () => {
    const first = await openPeer(A, 'cl-tk', { token: 'same' });
    const friend = await openPeer(A, 'cl-tk-friend');
    const second = await openPeer(B, 'cl-tk', { token: 'same' });
    await first.closedWithin();
    friend.send({ type: 'OFFER', dst: 'cl-tk', payload: 'to the newer' });
    await second.waitFor('OFFER');
    assert.deepEqual(second.frames, [{ type: 'OPEN' }, { type: 'OFFER', src: 'cl-tk-friend', dst: 'cl-tk', payload: 'to the newer' }]);
    assert.deepEqual(first.relays(), []);
    // Still held, on both instances.
    await refusedWith(peer(A, 'cl-tk', { token: 'other' }), ID_TAKEN, assert);
    await refusedWith(peer(B, 'cl-tk', { token: 'other' }), ID_TAKEN, assert);
    second.send({ type: 'ANSWER', dst: 'cl-tk-friend' });
    assert.deepEqual(await friend.waitFor('ANSWER'), { type: 'ANSWER', src: 'cl-tk', dst: 'cl-tk-friend' });
    // Closed on B, free on A for another token.
    second.ws.close();
    const other = await openWhenFree(A, 'cl-tk', { token: 'other' });
    other.ws.close();
    friend.ws.close();
  });

  test('GET {path}/{key}/peers lists the ids of both instances, on either', async () => {
    const a = await openPeer(A, 'cl-list-a');
    const b = await openPeer(B, 'cl-list-b');
    for (const t of [A, B]) {
      const ids = await peers(t);
      assert.ok(ids.includes('cl-list-a') && ids.includes('cl-list-b'), `${t.url}: ${ids}`);
    }
    b.ws.close();
    await waitUntil(async () => !(await peers(A)).includes('cl-list-b'), 'cl-list-b to leave the list on A');
    a.ws.close();
  });

  test('Redis restarted empty: each instance puts its ids back, so an id stays taken and reachable', async () => {
    const holder = await openPeer(A, 'cl-lost', { token: 'mine' });
    const friend = await openPeer(B, 'cl-lost-friend');
    const marks = cluster.servers.map((s) => s.logs.length);
    execFileSync(findExecutable('redis-cli', 'REDIS_CLI_BIN'), ['-p', String(cluster.redis.port), 'FLUSHALL'], { timeout: 5000 });
    // Each instance's next heartbeat finds the data lost and puts back what its connections hold.
    const restored = (i) => cluster.servers[i].logs.slice(marks[i]).find((l) => (l.fields ?? l).message === 'reconciled with Redis');
    await waitUntil(() => restored(0) && restored(1), 'both instances to reconcile after the flush', 10000);
    assert.equal((restored(0).fields ?? restored(0)).peerjs_ids, 1, 'A put cl-lost back');
    await refusedWith(peer(B, 'cl-lost', { token: 'thief' }), ID_TAKEN, assert);
    friend.send({ type: 'OFFER', dst: 'cl-lost', payload: 'after the flush' });
    assert.deepEqual(await holder.waitFor('OFFER'), { type: 'OFFER', src: 'cl-lost-friend', dst: 'cl-lost', payload: 'after the flush' });
    holder.ws.close();
    friend.ws.close();
  });

  // Last: B dies.
  test('the ids of an instance killed with SIGKILL are free on the survivor within INSTANCE_TTL_MS', async () => {
    const victim = await openPeer(B, 'cl-kill', { token: 'old' });
    assert.ok((await peers(A)).includes('cl-kill'));
    cluster.servers[1].process.kill('SIGKILL');
    const killed = Date.now();
    await victim.closedWithin();
    // Free once B's heartbeat key has expired: within INSTANCE_TTL_MS of its last beat, before the kill.
    const again = await openWhenFree(A, 'cl-kill', { token: 'new' }, INSTANCE_TTL_MS + FREED_SLACK_MS - (Date.now() - killed));
    assert.ok((await peers(A)).includes('cl-kill'));
    again.ws.close();
  });
});

describe('concurrent limit across instances', () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(2, { PEERJS_CONCURRENT_LIMIT: '2', INSTANCE_TTL_MS: String(INSTANCE_TTL_MS) });
  });
  after(() => cluster.stop());

  test('PEERJS_CONCURRENT_LIMIT counts the ids of every instance; a killed instance\'s places come back', async () => {
    const [A, B] = cluster.servers.map((s) => switchboardTarget(s));
    const a = await openPeer(A, 'cl-lim-a');
    const b = await openPeer(B, 'cl-lim-b');
    await refusedWith(peer(A, 'cl-lim-c'), errorFrame(MSG.limit), assert);
    await refusedWith(peer(B, 'cl-lim-d'), errorFrame(MSG.limit), assert);
    a.ws.close();
    const c = await openWhenFree(B, 'cl-lim-c');
    await refusedWith(peer(A, 'cl-lim-d'), errorFrame(MSG.limit), assert);
    // The places held by an instance killed with SIGKILL come back.
    cluster.servers[1].process.kill('SIGKILL');
    const killed = Date.now();
    await Promise.all([b.closedWithin(), c.closedWithin()]);
    // Places are counted until a survivor reaps the dead instance: INSTANCE_TTL_MS x 1.25 (docs/failures.md).
    const d = await openWhenFree(A, 'cl-lim-d', {}, INSTANCE_TTL_MS * 1.25 + FREED_SLACK_MS - (Date.now() - killed));
    const e = await openPeer(A, 'cl-lim-e');
    for (const x of [d, e]) x.ws.close();
  });
});
