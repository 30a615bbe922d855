// The cluster of the PeerJS and y-webrtc browser tests: Redis and two
// switchboard instances behind the real nginx recipe, which instance each
// instance's clients are on (/health's connected_clients), and pages opened
// through nginx until they land on a given instance.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';

import { TIMEOUT_MS, getJson, startServer } from './server.mjs';
import { freePort, startRedis, waitUntil } from './processes.mjs';
import { startNginx } from './nginx.mjs';
import { withSession } from './browser.mjs';

/** Pages opened through nginx before giving up on landing one on a given instance (each has ~1/2 odds). */
const MAX_LANDING_ATTEMPTS = 20;

/**
 * Redis, two switchboard instances serving `webDir` and allowing the origin
 * of nginx (the deploy recipe in front of both), as docker-compose's
 * CLIENT_URL does: { redis, instances: [A, B], nginx, stop() }.
 */
export async function startP2pCluster(webDir, extraEnv = {}) {
  const cluster = { redis: null, instances: [], nginx: null };
  cluster.stop = async () => {
    const failures = [];
    if (cluster.nginx) {
      const exit = await cluster.nginx.stop();
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') failures.push(`nginx exit ${JSON.stringify(exit)}: ${cluster.nginx.errorLog()}`);
      rmSync(cluster.nginx.dir, { recursive: true, force: true });
    }
    for (const [i, instance] of cluster.instances.entries()) {
      const code = await instance.stop().catch((err) => err.message);
      if (code !== 0) failures.push(`instance ${'AB'[i]} exited ${code}`);
    }
    await cluster.redis?.stop();
    return failures;
  };
  try {
    cluster.redis = await startRedis();
    const nginxPort = await freePort();
    const env = {
      REDIS_URL: `redis://127.0.0.1:${cluster.redis.port}`,
      INSTANCE_TTL_MS: '2000',
      WEB_DIR: webDir,
      CLIENT_URL: `http://127.0.0.1:${nginxPort}`,
      ...extraEnv,
    };
    for (let i = 0; i < 2; i += 1) cluster.instances.push(await startServer({ extraEnv: env }));
    cluster.nginx = await startNginx(cluster.instances.map((s) => s.port), { port: nginxPort });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/**
 * Registers the hooks of a describe block: a cluster (startP2pCluster)
 * serving `pages.webDir`, stopped after the block (every process must stop
 * cleanly). Returns { cluster }, set once the hook ran.
 */
export function useCluster(pages) {
  const holder = { cluster: null };
  before(async () => {
    holder.cluster = await startP2pCluster(pages.webDir);
  });
  after(async () => {
    assert.deepEqual((await holder.cluster?.stop()) ?? [], [], 'every process stops cleanly');
  });
  return holder;
}

/**
 * withSession over the cluster's instances; on failure the error also
 * carries nginx's error.log.
 */
export async function withClusterSession(t, browser, cluster, fn) {
  try {
    await withSession(t, browser, cluster.instances, fn);
  } catch (err) {
    err.message += `\nnginx error.log:\n${cluster.nginx.errorLog()}`;
    throw err;
  }
}

/** `connected_clients` of /health on each instance, fetched directly (not through nginx). */
export async function clientCounts(cluster) {
  const answers = await Promise.all(cluster.instances.map((s) => getJson(s.url, '/health')));
  return answers.map((a, i) => {
    assert.equal(a.status, 200, `instance ${'AB'[i]} /health: ${JSON.stringify(a.body)}`);
    return a.body.connected_clients;
  });
}

/** Waits until the instances report exactly `expected` connected clients ([A, B]). */
export function waitCounts(cluster, expected, ms = TIMEOUT_MS) {
  return waitUntil(
    async () => {
      const counts = await clientCounts(cluster);
      return counts.every((c, i) => c === expected[i]) ? counts : false;
    },
    `/health connected_clients [A, B] = ${JSON.stringify(expected)}`,
    ms,
  );
}

/**
 * Opens pages through nginx, each in a new browser context (its own
 * switchboard_route cookie), until one's client lands on instance `want`
 * (0 or 1; undefined: either). `open(label)` opens the page and resolves
 * once its client is connected to the server; `leave(page)` disconnects it.
 * `before` is [A, B] connected clients before. Resolves { page, label,
 * instance, attempts }.
 */
export async function pageOnInstance(session, cluster, { label, want, before, open, leave }) {
  const total = before[0] + before[1] + 1;
  for (let attempt = 1; attempt <= MAX_LANDING_ATTEMPTS; attempt += 1) {
    const name = attempt === 1 ? label : `${label}-attempt${attempt}`;
    const page = await open(name);
    const counts = await waitUntil(
      async () => {
        const now = await clientCounts(cluster);
        return now[0] + now[1] === total ? now : false;
      },
      `${total} connected client(s) in all on /health of A and B`,
    );
    const instance = counts[0] === before[0] + 1 ? 0 : 1;
    if (want === undefined || instance === want) return { page, label: name, instance, attempts: attempt };
    await leave(page);
    await session.closePage(name);
    await waitCounts(cluster, before);
  }
  throw new Error(`no page landed on instance ${'AB'[want]} in ${MAX_LANDING_ATTEMPTS} attempts`);
}

/**
 * Two pages through nginx on different instances: a on either, then pages
 * tried for b until one lands on the other (pageOnInstance, with `open` and
 * `leave`). Resolves { a, b, home } (home: [A, B] clients with a alone).
 */
export async function pagesOnBothInstances(t, session, cluster, { open, leave }) {
  const a = await pageOnInstance(session, cluster, { label: 'a', before: [0, 0], open, leave });
  const home = [0, 0];
  home[a.instance] = 1;
  const b = await pageOnInstance(session, cluster, { label: 'b', want: 1 - a.instance, before: home, open, leave });
  t.diagnostic(`a on instance ${'AB'[a.instance]}, b on ${'AB'[b.instance]} after ${b.attempts} attempt(s)`);
  return { a, b, home };
}
