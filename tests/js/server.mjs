// Spawns the switchboard binary for a test file, and small helpers for
// waiting with a timeout. Every wait here rejects after its timeout: no test
// sleeps to wait for something to happen.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';
import WebSocket from 'ws';

/** The origin every test server allows (CLIENT_URL). */
export const ALLOWED_ORIGIN = 'http://allowed.test';
/** An origin no test server allows. */
export const EVIL_ORIGIN = 'http://evil.test';

/** Default timeout of every wait, in milliseconds. */
export const TIMEOUT_MS = 5000;

/** The binary: SWITCHBOARD_BIN, or target/debug/switchboard of this repository. */
export function binaryPath() {
  return (
    process.env.SWITCHBOARD_BIN ||
    fileURLToPath(new URL('../../target/debug/switchboard', import.meta.url))
  );
}

/**
 * Starts the server on a free port of 127.0.0.1 and resolves once it logged
 * "listening". Resolves to { url, port, logs, stop }; `stop()` sends SIGTERM
 * and resolves to the exit code. `extraEnv` adds or overrides variables.
 */
export async function startServer({ extraEnv = {}, startTimeoutMs = 15000 } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(
      `switchboard binary not found at ${bin}: run \`cargo build\` in the repository root or set SWITCHBOARD_BIN`,
    );
  }
  const env = {
    PATH: process.env.PATH ?? '',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_FORMAT: 'json',
    RUST_LOG: 'info',
    CLIENT_URL: ALLOWED_ORIGIN,
    // Tests poll REST endpoints while waiting; the per-address REST limit
    // (tested in Rust) would otherwise slow them down. extraEnv can lower it.
    REST_REQUESTS_PER_SECOND: '10000',
    REST_BURST: '10000',
    ...extraEnv,
  };
  // cwd = tmpdir so that no .env file of the repository is picked up.
  const child = spawn(bin, [], { cwd: os.tmpdir(), env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const logWaiters = new Set();
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });

  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not log "listening" within ${startTimeoutMs} ms; stderr: ${stderr}`));
    }, startTimeoutMs);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        logs.push({ raw: line });
        return;
      }
      logs.push(entry);
      for (const w of [...logWaiters]) {
        if (w.predicate(entry)) {
          logWaiters.delete(w);
          w.resolve(entry);
        }
      }
      const fields = entry.fields ?? entry;
      if (fields.message === 'listening' && typeof fields.addr === 'string') {
        clearTimeout(timer);
        resolve(fields.addr);
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
  });

  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  if (!addr.startsWith('127.0.0.1:') || !Number.isInteger(port) || port <= 0) {
    child.kill('SIGKILL');
    throw new Error(`unexpected listening address ${addr}`);
  }
  const url = `http://127.0.0.1:${port}`;

  async function stop(timeoutMs = 10000) {
    if (child.exitCode !== null || child.signalCode !== null) {
      return child.exitCode;
    }
    child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`server did not exit within ${timeoutMs} ms of SIGTERM`));
      }, timeoutMs);
    });
    try {
      const { code } = await Promise.race([exited, timeout]);
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves with the first log entry (already logged or to come) matching
   * `predicate`, or rejects after `ms`: stdout is read asynchronously, so a
   * line the server wrote before answering a request may arrive after it.
   */
  function waitForLog(predicate, ms = TIMEOUT_MS) {
    const found = logs.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (entry) => {
          clearTimeout(timer);
          resolve(entry);
        },
      };
      const timer = setTimeout(() => {
        logWaiters.delete(waiter);
        reject(new Error(`no matching server log line within ${ms} ms`));
      }, ms);
      logWaiters.add(waiter);
    });
  }

  return { url, port, logs, stop, waitForLog, process: child };
}

/** Rejects with `message` unless `promise` settles within `ms`. */
export function withTimeout(promise, ms = TIMEOUT_MS, message = `timed out after ${ms} ms`) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves with the first argument of the next `event` on `emitter` (a
 * socket.io socket of either client version), or rejects after `ms`.
 */
export function once(emitter, event, ms = TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    function onEvent(arg) {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(arg);
    }
    emitter.on(event, onEvent);
  });
}

/**
 * Emits `event` with `payload` and an ack callback; resolves with the ack's
 * first argument, or rejects after `ms`. Works with 2.x and 4.x clients.
 */
export function emitWithAck(socket, event, payload, ms = TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ack for "${event}" within ${ms} ms`)),
      ms,
    );
    socket.emit(event, payload, (response) => {
      clearTimeout(timer);
      resolve(response);
    });
  });
}

/**
 * Resolves once `socket` is connected, rejects on connect_error / error or
 * after `ms`. Works with 2.x and 4.x clients.
 */
export function waitConnected(socket, ms = TIMEOUT_MS) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const events = ['connect_error', 'error', 'connect_timeout'];
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`socket did not connect within ${ms} ms`));
    }, ms);
    function cleanup() {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      for (const e of events) socket.off(e, onError);
    }
    function onConnect() {
      cleanup();
      resolve();
    }
    function onError(err) {
      cleanup();
      reject(err instanceof Error ? err : new Error(`connect failed: ${JSON.stringify(err)}`));
    }
    socket.on('connect', onConnect);
    for (const e of events) socket.on(e, onError);
  });
}

/**
 * Records every event a socket receives (4.x clients: onAny), in order, as
 * { event, data }. `waitFor(event, predicate?)` resolves with the first
 * matching record, looking at what was already received too.
 */
export function recorder(socket) {
  const received = [];
  const waiters = new Set();
  socket.onAny((event, data) => {
    const record = { event, data };
    received.push(record);
    for (const w of [...waiters]) {
      if (w.event === event && w.predicate(data)) {
        waiters.delete(w);
        w.resolve(record);
      }
    }
  });
  return {
    received,
    waitFor(event, predicate = () => true, ms = TIMEOUT_MS) {
      const found = received.find((r) => r.event === event && predicate(r.data));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          event,
          predicate,
          resolve: (r) => {
            clearTimeout(waiter.timer);
            resolve(r);
          },
        };
        waiter.timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out after ${ms} ms waiting for "${event}"; got ${JSON.stringify(received.map((r) => r.event))}`));
        }, ms);
        waiters.add(waiter);
      });
    },
  };
}

/** GET `path` of the server and parse JSON; resolves { status, headers, body }. */
export async function getJson(baseUrl, path, { headers = {}, ms = TIMEOUT_MS } = {}) {
  const res = await fetch(new URL(path, baseUrl), {
    headers,
    signal: AbortSignal.timeout(ms),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

/** Closes every socket given (either client version); safe on closed ones. */
export function closeAll(...sockets) {
  for (const s of sockets) {
    if (s) s.close();
  }
}

/**
 * A socket.io-client 4.8 socket to `url` (forceNew, no reconnection) that
 * resolves once connected. `opts` are passed to io() (e.g. transports).
 */
export async function connect(url, opts = {}, ms = TIMEOUT_MS) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: ms, ...opts });
  try {
    await waitConnected(socket, ms);
  } catch (err) {
    socket.close();
    throw err;
  }
  return socket;
}

/** A connected socket.io-client 2.5.0 (EIO=3) socket to `url` using only `transport`. */
export async function connectV2(url, transport) {
  const socket = ioV2(url, {
    forceNew: true,
    reconnection: false,
    timeout: TIMEOUT_MS,
    transports: [transport],
  });
  try {
    await waitConnected(socket);
  } catch (err) {
    socket.close();
    throw err;
  }
  return socket;
}

/**
 * Closes a 2.x socket and resolves once its engine.io close reached the
 * server. Over polling, engine.io-client 3.x sends the close packet in a POST
 * after the socket.io DISCONNECT was written; if the test ended first, the
 * server could be stopped while that session (no longer in any namespace)
 * still holds a long-poll GET, and its shutdown then waits out its 5 s grace.
 * Relies on engine.io-client 3.5 (pinned): the engine emits 'close' right
 * after it told the transport to write the close packet, and the polling
 * transport emits 'drain' when that POST is answered.
 */
export async function closeV2(socket, ms = TIMEOUT_MS) {
  const engine = socket.io.engine;
  if (!engine || engine.readyState === 'closed') {
    socket.close();
    return;
  }
  const closed = new Promise((resolve) => {
    engine.once('close', () => {
      const transport = engine.transport;
      if (transport?.name === 'polling' && transport.writable === false) {
        transport.once('drain', resolve);
      } else {
        resolve();
      }
    });
  });
  socket.close();
  await withTimeout(closed, ms, 'the 2.x client did not finish closing');
}

/** Connects to `url` with socket.io-client `opts` and closes again: 'connected', or the refusal's message. */
export async function handshakeOutcome(url, opts = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, ...opts });
  try {
    await waitConnected(socket);
    return 'connected';
  } catch (err) {
    return err.message;
  } finally {
    socket.close();
  }
}

/** An HS256 JSON Web Token for `sub` with `extra` claims, signed with `secret`, valid for a minute. */
export function hs256Token(secret, sub, extra = {}) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 60, ...extra })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/**
 * A socket.io-client 4.8 socket to `url` whose every event is recorded from
 * the start (handlers go on before connecting). With `heartbeatMs` it emits
 * `heartbeat` that often while connected. Resolves { socket, rec } once connected.
 */
export async function recordedClient(url, opts = {}, { heartbeatMs } = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: TIMEOUT_MS, ...opts });
  const rec = recorder(socket);
  let timer;
  if (heartbeatMs) {
    timer = setInterval(() => socket.connected && socket.emit('heartbeat'), heartbeatMs);
    timer.unref();
    socket.on('disconnect', () => clearInterval(timer));
  }
  try {
    await waitConnected(socket);
  } catch (err) {
    clearInterval(timer);
    socket.close();
    throw err;
  }
  return { socket, rec };
}

/**
 * POSTs a seed-004 announcement of `peerId` in `network` (with `token`, its
 * user's; without, the device is its own user) and checks the 200.
 */
export async function announce(url, network, peerId, token) {
  const headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const res = await fetch(new URL(`/network/${network}/announce`, url), {
    method: 'POST',
    headers,
    body: JSON.stringify({ peerId, signalAddress: `wss://signal.test/${peerId}` }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  if (res.status !== 200) throw new Error(`announce ${peerId}: ${res.status} ${await res.text()}`);
}

/**
 * A raw WebSocket client (`ws`) on `url` (`http:` or `ws:`): every frame it
 * gets is recorded, parsed, in order (`frames`; a binary one as
 * `{ binary: true }`). `closed` resolves with `{ code, reason }`; `opened`
 * resolves once open and rejects if the upgrade fails. `label` names it in
 * timeouts.
 */
export function rawSocket(url, wsOptions = {}, label = 'raw client') {
  const ws = new WebSocket(String(url).replace(/^http/, 'ws'), wsOptions);
  const frames = [];
  const waiters = new Set();
  ws.on('message', (data, isBinary) => {
    const frame = isBinary ? { binary: true } : JSON.parse(data.toString());
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.match(frame)) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(frame);
      }
    }
  });
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    closed,
    opened,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    /** Resolves with { code, reason } once closed, or rejects after `ms`. */
    closedWithin: (ms = TIMEOUT_MS) =>
      withTimeout(closed, ms, `${label} was not closed within ${ms} ms; got ${JSON.stringify(frames)}`),
    /**
     * Returns once the answer to `ping`, sent now, came (a `pongType` frame
     * more than before): everything the server sent for earlier frames has arrived.
     */
    async settle(ping = { type: 'ping' }, pongType = 'pong', ms = TIMEOUT_MS) {
      const pongs = () => frames.filter((f) => f.type === pongType);
      const before = pongs().length;
      ws.send(JSON.stringify(ping));
      await this.waitFor(pongType, (f) => pongs().indexOf(f) >= before, ms);
    },
    /** The first frame of `type` satisfying `predicate`, already got or to come. */
    waitFor(type, predicate = () => true, ms = TIMEOUT_MS) {
      const match = (f) => f.type === type && predicate(f);
      const found = frames.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${label}: timed out after ${ms} ms waiting for "${type}"; got ${JSON.stringify(frames.map((f) => f.type))}`));
        }, ms);
        waiters.add(w);
      });
    },
  };
}

/** The value of one sample line (name and labels, e.g. `name{protocol="peerjs"}`) of the server's /metrics; NaN if absent. */
export async function metricSample(url, sample, ms = TIMEOUT_MS) {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(ms) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return Number(line?.split(' ')[1]);
}
