// Helper processes for tests: redis-server on a free loopback port, and
// small waits. Every wait rejects after its timeout.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { TIMEOUT_MS, startServer } from './server.mjs';

/** An executable: `envVar` if set, else the first `name` on PATH or in the sbin dirs. */
export function findExecutable(name, envVar) {
  if (process.env[envVar]) return process.env[envVar];
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} not found on PATH (scripts/test installs it) and ${envVar} is not set`);
}

/** A port of 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Calls `check` (async, returns a truthy value when done) every 20 ms until it
 * returns truthy, and resolves with that value; rejects after `ms` with
 * `what` and the last value or error seen, or at once with the error `fatal()`
 * returns (e.g. the process waited for has exited).
 */
export async function waitUntil(check, what, ms = TIMEOUT_MS, fatal = () => undefined) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    const stop = fatal();
    if (stop) throw stop;
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves once a TCP connection to 127.0.0.1:`port` succeeds (then closes it). */
export function tcpConnects(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Spawns a helper process (redis-server, nginx) with `env`; `exited`
 * resolves with its exit, `output()` is what it wrote so far, `stop()` sends
 * SIGTERM, then SIGKILL if it is still running after `ms`.
 */
export function spawnChild(file, args, name, env = process.env) {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      output += chunk;
    });
  }
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
  });
  async function stop(ms = TIMEOUT_MS) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return exited;
    child.kill('SIGTERM');
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(exited);
      }, ms);
    });
    try {
      return await Promise.race([exited, killed]);
    } finally {
      clearTimeout(timer);
    }
  }
  return { name, child, exited, stop, output: () => output };
}

/**
 * Spawns `file` (spawnChild) on a free port of 127.0.0.1: `args(port)`, and
 * `env` (or `env(port)`, a function). Resolves with it, `port` set, once the port accepts TCP;
 * rejects (and stops it) if it exits first or after `ms`.
 */
export async function spawnOnFreePort(file, args, name, { env = process.env, ms = 10000 } = {}) {
  const port = await freePort();
  const proc = spawnChild(file, args(port), name, typeof env === 'function' ? env(port) : env);
  proc.port = port;
  let exit;
  proc.exited.then((e) => {
    exit = e;
  });
  try {
    await waitUntil(
      () => tcpConnects(port),
      `${name} on port ${port}`,
      ms,
      () => exit && new Error(`${name} exited: ${JSON.stringify(exit)}; output: ${proc.output()}`),
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/**
 * A private redis-server (no persistence) on a free port of 127.0.0.1, with
 * `extraArgs` added; `port`, `stop()`.
 */
export function startRedis(extraArgs = []) {
  return spawnOnFreePort(
    findExecutable('redis-server', 'REDIS_SERVER_BIN'),
    (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs],
    'redis-server',
  );
}

/**
 * A private redis-server and `n` switchboard instances sharing it, each with
 * `extraEnv` added; resolves { redis, servers, stop }, `stop()` ending them all.
 */
export async function startCluster(n, extraEnv = {}) {
  const redis = await startRedis();
  const servers = [];
  const stop = async () => {
    for (const s of servers) await s.stop();
    await redis.stop();
  };
  try {
    for (let i = 0; i < n; i += 1) {
      servers.push(await startServer({ extraEnv: { REDIS_URL: `redis://127.0.0.1:${redis.port}`, ...extraEnv } }));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { redis, servers, stop };
}
