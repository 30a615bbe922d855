// A TCP proxy on a free port of 127.0.0.1 for tests that model a network
// change: a client uses the proxy as its server; `cut()` destroys every piped
// TCP connection at once (both sides: the server sees its peer vanish, with no
// WebSocket close frame and no engine.io or socket.io packet), and can point
// the proxy at another upstream first, so the client's reconnect lands there,
// or leave the network down (new connections dropped) until `restore()`.

import net from 'node:net';

import { withTimeout } from './server.mjs';

/**
 * Starts a proxy to 127.0.0.1:`upstreamPort`. Resolves { port, url,
 * upstream(), open(), accepted(), cut({ to, down }), restore(to), close() }:
 * `open()` is how many client connections are piped now, `accepted()` how
 * many were piped in all; `cut()` returns how many it destroyed.
 */
export async function startProxy(upstreamPort) {
  let upstream = upstreamPort;
  let accepted = 0;
  let down = false;
  /** Every piped pair still open: [client, server]. */
  const pairs = new Set();
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    accepted += 1;
    const remote = net.connect({ host: '127.0.0.1', port: upstream });
    const pair = [client, remote];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      remote.destroy();
    };
    client.on('error', end);
    remote.on('error', end);
    client.on('close', end);
    remote.on('close', end);
    client.pipe(remote);
    remote.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    upstream: () => upstream,
    open: () => pairs.size,
    accepted: () => accepted,
    /**
     * Destroys every piped connection. `to`: the upstream of the connections
     * that come next; `down`: drop them until `restore()`.
     */
    cut({ to, down: stayDown = false } = {}) {
      if (to !== undefined) upstream = to;
      down = stayDown;
      const n = pairs.size;
      for (const [client, remote] of [...pairs]) {
        client.destroy();
        remote.destroy();
      }
      pairs.clear();
      return n;
    },
    /** Pipes new connections again (to the upstream `to`, if given). */
    restore(to) {
      if (to !== undefined) upstream = to;
      down = false;
    },
    async close() {
      this.cut({ down: true });
      await withTimeout(new Promise((resolve) => server.close(resolve)), 5000, 'the proxy did not close');
    },
  };
}
