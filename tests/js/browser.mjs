// Headless Chromium for the demo-page tests: launching Debian's Chromium with
// playwright-core (no browser download), one browser context per page,
// console logs collected per page, and on failure screenshots plus logs in
// tests/js/artifacts/<test name>/.

import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // Otherwise host candidates are mDNS .local names, which nothing resolves here.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** Where a test's failure artifacts go. */
export const ARTIFACTS_DIR = fileURLToPath(new URL('./artifacts/', import.meta.url));

/** The artifacts folder of the test named `testName`. */
export function artifactsDir(testName) {
  return `${ARTIFACTS_DIR}${testName.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100)}`;
}

/** Default timeout of a browser-side wait, in milliseconds. */
export const BROWSER_TIMEOUT_MS = 15000;

export async function launchBrowser() {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: \`apt-get install chromium\` or set CHROMIUM_PATH`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30000 });
}

/**
 * The pages of one test. `open(label, url)` makes a new browser context and
 * page and records its console; `closePage(label)` closes one (as a user
 * closing the tab); `close()` closes every context.
 */
export class Session {
  constructor(browser) {
    this.browser = browser;
    /** label -> { page, context, logs, closed } */
    this.entries = new Map();
  }

  async open(label, url) {
    const context = await this.browser.newContext();
    const page = await context.newPage();
    const entry = { page, context, logs: [], closed: false };
    this.entries.set(label, entry);
    const log = (line) => entry.logs.push(`${new Date().toISOString()} ${line}`);
    page.on('console', (msg) => log(`[${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => log(`[pageerror] ${err.stack || err.message}`));
    page.on('requestfailed', (req) => log(`[requestfailed] ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
    page.on('response', (res) => {
      if (res.status() >= 400) log(`[http ${res.status()}] ${res.request().method()} ${res.url()}`);
    });
    page.setDefaultTimeout(BROWSER_TIMEOUT_MS);
    if (url) await page.goto(url);
    return page;
  }

  /**
   * Console lines of every page that are errors, uncaught exceptions, or the
   * demo page's warnings about failed signaling (a relay refused, no ack).
   */
  problems() {
    const bad = /\[(error|pageerror)\]|\[warning\] (offer|answer|ice-candidate) to |signaling-error/;
    const found = [];
    for (const [label, entry] of this.entries) {
      for (const line of entry.logs) if (bad.test(line)) found.push(`${label}: ${line}`);
    }
    return found;
  }

  page(label) {
    return this.entries.get(label).page;
  }

  async closePage(label) {
    const entry = this.entries.get(label);
    entry.closed = true;
    await entry.context.close();
  }

  /** Screenshots of the open pages, every page's console log, the server log. */
  async saveArtifacts(testName, servers = []) {
    const dir = artifactsDir(testName);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const [label, entry] of this.entries) {
      await writeFile(`${dir}/${label}.console.log`, entry.logs.join('\n') + '\n');
      if (entry.closed) continue;
      try {
        await entry.page.screenshot({ path: `${dir}/${label}.png`, fullPage: true, timeout: 5000 });
        const hook = await entry.page.evaluate(() => {
          const d = window.switchboardDemo;
          if (!d) return null;
          return {
            me: d.me(),
            roomId: d.roomId(),
            joined: d.joined(),
            transport: d.transport(),
            participants: d.participants(),
            peers: d.peers(),
            messages: d.messages(),
            lobby: d.lobby?.() ?? null,
          };
        });
        await writeFile(`${dir}/${label}.state.json`, JSON.stringify(hook, null, 2) + '\n');
      } catch (err) {
        await writeFile(`${dir}/${label}.screenshot-error.txt`, String(err?.stack || err) + '\n');
      }
    }
    for (const [i, server] of servers.entries()) {
      if (!server) continue;
      const lines = server.logs.map((l) => JSON.stringify(l)).join('\n');
      await writeFile(`${dir}/server-${i}.log.jsonl`, lines + '\n');
    }
    return dir;
  }

  async close() {
    for (const entry of this.entries.values()) {
      if (!entry.closed) {
        entry.closed = true;
        await entry.context.close().catch(() => {});
      }
    }
  }
}

/**
 * Runs `fn(session)`; if it throws, saves the artifacts under the test's name
 * (and says where), then rethrows. The pages are closed either way.
 */
export async function withSession(t, browser, servers, fn) {
  const session = new Session(browser);
  try {
    await fn(session);
  } catch (err) {
    try {
      const dir = await session.saveArtifacts(t.name, servers);
      t.diagnostic(`artifacts: ${dir}`);
      err.message += `\n(artifacts: ${dir})`;
    } catch (saveErr) {
      t.diagnostic(`could not save artifacts: ${saveErr.message}`);
    }
    throw err;
  } finally {
    await session.close();
  }
}

/**
 * page.waitForFunction with a timeout; on timeout the error carries what
 * `describe` (evaluated in the page) returned, to say what state it was in.
 */
export async function waitInPage(page, label, what, fn, arg, { timeout = BROWSER_TIMEOUT_MS, describe } = {}) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (err) {
    let state = '';
    try {
      state = JSON.stringify(await page.evaluate(describe ?? (() => ({
        participants: window.switchboardDemo?.participants(),
        peers: window.switchboardDemo?.peers(),
        status: document.getElementById('status')?.textContent,
      }))));
    } catch {
      // The page may be gone.
    }
    throw new Error(`${label}: ${what} (${err.message.split('\n')[0]}); state: ${state}`);
  }
}

/** Waits until `page` has exactly `ids` as peers, each connected with its chat channel open. */
export function waitPeers(page, label, ids) {
  return waitInPage(
    page,
    label,
    `peers ${ids.join(', ')} connected with open chat`,
    (want) => {
      const peers = window.switchboardDemo?.peers() ?? [];
      return (
        peers.length === want.length &&
        want.every((id) =>
          peers.some((p) => p.id === id && p.connectionState === 'connected' && p.dataChannelState === 'open'),
        )
      );
    },
    [...ids].sort(),
  );
}

/** Waits for a chat message from `from` with `text` on `page`. */
export function waitMessage(page, label, from, text) {
  return waitInPage(
    page,
    label,
    `chat message "${text}" from ${from}`,
    ([f, tx]) => window.switchboardDemo.messages().some((m) => m.from === f && m.text === tx && !m.self),
    [from, text],
    { describe: () => window.switchboardDemo.messages() },
  );
}
