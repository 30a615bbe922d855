// The raw WebSocket endpoints from a browser's own `WebSocket`, in headless
// Chromium (Debian's, via playwright-core), once each: seed 004's
// /signaling/{deviceId}, seed 000 at /?organizationId=…, seed 001 at / and
// /dashboard/ws. The page is one the server serves (same origin, so the
// origin check passes as it does for a deployed page).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { announce, startServer } from './server.mjs';
import { launchBrowser, withSession } from './browser.mjs';

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([launchBrowser(), startServer()]);
  for (const peerId of ['peer_page_a', 'peer_page_b']) await announce(server.url, 'home', peerId);
});

after(async () => {
  await browser?.close();
  if (server) assert.equal(await server.stop(), 0);
});

/** Runs in the page: opens `paths` as WebSockets and collects every frame each gets. */
function browserScript() {
  window.rawSockets = {};
  window.openRaw = (name, path) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}${path}`);
      const entry = { ws, got: [], closed: null };
      window.rawSockets[name] = entry;
      ws.onmessage = (e) => entry.got.push(JSON.parse(e.data));
      ws.onclose = (e) => (entry.closed = e.code);
      ws.onopen = () => resolve(true);
      ws.onerror = () => reject(new Error(`${path} failed`));
    });
  window.sendRaw = (name, msg) => window.rawSockets[name].ws.send(JSON.stringify(msg));
  window.framesOf = (name) => window.rawSockets[name].got;
}

test('each raw endpoint works from a browser page with the native WebSocket', { timeout: 45000 }, async (t) => {
  await withSession(t, browser, [server], async (session) => {
    const page = await session.open('page', `${server.url}/health`);
    await page.evaluate(browserScript);
    const frames = (name, type) =>
      page.waitForFunction(
        ([n, ty]) => window.framesOf(n).find((f) => f.type === ty || (ty === '*signal' && f.fromPeerId)),
        [name, type],
        { timeout: 10000, polling: 50 },
      ).then((h) => h.jsonValue());

    // Seed 004: two devices, an offer one way.
    await page.evaluate(() => Promise.all([window.openRaw('a', '/signaling/peer_page_a'), window.openRaw('b', '/signaling/peer_page_b')]));
    await page.evaluate(() => window.sendRaw('a', { type: 'offer', toPeerId: 'peer_page_b', data: { sdp: 'v=0' } }));
    const offer = await frames('b', '*signal');
    assert.deepEqual([offer.type, offer.fromPeerId, offer.data], ['offer', 'peer_page_a', { sdp: 'v=0' }]);

    // Seed 000: welcome first, then the organization's client list.
    await page.evaluate(() => window.openRaw('m', '/?organizationId=org_page&clientId=dev_page&clientName=Page&capabilities=location.share'));
    const welcome = await frames('m', 'welcome');
    assert.equal(welcome.data.organizationId, 'org_page');
    const list = await frames('m', 'client-list-update');
    assert.ok(list.data.clients.some((c) => c.id === 'dev_page'));

    // Seed 001 at / and at /dashboard/ws: subscribe, ping -> pong, a relay between the two.
    await page.evaluate(() => Promise.all([window.openRaw('d1', '/'), window.openRaw('d2', '/dashboard/ws')]));
    await page.evaluate(() => {
      for (const n of ['d1', 'd2']) {
        window.sendRaw(n, { type: 'subscribe', channel: 'webrtc-signaling' });
        window.sendRaw(n, { type: 'ping' });
      }
    });
    assert.equal(typeof (await frames('d1', 'pong')).timestamp, 'number');
    await frames('d2', 'pong');
    await page.evaluate(() => window.sendRaw('d1', { type: 'webrtc-offer', channel: 'webrtc-signaling', data: { sdp: 'v=0' } }));
    const relayed = await frames('d2', 'webrtc-offer');
    assert.deepEqual(relayed, { type: 'webrtc-offer', channel: 'webrtc-signaling', data: { sdp: 'v=0' } });
    assert.deepEqual(await page.evaluate(() => Object.values(window.rawSockets).map((s) => s.closed)), [null, null, null, null, null]);
  });
});
