// The demo page's lobby in headless Chromium against the switchboard binary:
// the room list pushed from `/dashboard`, a room created from the page that
// needs the host's approval, a second page that finds it in its list without
// reloading and knocks, the host's admit/deny prompt, and the call that
// follows an admit (real peer connections and chat); a denied joiner stays
// out. Nobody types a room id.
//
// ROOM_LIST_INTERVAL_MS is ten minutes here, so a room that shows up in a
// list was pushed because it changed, not by the periodic refresh. Every wait
// has a timeout; on failure, screenshots, console logs, page state and the
// server log go to artifacts/<test name>/ (see browser.mjs).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { getJson, startServer } from './server.mjs';
import { launchBrowser, waitInPage, waitMessage, waitPeers, withSession } from './browser.mjs';

const WEB_DIR = fileURLToPath(new URL('../../web', import.meta.url));

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([
    launchBrowser(),
    startServer({ extraEnv: { WEB_DIR, ROOM_LIST_INTERVAL_MS: '600000' } }),
  ]);
});

after(async () => {
  await browser?.close();
  if (server) assert.equal(await server.stop(), 0, 'the server exits 0 on SIGTERM');
});

const hook = (page, fn, arg) => page.evaluate(fn, arg);
const lobbyOf = (page) => hook(page, () => window.switchboardDemo.lobby());

/** The page with display name `name`, no room, no autojoin; resolves once its lobby has a list. */
async function openLobby(session, label, name) {
  const page = await session.open(label, `${server.url}/?${new URLSearchParams({ name })}`);
  await waitInPage(page, label, 'the lobby connected with its room list', () => {
    const lobby = window.switchboardDemo?.lobby();
    return lobby?.connected && lobby.listed && !document.getElementById('create').disabled;
  }, undefined, { describe: () => window.switchboardDemo?.lobby() });
  // Set once: still there later means the page was never reloaded.
  await hook(page, () => {
    window.lobbyTestMarker = true;
  });
  return page;
}

/** `page` creates a room named `name` through the form; resolves to its id once the page is in it. */
async function createRoom(page, label, name, { requiresApproval }) {
  await page.locator('#create-name').fill(name);
  await page.locator('#create-approval').setChecked(requiresApproval);
  await page.locator('#create').click();
  await waitInPage(page, label, `in the room ${name} it created`, () => window.switchboardDemo.joined());
  return hook(page, () => window.switchboardDemo.roomId());
}

/** Waits until `page`'s pushed list shows `roomId` with `count` participants. */
function waitListed(page, label, roomId, count) {
  return waitInPage(
    page,
    label,
    `room ${roomId} listed with ${count} participant(s)`,
    ([id, n]) => window.switchboardDemo.lobby().rooms.some((r) => r.id === id && r.participantCount === n),
    [roomId, count],
    { describe: () => window.switchboardDemo.lobby() },
  );
}

/** Waits until `page`'s knock has `status`. */
function waitKnock(page, label, status) {
  return waitInPage(
    page,
    label,
    `knock ${status}`,
    (want) => window.switchboardDemo.lobby().knock?.status === want,
    status,
    { describe: () => ({ lobby: window.switchboardDemo.lobby(), status: document.getElementById('status').textContent }) },
  );
}

async function notReloaded(page) {
  return hook(page, () => window.lobbyTestMarker === true);
}

describe('the lobby of the demo page in Chromium', () => {
  test('a joiner finds a room that needs approval in the pushed list, knocks, the host admits, and they call', { timeout: 60000 }, async (t) => {
    await withSession(t, browser, [server], async (session) => {
      const [host, guest] = await Promise.all([openLobby(session, 'host', 'alice'), openLobby(session, 'guest', 'bob')]);
      assert.equal((await lobbyOf(guest)).rooms.some((r) => r.name === 'Standup'), false, 'no Standup yet');

      const roomId = await createRoom(host, 'host', 'Standup', { requiresApproval: true });
      const rest = await getJson(server.url, `/api/rooms/${encodeURIComponent(roomId)}`);
      assert.equal(rest.status, 200);
      assert.equal(rest.body.name, 'Standup');
      assert.equal(rest.body.requiresApproval, true);
      assert.equal(rest.body.hostId, 'alice');
      assert.deepEqual(rest.body.participants, ['alice']);

      // bob's list gets the room pushed: no reload, no room id typed.
      const row = guest.locator('#rooms li', { hasText: 'Standup' });
      await row.waitFor();
      assert.equal(await row.locator('.badge').isVisible(), true, 'the "needs approval" badge');
      assert.match(await row.locator('.room-meta').textContent(), /hosted by alice, 1 person/);
      assert.equal(await notReloaded(guest), true, 'the list was pushed to the open page');
      // alice's own row says she is in it.
      assert.equal(await host.locator('#rooms li', { hasText: 'Standup' }).getByRole('button').textContent(), 'You are here');

      await row.getByRole('button', { name: 'Knock to join Standup' }).click();
      await waitKnock(guest, 'guest', 'pending');
      assert.equal(await hook(guest, () => window.switchboardDemo.joined()), false, 'not in the call while waiting');
      assert.equal(await row.getByRole('button').isDisabled(), true, 'no second knock while waiting');

      // alice gets the prompt and admits bob.
      const prompt = host.locator('#requests li', { hasText: 'bob asks to join Standup' });
      await prompt.waitFor();
      assert.deepEqual((await lobbyOf(host)).requests, [{ roomId, userId: 'bob', userName: 'bob' }]);
      await host.getByRole('button', { name: 'Admit bob' }).click();
      await host.locator('#requests-panel').waitFor({ state: 'hidden' });

      // bob is let in and both reach connected peers with open chat.
      await waitKnock(guest, 'guest', 'approved');
      await Promise.all([waitPeers(host, 'host', ['bob']), waitPeers(guest, 'guest', ['alice'])]);
      assert.equal(await hook(guest, () => window.switchboardDemo.roomId()), roomId);
      for (const page of [host, guest]) {
        assert.deepEqual(await hook(page, () => window.switchboardDemo.participants()), ['alice', 'bob']);
      }
      assert.equal(await hook(host, (text) => window.switchboardDemo.send(text), 'welcome, bob'), 1);
      await waitMessage(guest, 'guest', 'alice', 'welcome, bob');
      await guest.locator('#message').fill('thanks for letting me in');
      await guest.locator('#send').click();
      await waitMessage(host, 'host', 'bob', 'thanks for letting me in');

      // The room's new size is pushed to both lists; REST agrees.
      await Promise.all([waitListed(host, 'host', roomId, 2), waitListed(guest, 'guest', roomId, 2)]);
      assert.deepEqual((await getJson(server.url, `/api/rooms/${encodeURIComponent(roomId)}`)).body.participants, ['alice', 'bob']);
      assert.match(await row.locator('.room-meta').textContent(), /2 people/);
      assert.equal(await notReloaded(guest), true);
      assert.deepEqual(session.problems(), [], 'no console errors, no failed relay');
    });
  });

  test('a denied joiner is told so and stays out of the call', { timeout: 60000 }, async (t) => {
    await withSession(t, browser, [server], async (session) => {
      const [host, guest] = await Promise.all([openLobby(session, 'host', 'carol'), openLobby(session, 'guest', 'dave')]);
      const roomId = await createRoom(host, 'host', 'Private', { requiresApproval: true });

      const row = guest.locator('#rooms li', { hasText: 'Private' });
      await row.getByRole('button', { name: 'Knock to join Private' }).click();
      await waitKnock(guest, 'guest', 'pending');

      await host.locator('#requests li', { hasText: 'dave asks to join Private' }).waitFor();
      await host.getByRole('button', { name: 'Deny dave' }).click();
      await host.locator('#requests-panel').waitFor({ state: 'hidden' });

      await waitKnock(guest, 'guest', 'rejected');
      assert.match(await guest.locator('#status').textContent(), /The host of Private turned you away/);
      assert.equal((await lobbyOf(guest)).knock.reason, null, 'refused by the host, not timed out');
      assert.equal(await hook(guest, () => window.switchboardDemo.joined()), false);
      assert.equal(await hook(guest, () => window.switchboardDemo.roomId()), null);
      assert.equal(await hook(guest, () => window.switchboardDemo.mediaSource()), null, 'no call was started');
      assert.deepEqual(await hook(host, () => window.switchboardDemo.peers()), []);
      assert.deepEqual(await hook(host, () => window.switchboardDemo.participants()), ['carol']);
      assert.deepEqual((await getJson(server.url, `/api/rooms/${encodeURIComponent(roomId)}`)).body.participants, ['carol']);
      assert.equal(await row.getByRole('button').textContent(), 'Knock', 'dave may knock again');
      assert.equal(await row.getByRole('button').isEnabled(), true);

      // Typing the room id does not get round the host: the server refuses the join.
      await guest.locator('#room').fill(roomId);
      await guest.locator('#join').click();
      await waitInPage(guest, 'guest', 'the join refused', () =>
        /not-approved/.test(document.getElementById('status').textContent),
      );
      assert.equal(await hook(guest, () => window.switchboardDemo.joined()), false);
      assert.deepEqual((await getJson(server.url, `/api/rooms/${encodeURIComponent(roomId)}`)).body.participants, ['carol']);
      assert.deepEqual(await hook(host, () => window.switchboardDemo.participants()), ['carol']);
      assert.deepEqual(session.problems(), [], 'no console errors');
    });
  });

  test('a room without approval is joined straight from the list', { timeout: 60000 }, async (t) => {
    await withSession(t, browser, [server], async (session) => {
      const [host, guest] = await Promise.all([openLobby(session, 'host', 'erin'), openLobby(session, 'guest', 'frank')]);
      const roomId = await createRoom(host, 'host', 'Open house', { requiresApproval: false });

      const row = guest.locator('#rooms li', { hasText: 'Open house' });
      await row.waitFor();
      assert.equal(await row.locator('.badge').isVisible(), false, 'no "needs approval" badge');
      await row.getByRole('button', { name: 'Join Open house' }).click();

      await Promise.all([waitPeers(host, 'host', ['frank']), waitPeers(guest, 'guest', ['erin'])]);
      assert.equal(await hook(guest, () => window.switchboardDemo.roomId()), roomId);
      assert.equal((await lobbyOf(guest)).knock, null, 'no knock was needed');
      assert.deepEqual((await lobbyOf(host)).requests, [], 'the host was not asked');
      assert.equal(await notReloaded(guest), true);
      assert.deepEqual(session.problems(), [], 'no console errors, no failed relay');
    });
  });
});
