// The real yjs + y-webrtc (pinned in package.json, bundled for the browser
// by esbuild at test time) in headless Chromium: two pages share a Y.Doc in
// one room with `new WebrtcProvider(room, doc, { signaling: [url] })`, and
// edits to a Y.Text and a Y.Map replicate both ways over the WebRTC
// connection negotiated through the signaling server.
//
// Each page has its own browser context, so y-webrtc's BroadcastChannel
// between tabs of one origin cannot carry anything: every test checks that
// the pages see each other only as WebRTC peers (room.bcConns empty).
//
// The same scenario runs against y-webrtc's own bin/server.js (the
// reference, as a control), against one switchboard instance (at
// /y-webrtc; with and without a room password, which encrypts the
// signaling messages), and against two instances in cluster mode (Redis):
// once with each page connected to its own instance directly, once through
// the real nginx recipe with the pages on different instances (checked
// with /health of each).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { rawSocket } from './server.mjs';
import { waitInPage, withSession } from './browser.mjs';
import { clientCounts, pagesOnBothInstances, useCluster, waitCounts, withClusterSession } from './p2p-cluster.mjs';
import {
  installedVersion,
  pageState as state,
  startYWebrtcReference,
  usePages,
  useReference,
  useServer,
} from './p2p.mjs';

const PAGE = '/yjs.html';
const VERSIONS = `yjs ${installedVersion('yjs')} + y-webrtc ${installedVersion('y-webrtc')}`;

const pages = usePages();

/** `http://host:port` -> `ws://host:port/y-webrtc`. */
function signalingUrl(base) {
  return `${base.replace(/^http/, 'ws')}/y-webrtc`;
}

/**
 * Opens `url` as `label`, joins `room` with the signaling server `signaling`
 * (and `password`), and resolves with the page once its signaling
 * connection is up.
 */
async function openDoc(session, label, url, { room, signaling, password }) {
  const page = await session.open(label, url);
  assert.equal(await page.evaluate(() => typeof window.WebrtcProvider), 'function', 'the yjs + y-webrtc bundle loaded');
  await page.evaluate(([r, s, p]) => window.p2p.start(r, s, p), [room, signaling, password]);
  await waitInPage(
    page,
    label,
    `the signaling connection to ${signaling}`,
    () => {
      const s = window.p2p.state();
      return s.signaling.length === 1 && s.signaling[0].connected && s.peerId !== null;
    },
    undefined,
    { describe: () => window.p2p.state() },
  );
  return page;
}

/** Waits until `page` has exactly one peer, `otherId`, connected and synced over WebRTC, and none over BroadcastChannel. */
async function waitWebrtcPeer(page, label, otherId) {
  await waitInPage(
    page,
    label,
    `WebRTC peer ${otherId} connected and synced`,
    (id) => {
      const s = window.p2p.state();
      return s.webrtcPeers.length === 1 && s.webrtcPeers[0].id === id && s.webrtcPeers[0].connected && s.webrtcPeers[0].synced;
    },
    otherId,
    { describe: () => window.p2p.state() },
  );
  assert.deepEqual((await state(page)).bcPeers, [], `${label}: no peer over BroadcastChannel`);
}

/** Waits until `page`'s document has `text` and `map`. */
async function waitDoc(page, label, text, map) {
  await waitInPage(
    page,
    label,
    `the document to read ${JSON.stringify({ text, map })}`,
    ([tx, m]) => {
      const s = window.p2p.state();
      return s.text === tx && JSON.stringify(s.map) === JSON.stringify(m);
    },
    [text, map],
    { describe: () => window.p2p.state() },
  );
}

/**
 * Two pages `a` and `b` ({ label, page }) in one room, each with its
 * signaling connection up: they connect over WebRTC, and edits go both ways.
 */
async function replicate(a, b) {
  const [sa, sb] = [await state(a.page), await state(b.page)];
  assert.notEqual(sa.peerId, sb.peerId);
  await waitWebrtcPeer(a.page, a.label, sb.peerId);
  await waitWebrtcPeer(b.page, b.label, sa.peerId);

  await a.page.evaluate(() => window.p2p.insertText('hello from a'));
  await waitDoc(b.page, b.label, 'hello from a', {});

  await b.page.evaluate(() => {
    window.p2p.setMap('fromB', { n: 2, list: [1, 2] });
    window.p2p.insertText(', hello from b');
  });
  const map = { fromB: { n: 2, list: [1, 2] } };
  await waitDoc(a.page, a.label, 'hello from a, hello from b', map);

  await a.page.evaluate(() => window.p2p.setMap('fromA', 'yes'));
  await waitDoc(b.page, b.label, 'hello from a, hello from b', { ...map, fromA: 'yes' });

  for (const side of [a, b]) {
    const s = await state(side.page);
    assert.equal(s.webrtcPeers.length, 1, `${side.label}: still exactly one WebRTC peer`);
    assert.deepEqual(s.bcPeers, [], `${side.label}: still no peer over BroadcastChannel`);
    assert.equal(s.signaling[0].connected, true, `${side.label}: still connected to the signaling server`);
  }
}

/** The two-page scenario on one signaling server: pages served at `pageBase`. */
async function twoPages(t, servers, { pageBase, signaling, room, password }) {
  // A client of the server's own protocol subscribed to the room's topic sees
  // what the pages publish: encrypted (strings) with a password, plain without.
  const observer = rawSocket(signaling, {}, 'topic observer');
  await observer.opened;
  observer.send({ type: 'subscribe', topics: [room] });
  observer.send({ type: 'ping' });
  await observer.waitFor('pong');
  try {
    await withSession(t, pages.browser, servers, async (session) => {
      const options = { room, signaling, password };
      const a = { label: 'a', page: await openDoc(session, 'a', `${pageBase}${PAGE}`, options) };
      const b = { label: 'b', page: await openDoc(session, 'b', `${pageBase}${PAGE}`, options) };
      await replicate(a, b);
    });
    const published = observer.frames.filter((f) => f.type === 'publish').map((f) => f.data);
    assert.ok(published.length > 0, 'the pages signaled through the server');
    if (password) {
      assert.ok(published.every((data) => typeof data === 'string'), `every signaling message encrypted: ${JSON.stringify(published).slice(0, 300)}`);
    } else {
      assert.ok(published.some((data) => data?.type === 'announce'), `plain announcements: ${JSON.stringify(published).slice(0, 300)}`);
    }
  } finally {
    observer.ws.terminate();
  }
}

const SINGLE = [
  ["control: the reference server, y-webrtc's bin/server.js", () => useReference(pages, startYWebrtcReference), 'ref'],
  ['switchboard, one instance', () => useServer(pages), 'one'],
];

for (const [title, use, prefix] of SINGLE) {
  describe(title, () => {
    const target = use();
    const on = (room, password) => ({ pageBase: target.pageBase, signaling: `ws://127.0.0.1:${target.port}/y-webrtc`, room, password });

    test(`${VERSIONS}: Y.Text and Y.Map edits replicate both ways over WebRTC`, { timeout: 60000 }, (t) =>
      twoPages(t, target.servers, on(`${prefix}-room`)),
    );

    test('with a room password (encrypted signaling messages)', { timeout: 60000 }, (t) =>
      twoPages(t, target.servers, on(`${prefix}-secret`, 'correct horse')),
    );
  });
}

describe('switchboard, two instances in cluster mode', () => {
  const holder = useCluster(pages);

  test('each page on its own instance: edits replicate both ways across instances', { timeout: 60000 }, async (t) => {
    const { cluster } = holder;
    const [A, B] = cluster.instances;
    await withClusterSession(t, pages.browser, cluster, async (session) => {
      const room = 'cross-room';
      const a = { label: 'a', page: await openDoc(session, 'a', `${A.url}${PAGE}`, { room, signaling: signalingUrl(A.url) }) };
      const b = { label: 'b', page: await openDoc(session, 'b', `${B.url}${PAGE}`, { room, signaling: signalingUrl(B.url) }) };
      assert.deepEqual(await clientCounts(cluster), [1, 1], 'one y-webrtc client on each instance');
      await replicate(a, b);
    });
  });

  test('through the nginx recipe, pages on different instances: edits replicate both ways', { timeout: 120000 }, async (t) => {
    const { cluster } = holder;
    const signaling = signalingUrl(cluster.nginx.url);
    const room = 'lb-room';
    await withClusterSession(t, pages.browser, cluster, async (session) => {
      // Page a joins the room at once; the pages tried for b join a room of
      // their own until one lands on the other instance (a page that joined
      // a's room and then left could leave a with a half-open WebRTC
      // connection to it).
      const open = (label) =>
        openDoc(session, label, `${cluster.nginx.url}${PAGE}`, { room: label === 'a' ? room : `probe-${label}`, signaling });
      const leave = (page) => page.evaluate(() => window.p2p.destroy());
      const { a, b, home } = await pagesOnBothInstances(t, session, cluster, { open, leave });
      // b leaves its probe room and joins a's, on a new websocket that its
      // switchboard_route cookie sends to the same instance.
      await leave(b.page);
      await waitCounts(cluster, home);
      await b.page.evaluate(([r, s]) => window.p2p.start(r, s), [room, signaling]);
      await waitInPage(b.page, b.label, 'the signaling connection again', () => window.p2p.state().signaling[0]?.connected);
      assert.deepEqual(await clientCounts(cluster), [1, 1], 'one y-webrtc client on each instance');
      await replicate({ label: a.label, page: a.page }, { label: b.label, page: b.page });
    });
  });
});
