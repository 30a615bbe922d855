// The PeerJS endpoint's test targets and a raw PeerJS client. A target is
// switchboard (the default, PEERJS_TARGET unset or `switchboard`) or the
// reference server `peer` 1.0.2 from npm (PEERJS_TARGET=reference), so the
// cases whose behaviour both share run against both: `startTarget` takes the
// options both servers have (path, key, expire and alive timeouts,
// concurrent limit, discovery) and turns them into switchboard's environment
// or `peerjs`'s command line. The client speaks PeerJS's WebSocket protocol
// as peerjs 1.5 does: `{path}/peerjs?key=&id=&token=&version=`, JSON frames.


import { ALLOWED_ORIGIN, TIMEOUT_MS, rawSocket, startServer, withTimeout } from './server.mjs';
import { waitUntil } from './processes.mjs';
import { startPeerReference } from './references.mjs';

/** `switchboard` or `reference`. */
export const TARGET = process.env.PEERJS_TARGET || 'switchboard';
if (!['switchboard', 'reference'].includes(TARGET)) {
  throw new Error(`PEERJS_TARGET must be switchboard or reference, not ${TARGET}`);
}
/** True when the tests run against switchboard (switchboard-only cases are defined then only). */
export const SWITCHBOARD = TARGET === 'switchboard';

/** The version query parameter peerjs 1.5.4 sends. */
const CLIENT_VERSION = '1.5.4';

/**
 * Starts the target. `path` (default /peerjs) and `key` (default peerjs) as
 * both servers name them; `expireTimeoutMs`, `aliveTimeoutMs`,
 * `concurrentLimit`, `allowDiscovery` left out keep each server's default.
 * `env` is switchboard-only (the reference has no such settings): giving it
 * with the reference target is an error. Resolves { kind, url, path, key,
 * stop, server } (`server`: startServer's result, switchboard only).
 */
export async function startTarget({ path = '/peerjs', key = 'peerjs', expireTimeoutMs, aliveTimeoutMs, concurrentLimit, allowDiscovery, env = {} } = {}) {
  if (TARGET === 'reference') {
    if (Object.keys(env).length) throw new Error(`switchboard-only settings given to the reference: ${Object.keys(env)}`);
    return startReference({ path, key, expireTimeoutMs, aliveTimeoutMs, concurrentLimit, allowDiscovery });
  }
  const extraEnv = { ...env };
  if (path !== '/peerjs') extraEnv.PEERJS_PATH = path;
  if (key !== 'peerjs') extraEnv.PEERJS_KEY = key;
  if (expireTimeoutMs !== undefined) extraEnv.PEERJS_EXPIRE_TIMEOUT_MS = String(expireTimeoutMs);
  if (aliveTimeoutMs !== undefined) extraEnv.PEERJS_ALIVE_TIMEOUT_MS = String(aliveTimeoutMs);
  if (concurrentLimit !== undefined) extraEnv.PEERJS_CONCURRENT_LIMIT = String(concurrentLimit);
  if (allowDiscovery !== undefined) extraEnv.PEERJS_ALLOW_DISCOVERY = String(allowDiscovery);
  const server = await startServer({ extraEnv });
  return { kind: 'switchboard', url: server.url, path, key, stop: () => server.stop(), server };
}

/** The wrapper of a switchboard instance started by startServer / startCluster, as a target. */
export function switchboardTarget(server, { path = '/peerjs', key = 'peerjs' } = {}) {
  return { kind: 'switchboard', url: server.url, path, key, stop: () => server.stop(), server };
}

/** `peer` 1.0.2 on a free port of 127.0.0.1, CORS for ALLOWED_ORIGIN only. */
async function startReference(options) {
  const proc = await startPeerReference({ ...options, cors: ALLOWED_ORIGIN });
  return { kind: 'reference', url: proc.url, path: options.path, key: options.key, stop: () => proc.stop(), process: proc };
}

/** `{path}/{rest}` of the target as a URL string. */
export function restUrl(target, rest = '') {
  return `${target.url}${target.path}/${rest}`;
}

const clients = new Set();

/** Terminates every client still open (for a test file's `after`). */
export function terminateClients() {
  for (const c of clients) c.ws.terminate();
  clients.clear();
}

/**
 * A raw PeerJS client for `id` (token `tok-{id}` unless given) on `target`:
 * rawSocket's recorder (frames, waitFor, closed, opened, send) plus `id`,
 * `token` and `sync()`. `params` adds or, with `undefined`, removes query
 * parameters (key, id, token, version). `wsOptions` go to `ws` (origin, headers).
 */
export function peer(target, id, { token = `tok-${id}`, params = {}, wsOptions = {}, label = id } = {}) {
  const url = new URL(`${target.url.replace(/^http/, 'ws')}${target.path}/peerjs`);
  const query = { key: target.key, id, token, version: CLIENT_VERSION, ...params };
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined) url.searchParams.set(k, v);
  }
  const c = rawSocket(url.href, wsOptions, label);
  c.ws.on('error', () => {});
  c.opened.catch(() => {});
  clients.add(c);
  c.ws.once('close', () => clients.delete(c));
  let markers = 0;
  return Object.assign(c, {
    id,
    token,
    /** Frames other than OPEN, as delivered. */
    relays: () => c.frames.filter((f) => f.type !== 'OPEN'),
    /**
     * Sends an OFFER to itself (once open) and waits for it: the server handles one
     * client's frames in order, so anything it answered to earlier frames
     * has arrived by then.
     */
    async sync(ms = TIMEOUT_MS) {
      markers += 1;
      const marker = `sync-${id}-${markers}`;
      await withTimeout(c.opened, ms, `${label} did not open`);
      c.send({ type: 'OFFER', dst: id, payload: { marker } });
      return c.waitFor('OFFER', (f) => f.payload?.marker === marker, ms);
    },
  });
}

/** A PeerJS client once its OPEN came (it is the first frame). */
export async function openPeer(target, id, opts = {}) {
  const c = peer(target, id, opts);
  // Fails at once when the upgrade is refused or the socket closes first.
  const refused = c.opened.then(() => c.closed).then((closed) => {
    throw new Error(`${id}: closed (${closed.code}) before OPEN; got ${JSON.stringify(c.frames)}`);
  });
  const open = await Promise.race([c.waitFor('OPEN'), refused]);
  if (c.frames[0] !== open) throw new Error(`${id}: OPEN was not the first frame: ${JSON.stringify(c.frames)}`);
  return c;
}

/**
 * Opens `id` with `opts`, retrying every 50 ms while the server refuses it
 * (ID-TAKEN or an ERROR: the id or a place is still held), until OPEN or
 * `ms`; resolves the open client.
 */
export async function openWhenFree(target, id, opts = {}, ms = TIMEOUT_MS) {
  let attempts = 0;
  return waitUntil(async () => {
    attempts += 1;
    const c = peer(target, id, { ...opts, label: `${id} (attempt ${attempts})` });
    let first;
    try {
      first = await waitUntil(() => c.frames[0] ?? (c.ws.readyState === c.ws.CLOSED && { type: 'closed' }), `${id}: a first frame`, 1000);
    } finally {
      if (first?.type !== 'OPEN') c.ws.terminate();
    }
    if (first.type === 'OPEN') return c;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return false;
  }, `${id} to open again`, ms);
}

/** The ERROR frame every refused connection gets, for `msg`. */
export const errorFrame = (msg) => ({ type: 'ERROR', payload: { msg } });

/** The messages of the reference's refusals. */
export const MSG = {
  params: 'No id, token, or key supplied to websocket server',
  key: 'Invalid key provided',
  token: 'Invalid token provided',
  limit: 'Server has reached its concurrent user limit',
  id: 'Invalid id',
};

/**
 * Asserts `c` got exactly `frame` and was then closed by the server;
 * resolves the close.
 */
export async function refusedWith(c, frame, assert) {
  const closed = await c.closedWithin();
  assert.deepEqual(c.frames, [frame], `${c.id}: exactly one frame before the close`);
  return closed;
}

/**
 * `rounds` times: a sender on `from` sends seven CANDIDATEs to an absent id,
 * the id opens on `to`, and the sender, once it is open, sends one more: the
 * seven must come first, in order (the reference drains the queue before
 * it handles anything else).
 */
export async function assertWaitingBeforeLive(assert, from, to, prefix, rounds = 60) {
  for (let r = 0; r < rounds; r += 1) {
    const [src, dst] = [`${prefix}-a${r}`, `${prefix}-b${r}`];
    const a = await openPeer(from, src);
    for (let n = 0; n < 7; n += 1) a.send({ type: 'CANDIDATE', dst, payload: n });
    await a.sync();
    const b = await openPeer(to, dst);
    a.send({ type: 'OFFER', dst, payload: 'live' });
    await waitUntil(() => b.relays().length >= 8, `round ${r}: the waiting messages and the live one`);
    assert.deepEqual(b.relays().map((f) => f.payload), [0, 1, 2, 3, 4, 5, 6, 'live'], `round ${r}`);
    a.ws.close();
    b.ws.close();
  }
}
