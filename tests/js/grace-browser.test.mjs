// Seat grace (issue 20) with the demo page in headless Chromium: a call
// between two pages survives one page's signaling connection being cut and
// restored within the grace, with no renegotiation. The cut models a network
// change: the page reaches switchboard through a TCP proxy of the test, and
// the proxy destroys every piped connection at once (no WebSocket close frame,
// no socket.io packet). On one instance the page reconnects to the same
// server; across instances (Redis) the proxy points at the other instance
// first, so the page's reconnect and re-join land there.
//
// "No renegotiation" is counted in each page: RTCPeerConnections made and
// closed, createOffer, setLocalDescription, setRemoteDescription and
// negotiationneeded stay as they were, the remote tile is the same element,
// and the chat channel stays open and carries messages both ways afterwards.
// The peer that stayed is told nothing (its tile and connection survive). A
// third page joining afterwards checks that signaling to the re-joined page
// works (its relays go to the new connection).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { getJson, startServer } from './server.mjs';
import { startCluster, waitUntil } from './processes.mjs';
import { startProxy } from './proxy.mjs';
import { launchBrowser, waitInPage, waitMessage, waitPeers, withSession } from './browser.mjs';

const WEB_DIR = fileURLToPath(new URL('../../web', import.meta.url));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** The demo page for `name` in `room`, joining on load, with the generated test stream. */
function pageUrl(base, room, name) {
  return `${base}/?${new URLSearchParams({ room, name, autojoin: '1', media: 'generated' })}`;
}

/** Counts, in the page, every RTCPeerConnection made and closed and every negotiation step. */
function countRtc() {
  const counts = { created: 0, closed: 0, createOffer: 0, createAnswer: 0, setLocal: 0, setRemote: 0, negotiationneeded: 0 };
  window.rtcCounts = counts;
  const Native = window.RTCPeerConnection;
  const steps = {
    close: 'closed',
    createOffer: 'createOffer',
    createAnswer: 'createAnswer',
    setLocalDescription: 'setLocal',
    setRemoteDescription: 'setRemote',
  };
  for (const [method, key] of Object.entries(steps)) {
    const native = Native.prototype[method];
    Native.prototype[method] = function counted(...args) {
      counts[key] += 1;
      return native.apply(this, args);
    };
  }
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      counts.created += 1;
      this.addEventListener('negotiationneeded', () => {
        counts.negotiationneeded += 1;
      });
    }
  };
}

/** Opens the page `label` at `url` with the RTC counters installed before any of its scripts. */
async function openCounted(session, label, url) {
  const page = await session.open(label);
  await page.addInitScript(countRtc);
  await page.goto(url);
  return page;
}

/** What must not change across the blip: the RTC counters and the peers' calls. */
function callState(page) {
  return page.evaluate(() => ({
    counts: { ...window.rtcCounts },
    participants: window.switchboardDemo.participants(),
    peers: window.switchboardDemo.peers().map((p) => ({ id: p.id, initiator: p.initiator, dataChannelState: p.dataChannelState })),
  }));
}

/** Marks the remote tile of `peerId`: a tile made anew (after a closed call) has no mark. */
function markTile(page, peerId) {
  return page.evaluate((id) => {
    document.querySelector(`#tiles [data-peer="${id}"]`).dataset.blipMark = 'kept';
  }, peerId);
}

function tileMarked(page, peerId) {
  return page.evaluate((id) => document.querySelector(`#tiles [data-peer="${id}"]`)?.dataset.blipMark === 'kept', peerId);
}

/** 'connected' log lines of `server` (connections on `/`). */
const connectedLines = (server) => server.logs.filter((l) => (l.fields ?? l).message === 'connected').length;

/**
 * The call: alice through `proxy` (upstream `from`), bob directly on `from`.
 * Cuts alice's signaling (the proxy's next upstream: `to`), waits for her page
 * to be back in the room on `to`, checks nothing was renegotiated and the chat
 * still flows; then carol joins on `from` and makes a mesh with both.
 */
async function blipDuringCall(t, { from, to, proxy, servers, room }) {
  await withSession(t, browser, servers, async (session) => {
    const alice = await openCounted(session, 'alice', pageUrl(proxy.url, room, 'alice'));
    await waitInPage(alice, 'alice', 'joined', () => window.switchboardDemo?.joined());
    const bob = await openCounted(session, 'bob', pageUrl(from.url, room, 'bob'));
    await Promise.all([waitPeers(alice, 'alice', ['bob']), waitPeers(bob, 'bob', ['alice'])]);
    await waitInPage(alice, 'alice', 'websocket transport', () => window.switchboardDemo.transport() === 'websocket');
    assert.equal(await alice.evaluate(() => window.switchboardDemo.send('before the cut')), 1);
    await waitMessage(bob, 'bob', 'alice', 'before the cut');

    const before = { alice: await callState(alice), bob: await callState(bob) };
    assert.deepEqual(before.alice.participants, ['alice', 'bob']);
    await markTile(alice, 'bob');
    await markTile(bob, 'alice');
    const seenBefore = connectedLines(to);

    // The network changes: alice's connections die; her reconnect goes to `to`.
    assert.ok(proxy.cut({ to: to.port }) >= 1, 'the proxy cut alice\'s connections');
    await waitUntil(() => connectedLines(to) > seenBefore, `alice's reconnect logged by the server on port ${to.port}`, 15000);
    await waitInPage(alice, 'alice', 'back in the room', () => window.switchboardDemo.connected() && window.switchboardDemo.seated(), undefined, { timeout: 15000 });
    assert.equal(proxy.upstream(), to.port);
    await waitUntil(async () => {
      const res = await getJson(to.url, `/api/rooms/${room}`);
      return res.status === 200 && res.body.participants.join() === 'alice,bob';
    }, `the room listed with alice and bob on port ${to.port}`);
    const health = await getJson(to.url, '/health');
    assert.ok(health.body.connections >= 1, `alice's connection counted on port ${to.port}: ${JSON.stringify(health.body)}`);

    // The call went on: same connections, no negotiation step, the same tiles, chat open.
    await Promise.all([waitPeers(alice, 'alice', ['bob']), waitPeers(bob, 'bob', ['alice'])]);
    assert.deepEqual(await callState(alice), before.alice, "alice's call is the same, nothing renegotiated");
    assert.deepEqual(await callState(bob), before.bob, "bob's call is the same, nothing renegotiated");
    assert.equal(await tileMarked(alice, 'bob'), true, "alice kept bob's tile");
    assert.equal(await tileMarked(bob, 'alice'), true, "bob kept alice's tile (he was told nothing)");
    assert.equal(await alice.evaluate(() => window.switchboardDemo.send('after the cut')), 1);
    await waitMessage(bob, 'bob', 'alice', 'after the cut');
    assert.equal(await bob.evaluate(() => window.switchboardDemo.send('bob still here')), 1);
    await waitMessage(alice, 'alice', 'bob', 'bob still here');

    // Signaling reaches the re-joined page: carol (on `from`) offers to both.
    const carol = await session.open('carol', pageUrl(from.url, room, 'carol'));
    await Promise.all([
      waitPeers(alice, 'alice', ['bob', 'carol']),
      waitPeers(bob, 'bob', ['alice', 'carol']),
      waitPeers(carol, 'carol', ['alice', 'bob']),
    ]);
    assert.equal(await carol.evaluate(() => window.switchboardDemo.send('carol says hi')), 2);
    await Promise.all([waitMessage(alice, 'alice', 'carol', 'carol says hi'), waitMessage(bob, 'bob', 'carol', 'carol says hi')]);
    assert.equal(await tileMarked(alice, 'bob'), true);
    assert.deepEqual(session.problems(), [], 'no console errors, no failed relay');
  });
}

describe('demo call through a signaling blip', () => {
  test('one instance: the call survives a cut signaling connection with no renegotiation', { timeout: 90000 }, async (t) => {
    const server = await startServer({ extraEnv: { WEB_DIR } });
    const proxy = await startProxy(server.port);
    try {
      await blipDuringCall(t, { from: server, to: server, proxy, servers: [server], room: 'blip-one' });
    } finally {
      await proxy.close();
      assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
    }
  });

  test('two instances with Redis: the page re-joins on the other instance and the call goes on with no renegotiation', { timeout: 90000 }, async (t) => {
    const cluster = await startCluster(2, { WEB_DIR });
    const [a, b] = cluster.servers;
    const proxy = await startProxy(a.port);
    try {
      assert.equal(connectedLines(b), 0, 'nothing on B yet');
      await blipDuringCall(t, { from: a, to: b, proxy, servers: [a, b], room: 'blip-two' });
    } finally {
      await proxy.close();
      await cluster.stop();
    }
  });
});
