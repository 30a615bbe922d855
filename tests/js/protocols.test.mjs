// Operations across protocols: /health lists the protocols served, /metrics
// counts connections and messages per protocol, and PROTOCOLS switches
// protocols off (their endpoints answer 404 JSON; the others keep working).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { TIMEOUT_MS, connect, emitWithAck, getJson, metricSample, rawSocket, startServer } from './server.mjs';
import { waitUntil } from './processes.mjs';

const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0);
});

async function server(extraEnv = {}) {
  const s = await startServer({ extraEnv });
  servers.push(s);
  return s;
}

const ws = (s, path) => s.url.replace('http', 'ws') + path;
const peerjs = (s, id) => rawSocket(ws(s, `/peerjs/peerjs?key=peerjs&id=${id}&token=t-${id}`), {}, id);

/** The value of one sample line of /metrics; a sample that is missing fails. */
async function sample(s, line) {
  const value = await metricSample(s.url, line);
  assert.ok(!Number.isNaN(value), `${line} missing from /metrics`);
  return value;
}

/** What an upgrade request to `path` gets: 101, or the HTTP status it is refused with. */
function upgradeStatus(s, path) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${s.url}${path}`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('upgrade', (_res, socket) => (socket.destroy(), resolve(101)));
    req.on('response', (res) => (res.resume(), resolve(res.statusCode)));
    req.on('error', reject);
    req.end();
  });
}

test('/health lists every protocol by default', async () => {
  const s = await server();
  const { body } = await getJson(s.url, '/health');
  assert.deepEqual(body.protocols, ['socket.io', 'seed-000', 'seed-001', 'seed-004', 'peerjs', 'y-webrtc']);
});

test('/metrics counts connections and messages per protocol', async () => {
  const s = await server();
  const before = await sample(s, 'switchboard_protocol_messages_total{protocol="peerjs"}');
  const a = peerjs(s, 'm-a');
  await a.waitFor('OPEN');
  const socket = await connect(s.url);
  assert.equal(await sample(s, 'switchboard_protocol_connections{protocol="peerjs"}'), 1);
  assert.equal(await sample(s, 'switchboard_protocol_connections{protocol="socket.io"}'), 1);
  assert.equal(await sample(s, 'switchboard_protocol_connections_total{protocol="peerjs"}'), 1);
  a.send({ type: 'HEARTBEAT' });
  a.send({ type: 'OFFER', dst: 'nobody', payload: {} });
  a.send({ type: 'HEARTBEAT' });
  const messages = () => sample(s, 'switchboard_protocol_messages_total{protocol="peerjs"}');
  await waitUntil(async () => (await messages()) >= before + 3, 'three peerjs messages counted');
  a.ws.close();
  socket.close();
  const open = () => sample(s, 'switchboard_protocol_connections{protocol="peerjs"}');
  await waitUntil(async () => (await open()) === 0, 'the closed peerjs connection counted out');
});

test('PROTOCOLS=peerjs serves PeerJS alone: socket.io and the seeds answer 404', async () => {
  const s = await server({ PROTOCOLS: 'peerjs' });
  const { body } = await getJson(s.url, '/health');
  assert.deepEqual(body.protocols, ['peerjs']);
  const polling = await fetch(`${s.url}/socket.io/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  assert.equal(polling.status, 404);
  assert.equal((await polling.json()).error.code, 'not-found');
  for (const path of ['/signaling/dev_1', '/dashboard/ws', '/', '/?organizationId=o&clientId=c', '/y-webrtc']) {
    assert.equal(await upgradeStatus(s, path), 404, path);
  }
  const a = peerjs(s, 'only');
  await a.waitFor('OPEN');
  a.ws.close();
});

test('PROTOCOLS without peerjs: its REST and socket answer 404, socket.io works', async () => {
  const s = await server({ PROTOCOLS: 'socket.io,seed-004' });
  assert.equal((await fetch(`${s.url}/peerjs/peerjs/id`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).status, 404);
  assert.equal(await upgradeStatus(s, '/peerjs/peerjs?key=peerjs&id=x&token=y'), 404);
  assert.equal(await upgradeStatus(s, '/signaling/dev_1'), 101);
  const socket = await connect(s.url);
  assert.equal((await emitWithAck(socket, 'join-room', { roomId: 'switch', userId: 'u1' })).ok, true, 'socket.io serves events');
  socket.close();
});

test('socket.io events count as socket.io messages', async () => {
  const s = await server();
  const before = await sample(s, 'switchboard_protocol_messages_total{protocol="socket.io"}');
  const socket = await connect(s.url);
  await emitWithAck(socket, 'join-room', { roomId: 'metrics', userId: 'u1' });
  assert.equal(await sample(s, 'switchboard_protocol_messages_total{protocol="socket.io"}'), before + 1);
  socket.close();
});

test('WebSocket upgrades are connections, not REST requests: REST_BURST does not refuse them', async () => {
  const s = await server({ REST_REQUESTS_PER_SECOND: '1', REST_BURST: '2' });
  const peers = Array.from({ length: 6 }, (_, i) => peerjs(s, `burst-${i}`));
  await Promise.all(peers.map((p) => p.waitFor('OPEN')));
  const rest = [];
  for (let i = 0; i < 4; i += 1) rest.push((await fetch(`${s.url}/peerjs/peerjs/id`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).status);
  assert.ok(rest.includes(429), `REST past the burst is still limited: ${rest}`);
  // Upgrade headers on a REST route buy nothing: the route, not the headers, is a socket's.
  assert.equal(await upgradeStatus(s, '/peerjs/peerjs/id'), 429);
  assert.equal(await upgradeStatus(s, '/api/rooms'), 429);
  for (const p of peers) p.ws.close();
});
