// Shared pieces of the soak test: the npm packages of tests/js, a seeded
// random source, counters and timings, bounded waits, and the server's
// resident memory.
//
// Every wait here has a deadline; nothing sleeps hoping for a condition.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

// Reuse tests/js's exact, lockfile-pinned packages (socket.io-client 4.8.4, ws).
const require = createRequire(new URL('../js/package.json', import.meta.url));
export const { io } = require('socket.io-client');
export const WebSocket = require('ws');

/** mulberry32: a small seeded PRNG, so a run's choices can be replayed (timing aside). */
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** An integer in [lo, hi]. */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    /** Picks a key of `weights` ({ key: weight }) in proportion to its weight. */
    weighted(weights) {
      const entries = Object.entries(weights);
      let r = next() * entries.reduce((s, [, w]) => s + w, 0);
      for (const [k, w] of entries) {
        r -= w;
        if (r < 0) return k;
      }
      return entries[entries.length - 1][0];
    },
  };
}

/** A bag of named counters: `bump('a')`, `bump('a', 3)`; plain object for JSON. */
export function counters() {
  const c = {};
  return {
    bump(key, n = 1) {
      c[key] = (c[key] ?? 0) + n;
    },
    get: (key) => c[key] ?? 0,
    toJSON: () => Object.fromEntries(Object.entries(c).sort(([a], [b]) => a.localeCompare(b))),
  };
}

/** Resolves after `ms` (pacing only: never used to wait for a condition). */
export const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with `message` unless `promise` settles within `ms`. */
export function withTimeout(promise, ms, message = `timed out after ${ms} ms`) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Polls `check` (sync or async, truthy = done) every `everyMs` until it holds
 * or `ms` elapsed; resolves to the last value of `check` (falsy on timeout).
 */
export async function pollUntil(check, ms, everyMs = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    let v;
    try {
      v = await check();
    } catch {
      v = undefined;
    }
    if (v) return v;
    if (Date.now() >= deadline) return v;
    await pause(Math.min(everyMs, Math.max(1, deadline - Date.now())));
  }
}

/** A promise with its resolve function outside, resolved at most once. */
export function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** VmRSS of `pid` in KiB, from /proc (Linux); null if unreadable. */
export function rssKiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** GET `path` as JSON with a timeout: { status, body } (body null if not JSON). */
export async function getJson(baseUrl, path, ms = 10000) {
  const res = await fetch(new URL(path, baseUrl), { signal: AbortSignal.timeout(ms) });
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

/** Keeps the first `limit` notes of a kind for the report, and counts all. */
export function notes(limit = 20) {
  const kept = [];
  let total = 0;
  return {
    add(text) {
      total += 1;
      if (kept.length < limit) kept.push(text);
    },
    get total() {
      return total;
    },
    get kept() {
      return kept;
    },
  };
}

/** Per key, the count, least, mean and greatest of the values noted (timings). */
export function extremes() {
  const m = {};
  return {
    note(key, v) {
      const e = (m[key] ??= { n: 0, min: v, max: v, sum: 0 });
      e.n += 1;
      e.min = Math.min(e.min, v);
      e.max = Math.max(e.max, v);
      e.sum += v;
    },
    get: (key) => m[key],
    toJSON: () =>
      Object.fromEntries(
        Object.entries(m)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, e]) => [k, { n: e.n, min: e.min, mean: Math.round(e.sum / e.n), max: e.max }]),
      ),
  };
}
