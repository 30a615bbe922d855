// The Node original, for the benchmark: an Express + socket.io 4.8 signaling
// server as seed 003 describes it, implementing signaling contract v1
// (../../../shared/contract/signaling-v1.md) the way a Node team would:
// rooms in a Map, socket.io rooms for broadcasts, direct emits for relays,
// acks when the client asks for one and `signaling-error` otherwise.
//
// It exists to be measured beside switchboard by bench/compare, under the same
// load and the same configuration (PORT, HOST, CLIENT_URL, MAX_ROOM_SIZE,
// MAX_PAYLOAD_BYTES). It is not part of the product.

import { createServer } from 'node:http';
import express from 'express';
import cors from 'cors';
import { Server } from 'socket.io';

const PORT = Number(process.env.PORT ?? 4000);
const HOST = process.env.HOST ?? '0.0.0.0';
const CLIENT_URL = (process.env.CLIENT_URL || 'http://localhost:3000').split(',').map((s) => s.trim());
const MAX_ROOM_SIZE = Number(process.env.MAX_ROOM_SIZE ?? 64);
const MAX_PAYLOAD_BYTES = Number(process.env.MAX_PAYLOAD_BYTES ?? 65536);
const PING_INTERVAL_MS = Number(process.env.PING_INTERVAL_MS ?? 25000);
const PING_TIMEOUT_MS = Number(process.env.PING_TIMEOUT_MS ?? 20000);
const started = Date.now();

/** roomId -> { createdAt: Date, users: Map<userId, socketId> } (Map keeps join order). */
const rooms = new Map();

const app = express();
app.use(cors({ origin: CLIENT_URL, credentials: true }));
const httpServer = createServer(app);
const io = new Server(httpServer, {
  cors: { origin: CLIENT_URL, credentials: true },
  maxHttpBufferSize: MAX_PAYLOAD_BYTES,
  pingInterval: PING_INTERVAL_MS,
  pingTimeout: PING_TIMEOUT_MS,
  serveClient: false,
});

const roomJson = (id, room) => ({
  id,
  participants: [...room.users.keys()],
  participantCount: room.users.size,
  createdAt: room.createdAt.toISOString(),
});
const httpError = (res, status, code, message) => res.status(status).json({ error: { code, message } });

app.get('/health', (_req, res) => {
  res.json({
    status: 'ok',
    connections: io.engine.clientsCount,
    rooms: rooms.size,
    uptimeSeconds: Math.floor((Date.now() - started) / 1000),
    version: '0.0.0',
    adapter: 'memory',
  });
});

app.get('/api/rooms', (req, res) => {
  const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
  const offset = req.query.offset === undefined ? 0 : Number(req.query.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000 || !Number.isInteger(offset) || offset < 0) {
    return httpError(res, 400, 'invalid-query', 'limit must be 1 to 1000 and offset 0 or more');
  }
  const all = [...rooms].sort(([a, ra], [b, rb]) => ra.createdAt - rb.createdAt || (a < b ? -1 : a > b ? 1 : 0));
  res.json({ rooms: all.slice(offset, offset + limit).map(([id, r]) => roomJson(id, r)), total: rooms.size });
});

app.get('/api/rooms/:roomId', (req, res) => {
  const room = rooms.get(req.params.roomId);
  if (!room) return httpError(res, 404, 'room-not-found', 'no such room');
  res.json(roomJson(req.params.roomId, room));
});

app.use((_req, res) => httpError(res, 404, 'not-found', 'no such route'));

// ---- signaling ----

const validId = (v) =>
  typeof v === 'string' && v.length > 0 && [...v].length <= 128 && !/[\u0000-\u001f\u007f-\u009f]/.test(v);
const isObject = (p) => p !== null && typeof p === 'object' && !Array.isArray(p);
const fail = (code, message) => ({ ok: false, error: { code, message } });
const RELAYS = { offer: 'offer', answer: 'answer', 'ice-candidate': 'candidate' };
const KNOWN = new Set(['join-room', 'leave-room', ...Object.keys(RELAYS)]);

function answer(socket, event, ack, result) {
  if (typeof ack === 'function') ack(result);
  else if (!result.ok) socket.emit('signaling-error', { event, ...result.error });
}

function join(socket, p) {
  if (!isObject(p) || !validId(p.roomId) || !validId(p.userId)) {
    return fail('invalid-payload', 'roomId and userId must be non-empty strings of at most 128 characters');
  }
  const { roomId, userId } = p;
  const mine = socket.data.rooms.get(roomId);
  if (mine !== undefined && mine !== userId) return fail('invalid-payload', 'already in this room: leave-room first');
  let room = rooms.get(roomId);
  if (mine === undefined) {
    const holder = room?.users.get(userId);
    if (holder === undefined && room && room.users.size >= MAX_ROOM_SIZE) {
      return fail('room-full', `the room holds at most ${MAX_ROOM_SIZE} participants`);
    }
    if (!room) {
      room = { createdAt: new Date(), users: new Map() };
      rooms.set(roomId, room);
    }
    if (holder !== undefined) {
      // Same userId from a new connection: it takes the seat over.
      const old = io.sockets.sockets.get(holder);
      old?.data.rooms.delete(roomId);
      old?.leave(roomId);
    }
    room.users.set(userId, socket.id);
    socket.data.rooms.set(roomId, userId);
    socket.to(roomId).emit('user-joined', { roomId, userId });
    socket.join(roomId);
  }
  const users = [...room.users.keys()];
  socket.emit('room-users', { roomId, users });
  return { ok: true, roomId, users };
}

function leave(socket, roomId) {
  const userId = socket.data.rooms.get(roomId);
  const room = rooms.get(roomId);
  if (userId === undefined || !room) return false;
  socket.data.rooms.delete(roomId);
  socket.leave(roomId);
  room.users.delete(userId);
  if (room.users.size === 0) rooms.delete(roomId);
  else socket.to(roomId).emit('user-left', { roomId, userId });
  return true;
}

function relay(socket, event, p) {
  const field = RELAYS[event];
  if (!isObject(p) || !validId(p.roomId) || !validId(p.targetId) || !(field in p)) {
    return fail('invalid-payload', `roomId, targetId and ${field} are required`);
  }
  if (p[field] === null && field !== 'candidate') return fail('invalid-payload', `${field} must not be null`);
  const senderId = socket.data.rooms.get(p.roomId);
  if (senderId === undefined) return fail('not-in-room', 'join the room first');
  const targetSid = rooms.get(p.roomId)?.users.get(p.targetId);
  const target = targetSid && io.sockets.sockets.get(targetSid);
  if (!target) return fail('target-not-found', 'no such user in this room');
  target.emit(event, { roomId: p.roomId, senderId, [field]: p[field] });
  return { ok: true };
}

io.on('connection', (socket) => {
  socket.data.rooms = new Map();
  socket.on('join-room', (p, ack) => answer(socket, 'join-room', ack, join(socket, p)));
  socket.on('leave-room', (p, ack) => {
    const result = !isObject(p) || !validId(p.roomId)
      ? fail('invalid-payload', 'roomId must be a non-empty string of at most 128 characters')
      : leave(socket, p.roomId) ? { ok: true, roomId: p.roomId } : fail('not-in-room', 'not in this room');
    answer(socket, 'leave-room', ack, result);
  });
  for (const event of Object.keys(RELAYS)) {
    socket.on(event, (p, ack) => answer(socket, event, ack, relay(socket, event, p)));
  }
  socket.onAny((event, ...args) => {
    if (KNOWN.has(event)) return;
    const ack = args.at(-1);
    answer(socket, event, ack, fail('invalid-payload', `unknown event ${event}`));
  });
  socket.on('disconnect', () => {
    for (const roomId of [...socket.data.rooms.keys()]) leave(socket, roomId);
  });
});

httpServer.listen(PORT, HOST, () => {
  const { address, port } = httpServer.address();
  console.log(`listening addr=${address}:${port}`);
});

const stop = () => io.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
