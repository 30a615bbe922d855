// The demo page (web/) in headless Chromium against the switchboard binary:
// real RTCPeerConnections with fake media, data-channel chat, a three-way
// mesh, a user leaving; the same call over HTTP long-polling only; the UMD
// socket.io client bundle served by switchboard; and TURN credentials from
// /api/ice-servers and the `ice-servers` event.
//
// Chromium is Debian's (/usr/bin/chromium, or CHROMIUM_PATH), driven by
// playwright-core; nothing downloads a browser. On failure, screenshots,
// console logs, page state and the server log go to artifacts/<test name>/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

import { getJson, once, startServer } from './server.mjs';
import { artifactsDir, launchBrowser, waitInPage, waitMessage, waitPeers, withSession } from './browser.mjs';

const WEB_DIR = fileURLToPath(new URL('../../web', import.meta.url));
const CLIENT_DIST = `${WEB_DIR}/vendor/socket.io-client`;

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([
    launchBrowser(),
    startServer({ extraEnv: { WEB_DIR } }),
  ]);
});

after(async () => {
  await browser?.close();
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

/** The demo page for `name` in `room`, joining on load. */
function pageUrl(base, room, name, extra = {}) {
  const q = new URLSearchParams({ room, name, autojoin: '1', ...extra });
  return `${base}/?${q}`;
}

function hook(page, fn, arg) {
  return page.evaluate(fn, arg);
}

/** The visible participant list: the text of each item, in order. */
async function participantTexts(page) {
  return (await page.locator('#participants li').allTextContents()).map((s) => s.replace(/\s+/g, ' ').trim());
}

/**
 * Two pages in `room` on `base`, connected, chatting both ways (once through
 * the test hook, once through the chat form). Returns { alice, bob }.
 */
async function twoPageCall(session, base, room, extra = {}, { aliceUsesForm = false } = {}) {
  let alice;
  if (aliceUsesForm) {
    // Joins the way a user does: the page opens without autojoin.
    alice = await session.open('alice', `${base}/?${new URLSearchParams(extra)}`);
    await alice.locator('#room').fill(room);
    await alice.locator('#name').fill('alice');
    await alice.locator('#join').click();
  } else {
    alice = await session.open('alice', pageUrl(base, room, 'alice', extra));
  }
  await waitInPage(alice, 'alice', 'joined', () => window.switchboardDemo?.joined());
  const bob = await session.open('bob', pageUrl(base, room, 'bob', extra));
  await Promise.all([waitPeers(alice, 'alice', ['bob']), waitPeers(bob, 'bob', ['alice'])]);

  // The newcomer offered; the one already there answered.
  assert.deepEqual(
    (await hook(bob, () => window.switchboardDemo.peers())).map((p) => [p.id, p.initiator]),
    [['alice', true]],
  );
  assert.deepEqual(
    (await hook(alice, () => window.switchboardDemo.peers())).map((p) => [p.id, p.initiator]),
    [['bob', false]],
  );

  const sent = await hook(alice, (text) => window.switchboardDemo.send(text), 'hello from alice');
  assert.equal(sent, 1, 'alice sent to one open channel');
  await waitMessage(bob, 'bob', 'alice', 'hello from alice');

  // bob types into the chat form, as a user would.
  await bob.locator('#message').fill('hi alice, bob here');
  await bob.locator('#send').click();
  await waitMessage(alice, 'alice', 'bob', 'hi alice, bob here');
  const shown = alice.locator('#messages li', { hasText: 'hi alice, bob here' });
  assert.equal(await shown.locator('.from').textContent(), 'bob');
  return { alice, bob };
}

describe('demo page in Chromium', () => {
  test('two pages call and chat; a third makes a mesh; one leaves', { timeout: 45000 }, async (t) => {
    await withSession(t, browser, [server], async (session) => {
      const room = 'mesh-room';
      const { alice, bob } = await twoPageCall(session, server.url, room);

      // Default transports: the page upgrades to websocket (same origin).
      for (const [label, page] of [['alice', alice], ['bob', bob]]) {
        await waitInPage(page, label, 'websocket transport', () => window.switchboardDemo.transport() === 'websocket');
      }
      assert.equal(await hook(alice, () => window.switchboardDemo.mediaSource()), 'camera');

      // Remote media plays: bob's fake camera frames reach alice's tile.
      await waitInPage(alice, 'alice', "bob's video playing", () => {
        const v = document.querySelector('#tiles [data-peer="bob"] video');
        return v && v.readyState >= 2 && v.videoWidth > 0;
      });

      // The visible participant list and peer state.
      assert.deepEqual(await participantTexts(alice), ['alice (you)', 'bob connected']);
      assert.match(await alice.locator('[data-peer="bob"] .state').textContent(), /^connected \(ICE (connected|completed)\), chat open$/);

      // carol joins with the generated test stream: a three-way mesh.
      const carol = await session.open('carol', pageUrl(server.url, room, 'carol', { media: 'generated' }));
      await Promise.all([
        waitPeers(alice, 'alice', ['bob', 'carol']),
        waitPeers(bob, 'bob', ['alice', 'carol']),
        waitPeers(carol, 'carol', ['alice', 'bob']),
      ]);
      assert.equal(await hook(carol, () => window.switchboardDemo.mediaSource()), 'generated');
      assert.ok(
        (await hook(carol, () => window.switchboardDemo.peers())).every((p) => p.initiator),
        'carol, the newcomer, offered to both',
      );
      for (const page of [alice, bob, carol]) {
        assert.deepEqual(await hook(page, () => window.switchboardDemo.participants()), ['alice', 'bob', 'carol']);
      }
      const rest = await getJson(server.url, `/api/rooms/${room}`);
      assert.equal(rest.status, 200);
      assert.deepEqual(rest.body.participants, ['alice', 'bob', 'carol']);

      assert.equal(await hook(carol, (text) => window.switchboardDemo.send(text), 'carol to everyone'), 2);
      await Promise.all([
        waitMessage(alice, 'alice', 'carol', 'carol to everyone'),
        waitMessage(bob, 'bob', 'carol', 'carol to everyone'),
      ]);

      // carol closes her tab: the others drop her.
      await session.closePage('carol');
      for (const [label, page] of [['alice', alice], ['bob', bob]]) {
        await page.locator('#participants li[data-user="carol"]').waitFor({ state: 'detached' });
        await page.locator('#tiles [data-peer="carol"]').waitFor({ state: 'detached' });
        await waitPeers(page, label, [label === 'alice' ? 'bob' : 'alice']);
        assert.deepEqual(await hook(page, () => window.switchboardDemo.participants()), ['alice', 'bob']);
      }
      assert.deepEqual(await participantTexts(bob), ['alice connected', 'bob (you)']);
      const left = await getJson(server.url, `/api/rooms/${room}`);
      assert.deepEqual(left.body.participants, ['alice', 'bob']);
      assert.deepEqual(session.problems(), [], 'no console errors, no failed relay');
    });
  });

  test('two pages call over HTTP long-polling only', { timeout: 30000 }, async (t) => {
    await withSession(t, browser, [server], async (session) => {
      const room = 'polling-room';
      const { alice, bob } = await twoPageCall(session, server.url, room, { transport: 'polling' }, { aliceUsesForm: true });
      for (const page of [alice, bob]) {
        assert.equal(await hook(page, () => window.switchboardDemo.transport()), 'polling');
        assert.equal(await hook(page, () => window.switchboardDemo.connected()), true);
      }

      // bob presses Leave: alice drops him; bob's page is out of the call.
      await bob.locator('#leave').click();
      await alice.locator('#participants li[data-user="bob"]').waitFor({ state: 'detached' });
      await alice.locator('#tiles [data-peer="bob"]').waitFor({ state: 'detached' });
      assert.deepEqual(await participantTexts(alice), ['alice (you)']);
      assert.deepEqual(await hook(alice, () => window.switchboardDemo.peers()), []);
      assert.deepEqual(await hook(bob, () => window.switchboardDemo.peers()), []);
      assert.equal(await bob.locator('#participants li').count(), 0);
      assert.equal(await bob.locator('#join').isEnabled(), true, 'bob can join again');
      assert.deepEqual((await getJson(server.url, `/api/rooms/${room}`)).body.participants, ['alice']);
      assert.deepEqual(session.problems(), [], 'no console errors, no failed relay');
    });
  });

  test('the UMD bundle from switchboard connects and joins from a classic script', { timeout: 20000 }, async (t) => {
    // The bundles are the committed copy the binary embeds (web/vendor/socket.io-client), byte for byte.
    for (const file of ['socket.io.min.js', 'socket.io.js', 'socket.io.esm.min.js', 'socket.io.min.js.map']) {
      const res = await fetch(`${server.url}/socket.io/${file}`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200, `GET /socket.io/${file}`);
      if (file.endsWith('.js')) assert.match(res.headers.get('content-type') ?? '', /javascript/, file);
      const body = Buffer.from(await res.arrayBuffer());
      assert.ok(body.equals(await readFile(`${CLIENT_DIST}/${file}`)), `${file} is the embedded copy`);
    }

    await withSession(t, browser, [server], async (session) => {
      const page = await session.open('umd', `${server.url}/`);
      await page.setContent(
        '<!doctype html><title>UMD client</title><script src="/socket.io/socket.io.min.js"></script>',
      );
      const result = await page.evaluate(async () => {
        const socket = window.io({ reconnection: false, timeout: 5000 });
        window.testSocket = socket;
        await new Promise((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('connect_error', reject);
        });
        const ack = await socket.timeout(5000).emitWithAck('join-room', { roomId: 'umd-room', userId: 'umd-user' });
        const umd = typeof window.io.Manager === 'function' && typeof window.io.Socket === 'function';
        return { ack, umd };
      });
      assert.equal(result.umd, true, 'window.io is the UMD build (io, io.Manager, io.Socket)');
      assert.deepEqual(result.ack, { ok: true, roomId: 'umd-room', users: ['umd-user'] });
      const rest = await getJson(server.url, '/api/rooms/umd-room');
      assert.deepEqual(rest.body.participants, ['umd-user']);
      await page.evaluate(() => window.testSocket.close());
    });
  });
});

describe('ICE servers with TURN configured', () => {
  const SECRET = 's3cret';
  const TURN_URLS = ['turn:127.0.0.1:3478?transport=udp', 'turns:127.0.0.1:5349'];
  const STUN_URLS = ['stun:127.0.0.1:3478'];
  let turnServer;

  before(async () => {
    turnServer = await startServer({
      extraEnv: {
        WEB_DIR,
        TURN_URLS: TURN_URLS.join(','),
        STUN_URLS: STUN_URLS.join(','),
        TURN_SECRET: SECRET,
        TURN_TTL_SECONDS: '60',
      },
    });
  });

  after(async () => {
    if (turnServer) assert.equal(await turnServer.stop(), 0);
  });

  const hmac = (key, message) => createHmac('sha1', key).update(message).digest('base64');

  /** coturn's REST-API rule (use-auth-secret): "<expiry>:<user>", expiry not passed, HMAC-SHA1 matches. */
  function coturnAccepts({ username, credential }, secret, nowSeconds) {
    const expiry = Number(username.slice(0, username.indexOf(':')));
    if (!Number.isInteger(expiry) || expiry < nowSeconds) return false;
    return credential === hmac(secret, username);
  }

  test('GET /api/ice-servers issues coturn time-limited credentials', async () => {
    const nowBefore = Math.floor(Date.now() / 1000);
    const res = await getJson(turnServer.url, '/api/ice-servers?userId=alice');
    const afterNow = Math.floor(Date.now() / 1000);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ttlSeconds, 60);
    const { iceServers } = res.body;
    assert.equal(iceServers.length, 2, JSON.stringify(iceServers));

    const stun = iceServers.find((s) => s.urls.some((u) => u.startsWith('stun:')));
    assert.deepEqual(stun.urls, STUN_URLS);
    assert.equal(stun.username, undefined, 'STUN has no username');
    assert.equal(stun.credential, undefined, 'STUN has no credential');

    const turn = iceServers.find((s) => s.urls.some((u) => u.startsWith('turn')));
    assert.deepEqual(turn.urls, TURN_URLS);
    const match = /^(\d+):alice$/.exec(turn.username);
    assert.ok(match, `username "<expiry>:alice", got ${turn.username}`);
    const expiry = Number(match[1]);
    assert.ok(expiry >= nowBefore + 60 - 5 && expiry <= afterNow + 60 + 5, `expiry ${expiry} is about now + 60 (now ${afterNow})`);
    assert.equal(turn.credential, hmac(SECRET, turn.username), 'credential = base64(HMAC-SHA1(secret, username))');

    // What coturn would do with it.
    assert.ok(expiry > afterNow, 'expiry is in the future');
    assert.ok(expiry - afterNow <= 60 + 5, 'expiry is not more than the TTL ahead');
    assert.ok(coturnAccepts(turn, SECRET, afterNow), 'coturn accepts it now');
    assert.ok(!coturnAccepts(turn, SECRET, expiry + 1), 'coturn rejects it once expired');
    assert.ok(!coturnAccepts(turn, 'other-secret', afterNow), 'coturn rejects it under another secret');
    const stale = `${afterNow - 10}:alice`;
    assert.ok(!coturnAccepts({ username: stale, credential: hmac(SECRET, stale) }, SECRET, afterNow), 'an expired username is rejected');
  });

  test('the ice-servers event carries the same servers', async () => {
    const socket = io(turnServer.url, { forceNew: true, reconnection: false, timeout: 5000 });
    try {
      const data = await once(socket, 'ice-servers');
      assert.equal(data.ttlSeconds, 60);
      const turn = data.iceServers.find((s) => s.urls.some((u) => u.startsWith('turn')));
      const stun = data.iceServers.find((s) => s.urls.some((u) => u.startsWith('stun:')));
      assert.deepEqual(turn?.urls, TURN_URLS);
      assert.deepEqual(stun?.urls, STUN_URLS);
      assert.equal(typeof turn.username, 'string');
      assert.equal(turn.credential, hmac(SECRET, turn.username));
    } finally {
      socket.close();
    }
  });

  test('the page uses the TURN servers for its peer connections', { timeout: 20000 }, async (t) => {
    await withSession(t, browser, [turnServer], async (session) => {
      const page = await session.open('alice', pageUrl(turnServer.url, 'turn-room', 'alice'));
      await waitInPage(page, 'alice', 'joined', () => window.switchboardDemo?.joined());
      const servers = await hook(page, () => window.switchboardDemo.iceServers());
      const turn = servers.find((s) => s.urls.some((u) => u.startsWith('turn')));
      assert.deepEqual(turn?.urls, TURN_URLS);
      assert.match(turn.username, /^\d+:alice$/);
      // Chromium takes them as an RTCConfiguration.
      const accepted = await hook(page, (iceServers) => {
        const pc = new RTCPeerConnection({ iceServers });
        const n = pc.getConfiguration().iceServers.length;
        pc.close();
        return n;
      }, servers);
      assert.equal(accepted, 2);
    });
  });

  test('a userId over 128 characters is a 400 JSON error', async () => {
    const res = await getJson(turnServer.url, `/api/ice-servers?userId=${'u'.repeat(129)}`);
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(typeof res.body?.error?.code, 'string', JSON.stringify(res.body));
    assert.equal(typeof res.body.error.message, 'string');
  });
});

test('a failing browser test leaves a screenshot, the console log and the server log under artifacts/', async (t) => {
  const failing = withSession(t, browser, [server], async (session) => {
    const page = await session.open('alice', `${server.url}/`);
    await page.evaluate(() => console.error('deliberate failure marker'));
    throw new Error('deliberate failure');
  });
  await assert.rejects(failing, /deliberate failure[\s\S]*artifacts: /);
  const dir = artifactsDir(t.name);
  try {
    assert.ok((await stat(`${dir}/alice.png`)).size > 0, 'a screenshot of the page');
    assert.match(await readFile(`${dir}/alice.console.log`, 'utf8'), /\[error\] deliberate failure marker/);
    assert.match(await readFile(`${dir}/server-0.log.jsonl`, 'utf8'), /listening/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
