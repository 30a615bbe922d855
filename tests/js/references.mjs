// The reference servers the tests hold switchboard to, each on a free port
// of 127.0.0.1 (spawnOnFreePort): peerjs-server (`peer` 1.0.2) and y-webrtc's
// bin/server.js (10.3.0), both from tests/js/node_modules. `logs` are their
// output lines, as the switchboard servers' are for the artifacts.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { spawnOnFreePort } from './processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

async function start(name, args, env = () => ({})) {
  const proc = await spawnOnFreePort(process.execPath, args, name, { env: (port) => ({ ...process.env, ...env(port) }), ms: 15000 });
  Object.defineProperty(proc, 'logs', {
    get: () => proc.output().split('\n').filter(Boolean).map((raw) => ({ raw })),
  });
  proc.url = `http://127.0.0.1:${proc.port}`;
  return proc;
}

/**
 * peerjs-server as `peerjs --host 127.0.0.1 --port <free> --path <path>`, with
 * its options: `key`, `cors` (origins), `expireTimeoutMs`, `aliveTimeoutMs`,
 * `concurrentLimit`, `allowDiscovery`.
 */
export function startPeerReference({ path: mount = '/peerjs', key, cors, expireTimeoutMs, aliveTimeoutMs, concurrentLimit, allowDiscovery } = {}) {
  const bin = path.join(HERE, 'node_modules', 'peer', 'dist', 'bin', 'peerjs.js');
  const options = [];
  if (key !== undefined) options.push('--key', key);
  if (cors !== undefined) options.push('--cors', cors);
  if (expireTimeoutMs !== undefined) options.push('--expire_timeout', String(expireTimeoutMs));
  if (aliveTimeoutMs !== undefined) options.push('--alive_timeout', String(aliveTimeoutMs));
  if (concurrentLimit !== undefined) options.push('--concurrent_limit', String(concurrentLimit));
  if (allowDiscovery) options.push('--allow_discovery');
  return start('peer', (port) => [bin, '--host', '127.0.0.1', '--port', String(port), '--path', mount, ...options]);
}

/**
 * y-webrtc's signaling server (the package's bin/server.js, PORT env). It
 * calls `server.listen(port)`, i.e. every interface: a preloaded module
 * makes a bare port mean 127.0.0.1.
 */
export function startYWebrtcReference() {
  const loopbackOnly = [
    "import http from 'node:http';",
    'const listen = http.Server.prototype.listen;',
    'http.Server.prototype.listen = function (port, ...rest) {',
    "  return typeof port === 'object' || rest.length > 0 && typeof rest[0] === 'string'",
    '    ? listen.call(this, port, ...rest)',
    "    : listen.call(this, port, '127.0.0.1', ...rest);",
    '};',
  ].join('\n');
  const bin = path.join(HERE, 'node_modules', 'y-webrtc', 'bin', 'server.js');
  return start(
    'y-webrtc-server',
    () => ['--import', `data:text/javascript,${encodeURIComponent(loopbackOnly)}`, bin],
    (port) => ({ PORT: String(port) }),
  );
}
