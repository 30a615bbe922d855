// The real PeerJS client (the peerjs npm package's browser bundle, pinned in
// package.json) in headless Chromium: two pages, each a `new Peer(id, { host,
// port, path: '/peerjs', key: 'peerjs' })`, open a DataConnection negotiated
// through the server and exchange messages both ways over WebRTC.
//
// The same scenario runs against the reference server (peer 1.0.2, as
// `peerjs --port <free> --path /peerjs`) as a control, against one
// switchboard instance, and against two instances in cluster mode (Redis):
// once with each page connected to its own instance directly, once with both
// pages going through the real nginx recipe (deploy/nginx/switchboard.conf),
// each page on a different instance (checked with /health of each).
//
// Pages are same-origin with the server that serves them: switchboard serves
// them from WEB_DIR (a temporary directory, p2p.mjs); for the reference a
// small static server does (peerjs-server answers CORS itself).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { waitInPage, withSession } from './browser.mjs';
import { clientCounts, pagesOnBothInstances, useCluster, withClusterSession } from './p2p-cluster.mjs';
import {
  installedVersion,
  pageState as state,
  startPeerReference,
  usePages,
  useReference,
  useServer,
} from './p2p.mjs';

const PAGE = '/peerjs.html';
/** A UUID v4, as GET {path}/{key}/id answers. */
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const pages = usePages();

/**
 * Opens `url` as `label` and creates its Peer with `id` (null: the server
 * assigns one) for the signaling server `server` ({ host, port }); resolves
 * with { page, id } once the Peer is open.
 */
async function openPeer(session, label, url, id, server) {
  const page = await session.open(label, url);
  assert.equal(await page.evaluate(() => window.peerjs?.util?.browser), 'chrome', 'the peerjs bundle loaded');
  await page.evaluate(([i, s]) => window.p2p.start(i, { ...s, path: '/peerjs', key: 'peerjs' }), [id, server]);
  // An error ends the wait at once (the Peer would not open after it).
  await waitInPage(page, label, 'the Peer to open', () => window.p2p.state().open || window.p2p.state().errors.length > 0, undefined, {
    describe: () => window.p2p.state(),
  });
  const now = await state(page);
  assert.deepEqual(now.errors, [], `${label}: no Peer error`);
  assert.equal(now.open, true, `${label}: open`);
  if (id !== null) assert.equal(now.openedId, id, `${label}: opened with its own id`);
  return { page, id: now.openedId };
}

/** Waits until `page` has exactly one DataConnection, with `other`, open over a connected RTCPeerConnection. */
function waitConnection(page, label, other) {
  return waitInPage(
    page,
    label,
    `an open DataConnection with ${other}`,
    (id) => {
      const conns = window.p2p.state().conns;
      return conns.length === 1 && conns[0].peer === id && conns[0].open && conns[0].channel === 'open' && conns[0].connection === 'connected';
    },
    other,
    { describe: () => window.p2p.state() },
  );
}

/** Waits until the DataConnection of `page` has received exactly `messages`. */
async function waitReceived(page, label, messages) {
  await waitInPage(
    page,
    label,
    `${messages.length} message(s) received`,
    (n) => window.p2p.state().conns[0]?.received.length >= n,
    messages.length,
    { describe: () => window.p2p.state() },
  );
  assert.deepEqual((await state(page)).conns[0].received, messages, `${label}: what arrived, in order`);
}

/**
 * Two open Peers `a` and `b` ({ label, page, id }): `a` connects to `b`, and
 * messages (a string, then an object) go both ways over the DataConnection.
 */
async function exchange(a, b) {
  await a.page.evaluate((id) => window.p2p.connect(id), b.id);
  await waitConnection(b.page, b.label, a.id);
  await waitConnection(a.page, a.label, b.id);

  const toB = [`hello ${b.id}`, { from: a.id, n: 1, list: [1, 2, 3] }];
  for (const m of toB) await a.page.evaluate(([id, msg]) => window.p2p.send(id, msg), [b.id, m]);
  await waitReceived(b.page, b.label, toB);

  const toA = [`hello back ${a.id}`, { from: b.id, n: 2, nested: { ok: true } }];
  for (const m of toA) await b.page.evaluate(([id, msg]) => window.p2p.send(id, msg), [a.id, m]);
  await waitReceived(a.page, a.label, toA);

  for (const side of [a, b]) {
    const now = await state(side.page);
    assert.deepEqual(now.errors, [], `${side.label}: no Peer error`);
    assert.deepEqual(now.conns[0].errors, [], `${side.label}: no DataConnection error`);
    assert.equal(now.open, true, `${side.label}: still connected to the server`);
  }
}

/**
 * The two-page scenario on one signaling server: pages served at
 * `pageBase`, Peers signaling through `server`; `bId` null lets the server
 * assign b's id.
 */
async function twoPages(t, servers, { pageBase, server, aId, bId }) {
  await withSession(t, pages.browser, servers, async (session) => {
    const a = { label: 'a', ...(await openPeer(session, 'a', `${pageBase}${PAGE}`, aId, server)) };
    const b = { label: 'b', ...(await openPeer(session, 'b', `${pageBase}${PAGE}`, bId, server)) };
    if (bId === null) {
      assert.match(b.id, UUID_V4, 'the id GET /peerjs/peerjs/id assigned');
      assert.notEqual(b.id, a.id);
    }
    await exchange(a, b);
  });
}

const SINGLE = [
  ['control: the reference server, peer 1.0.2', () => useReference(pages, startPeerReference), 'ref'],
  ['switchboard, one instance', () => useServer(pages), 'one'],
];

for (const [title, use, prefix] of SINGLE) {
  describe(title, () => {
    const target = use();
    const on = (aId, bId) => ({ pageBase: target.pageBase, server: { host: '127.0.0.1', port: target.port }, aId, bId });

    test(`peerjs ${installedVersion('peerjs')}: two pages exchange messages over a DataConnection`, { timeout: 60000 }, (t) =>
      twoPages(t, target.servers, on(`${prefix}-a`, `${prefix}-b`)),
    );

    test('a Peer without an id gets one from the server and is reached by it', { timeout: 60000 }, (t) =>
      twoPages(t, target.servers, on(`${prefix}-c`, null)),
    );
  });
}

describe('switchboard, two instances in cluster mode', () => {
  const holder = useCluster(pages);

  test('each page on its own instance: messages both ways across instances', { timeout: 60000 }, async (t) => {
    const { cluster } = holder;
    const [A, B] = cluster.instances;
    await withClusterSession(t, pages.browser, cluster, async (session) => {
      const a = { label: 'a', ...(await openPeer(session, 'a', `${A.url}${PAGE}`, 'cross-a', { host: '127.0.0.1', port: A.port })) };
      const b = { label: 'b', ...(await openPeer(session, 'b', `${B.url}${PAGE}`, 'cross-b', { host: '127.0.0.1', port: B.port })) };
      assert.deepEqual(await clientCounts(cluster), [1, 1], 'one PeerJS client on each instance');
      await exchange(a, b);
    });
  });

  test('through the nginx recipe, pages on different instances: messages both ways', { timeout: 120000 }, async (t) => {
    const { cluster } = holder;
    const server = { host: '127.0.0.1', port: cluster.nginx.port };
    await withClusterSession(t, pages.browser, cluster, async (session) => {
      let n = 0;
      const ids = new Map();
      const open = async (label) => {
        n += 1;
        const peer = await openPeer(session, label, `${cluster.nginx.url}${PAGE}`, `lb-${n}`, server);
        ids.set(peer.page, peer.id);
        return peer.page;
      };
      const leave = (page) => page.evaluate(() => window.p2p.destroy());
      const { a, b } = await pagesOnBothInstances(t, session, cluster, { open, leave });
      assert.deepEqual(await clientCounts(cluster), [1, 1], 'one PeerJS client on each instance');
      await exchange({ label: a.label, page: a.page, id: ids.get(a.page) }, { label: b.label, page: b.page, id: ids.get(b.page) });
    });
  });
});
