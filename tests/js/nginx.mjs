// nginx in front of local switchboard instances, with the real
// deploy/nginx/switchboard.conf rewritten only to point its upstream at the
// instances and to listen on a loopback port. Its own prefix directory,
// stopped and removed by the caller (`stop()`, then `rmSync(dir)`).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { getJson } from './server.mjs';
import { findExecutable, freePort, spawnChild, waitUntil } from './processes.mjs';

const DEPLOY_CONF = fileURLToPath(new URL('../../deploy/nginx/switchboard.conf', import.meta.url));

/** Replaces exactly one occurrence of `from` in `text`, failing loudly otherwise. */
function replaceOnce(text, from, to) {
  const count = text.split(from).length - 1;
  assert.equal(count, 1, `deploy/nginx/switchboard.conf has exactly one "${from}" (found ${count})`);
  return text.replace(from, to);
}

/**
 * The deploy config with its upstream servers pointed at `ports` and its
 * listen directive at 127.0.0.1:`listenPort`; nothing else changed.
 */
function rewriteDeployConf(ports, listenPort) {
  let conf = readFileSync(DEPLOY_CONF, 'utf8');
  conf = replaceOnce(conf, 'server switchboard-1:4000;', `server 127.0.0.1:${ports[0]};`);
  conf = replaceOnce(conf, 'server switchboard-2:4000;', `server 127.0.0.1:${ports[1]};`);
  conf = replaceOnce(conf, 'listen 80;', `listen 127.0.0.1:${listenPort};`);
  return conf;
}

/**
 * nginx with the deploy config in front of the instances on `ports`, on
 * `port` (a free one if not given); resolves once /health answers 200
 * through it. The result has `port`, `url`, `dir`, `stop()`, `errorLog()`.
 */
export async function startNginx(ports, { port } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-nginx-'));
  for (const sub of ['body', 'proxy', 'fcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, sub));
  const listenPort = port ?? (await freePort());
  const errorLog = path.join(dir, 'error.log');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const main = [
    // As root, workers would switch to "nobody", which cannot use the 0700 temp dir.
    isRoot ? 'user root;' : '',
    'worker_processes 1;',
    'daemon off;',
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${errorLog} warn;`,
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${path.join(dir, 'body')};`,
    `  proxy_temp_path ${path.join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${path.join(dir, 'fcgi')};`,
    `  uwsgi_temp_path ${path.join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${path.join(dir, 'scgi')};`,
    rewriteDeployConf(ports, listenPort),
    '}',
    '',
  ].join('\n');
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, main);
  // -e: the error log before the config is read (not the packaged default).
  const proc = spawnChild(findExecutable('nginx', 'NGINX_BIN'), ['-p', `${dir}/`, '-e', errorLog, '-c', confPath], 'nginx');
  proc.dir = dir;
  proc.port = listenPort;
  proc.url = `http://127.0.0.1:${listenPort}`;
  proc.errorLog = () => (existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '(no error.log)');
  let exit;
  proc.exited.then((e) => {
    exit = e;
  });
  try {
    await waitUntil(
      async () => (await getJson(proc.url, '/health', { ms: 1000 })).status === 200,
      `GET ${proc.url}/health to answer 200 through nginx`,
      10000,
      () => exit && new Error(`nginx exited before answering: ${JSON.stringify(exit)}`),
    );
  } catch (err) {
    err.message += `\nnginx output: ${proc.output()}\nerror.log: ${proc.errorLog()}\nconfig:\n${main}`;
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return proc;
}
