// Shared setup of the PeerJS and y-webrtc browser tests: a web directory
// with the test pages (p2p-pages/) and the real client libraries (the
// peerjs npm package's browser bundle; yjs + y-webrtc bundled by esbuild),
// Chromium, the reference servers (peer 1.0.2, y-webrtc's bin/server.js)
// with a static server for their pages, and one switchboard instance. The
// cluster is in p2p-cluster.mjs. Everything binds 127.0.0.1.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

import { startServer } from './server.mjs';
import { startPeerReference, startYWebrtcReference } from './references.mjs';
import { launchBrowser } from './browser.mjs';

export { startPeerReference, startYWebrtcReference };

const HERE = fileURLToPath(new URL('.', import.meta.url));
const PAGES = path.join(HERE, 'p2p-pages');
const require = createRequire(import.meta.url);

/** The version of an installed npm package (the exact pin of package.json). */
export function installedVersion(name) {
  return JSON.parse(readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

/**
 * A temporary directory served as WEB_DIR: the pages of p2p-pages/, with
 * vendor/peerjs.min.js (the peerjs package's browser bundle, as published)
 * and vendor/yjs-webrtc.js (yjs-entry.mjs bundled by esbuild for the browser).
 */
export async function buildWebDir() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-p2p-web-'));
  mkdirSync(path.join(dir, 'vendor'));
  for (const name of readdirSync(PAGES)) copyFileSync(path.join(PAGES, name), path.join(dir, name));
  copyFileSync(require.resolve('peerjs/dist/peerjs.min.js'), path.join(dir, 'vendor', 'peerjs.min.js'));
  await build({
    entryPoints: [path.join(PAGES, 'yjs-entry.mjs')],
    absWorkingDir: HERE,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'chrome110',
    outfile: path.join(dir, 'vendor', 'yjs-webrtc.js'),
    logLevel: 'warning',
  });
  return dir;
}

/**
 * Registers the test file's hooks: the web directory (buildWebDir) and
 * Chromium, both gone after the file. Returns { webDir, browser }, set once
 * the hooks ran.
 */
export function usePages() {
  const pages = { webDir: null, browser: null };
  before(async () => {
    pages.webDir = await buildWebDir();
    pages.browser = await launchBrowser();
  });
  after(async () => {
    await pages.browser?.close();
    if (pages.webDir) rmSync(pages.webDir, { recursive: true, force: true });
  });
  return pages;
}

/** The state of a test page (its window.p2p.state()). */
export function pageState(page) {
  return page.evaluate(() => window.p2p.state());
}

/** Content types of the files in the web directory. */
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript' };

/**
 * Serves `dir` on a free port of 127.0.0.1 (for the reference servers,
 * which serve no files): `url`, `stop()`.
 */
export async function serveDir(dir) {
  const server = http.createServer((req, res) => {
    const file = path.join(dir, path.normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    try {
      assert.ok(file.startsWith(dir + path.sep));
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Registers the hooks of a describe block: the reference server `start()`
 * returns, and a static server for the pages (`pages.webDir`). Returns the
 * target, set once the hook ran: { servers: [reference], port (its),
 * pageBase (the static server's URL) }.
 */
export function useReference(pages, start) {
  const target = { servers: [], port: null, pageBase: null };
  let site;
  before(async () => {
    const reference = await start();
    target.servers.push(reference);
    target.port = reference.port;
    site = await serveDir(pages.webDir);
    target.pageBase = site.url;
  });
  after(async () => {
    await site?.stop();
    await target.servers[0]?.stop();
  });
  return target;
}

/**
 * Registers the hooks of a describe block: one switchboard instance serving
 * `pages.webDir`, which must exit 0 on SIGTERM after the block. Returns the
 * target as useReference does, the pages served by the instance itself.
 */
export function useServer(pages) {
  const target = { servers: [], port: null, pageBase: null };
  before(async () => {
    const server = await startServer({ extraEnv: { WEB_DIR: pages.webDir } });
    target.servers.push(server);
    target.port = server.port;
    target.pageBase = server.url;
  });
  after(async () => {
    if (target.servers[0]) assert.equal(await target.servers[0].stop(), 0, 'the server exits 0 on SIGTERM');
  });
  return target;
}
