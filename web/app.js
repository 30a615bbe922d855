// The switchboard demo call: a mesh of RTCPeerConnections, one per other
// participant, signaled through switchboard (signaling contract v1).
//
// Who offers: the newcomer. On join, the joiner gets `room-users` and sends an
// offer to every participant already there; those answer. Nobody offers on
// `user-joined`, so two peers never offer to each other at once (no glare).
// ICE candidates trickle through `ice-candidate`; `candidate: null` is the
// end-of-candidates signal. Each offerer opens a data channel for the chat.
//
// A signaling blip does not end the call. When the connection drops without a
// deliberate disconnect (a network change, a transport error, a ping timeout),
// the server holds our seat for its grace (RESUME_GRACE_MS), keeps the relays
// sent to us, and tells the peers nothing. The page keeps its
// RTCPeerConnections and media (the chat goes on over the data channels),
// holds the relays it makes meanwhile, and when socket.io reconnects re-joins
// with the same userId. On that `room-users` (our place in the join order is
// kept) it drops the peers that left while it was away and the calls that
// failed, offers only where there is no call left (to those who were there
// before it, as a newcomer does, and where a call failed; who came while it
// was away offers to it), then sends the held relays; live calls are not
// renegotiated. Leaving, closing the page or being disconnected by the server
// ends the call at once.
//
// The lobby (lobby.js) lists the rooms live from `/dashboard`, creates rooms
// (optionally needing the host's approval), knocks, and shows the host's
// admit/deny prompt; joining from it starts the same call.
//
// Query parameters: room, name (prefill), autojoin=1 (join on load),
// transport=polling or transport=websocket (only that transport; default:
// socket.io-client's own choice), media=generated (skip the camera).

import { io } from '/socket.io/socket.io.esm.min.js';
import { getLocalMedia } from './media.js';
import { createLobby } from './lobby.js';

const MAX_ID_LENGTH = 128;
const ACK_TIMEOUT_MS = 10000;

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const ui = {
  form: $('join-form'),
  room: $('room'),
  name: $('name'),
  join: $('join'),
  leave: $('leave'),
  status: $('status'),
  participants: $('participants'),
  noParticipants: $('no-participants'),
  tiles: $('tiles'),
  localVideo: $('local-video'),
  localState: $('local-state'),
  messages: $('messages'),
  chatForm: $('chat-form'),
  message: $('message'),
  send: $('send'),
  lobbyState: $('lobby-state'),
  rooms: $('rooms'),
  createForm: $('create-form'),
  createName: $('create-name'),
  createApproval: $('create-approval'),
  create: $('create'),
  requestsPanel: $('requests-panel'),
  requests: $('requests'),
};

const state = {
  /** The room and name the user asked for; kept across reconnects. */
  wanted: null,
  /** The room this connection is in (or joining), and our userId there. */
  roomId: null,
  me: null,
  joined: false,
  /**
   * The server has us in `roomId` on this connection. After a blip the call
   * goes on (`joined`) but we are not seated until the re-join: relays wait.
   */
  seated: false,
  /** Relays made while not seated, in order: { peer, event, body }. */
  unsent: [],
  /** A join is under way (ICE servers, media, waiting for the ack). */
  busy: false,
  generation: 0,
  /** userIds in join order, ourselves included. */
  participants: [],
  /** userId -> peer (see createPeer). */
  peers: new Map(),
  messages: [],
  /** The last `ice-servers` event: { iceServers, ttlSeconds }. */
  eventIce: null,
  /** The ICE servers the current call's connections use. */
  rtcIceServers: [],
  /** { stream, source, stop } while in a call. */
  media: null,
};

// ---------------------------------------------------------------------------
// socket.io

const transport = params.get('transport');
const transportOptions = transport === 'polling' || transport === 'websocket' ? { transports: [transport] } : {};
const socket = io(transportOptions);
// The room directory, multiplexed with `/` over the same engine.io connection.
const lobbySocket = io('/dashboard', transportOptions);
const lobby = createLobby({
  socket: lobbySocket,
  callSocket: socket,
  ui,
  me: () => ui.name.value.trim(),
  call: () => ({ roomId: state.roomId, joined: state.joined, busy: state.busy }),
  join: (roomId, userId, options) => join(roomId, userId, options),
  setStatus,
});

socket.on('connect', () => {
  setStatus(`Connected (${socket.io.engine.transport.name}).`);
  if (state.wanted && !state.seated && !state.busy) {
    join(state.wanted.roomId, state.wanted.userId);
  }
});

socket.on('disconnect', (reason) => {
  const deliberate = reason === 'io client disconnect' || reason === 'io server disconnect';
  if (deliberate || !state.joined) {
    // The server removed us from the room; peers were told `user-left`.
    endCall({ keepWanted: true });
    setStatus(`Disconnected (${reason}). ${socket.active ? 'Reconnecting…' : ''}`);
    return;
  }
  // A blip: the server holds our seat; the call goes on until we are back.
  state.generation += 1;
  state.busy = false;
  state.seated = false;
  render();
  setStatus(`Signaling connection lost (${reason}); the call goes on. Reconnecting…`);
});

socket.on('connect_error', (err) => {
  setStatus(`Cannot reach the server: ${err.message}`);
});

socket.on('ice-servers', (data) => {
  if (data && Array.isArray(data.iceServers)) state.eventIce = data;
});

socket.on('room-users', ({ roomId, users } = {}) => {
  if (roomId !== state.roomId || !Array.isArray(users)) return;
  state.participants = [...users];
  state.seated = true;
  // Back from a blip: peers that left meanwhile (their `user-left` went to the
  // old connection) and calls that failed are dropped; live calls go on.
  const ended = new Set();
  for (const peer of [...state.peers.values()]) {
    if (!users.includes(peer.id) || !alive(peer)) {
      ended.add(peer.id);
      closePeer(peer);
    }
  }
  // We are the newcomer to those listed before us (on a first join, everyone
  // here): offer to them. Who came while we were away offers to us.
  const mine = users.includes(state.me) ? users.indexOf(state.me) : users.length;
  users.forEach((id, at) => {
    if (id !== state.me && !state.peers.has(id) && (at < mine || ended.has(id))) {
      sendOffer(createPeer(id, true));
    }
  });
  sendUnsent();
  render();
});

socket.on('user-joined', ({ roomId, userId } = {}) => {
  if (roomId !== state.roomId || userId === state.me) return;
  // Joined again from a new connection: the old call with them is stale; the
  // newcomer sends a fresh offer.
  const stale = state.peers.get(userId);
  if (stale) closePeer(stale);
  if (!state.participants.includes(userId)) state.participants.push(userId);
  render();
});

socket.on('user-left', ({ roomId, userId } = {}) => {
  if (roomId !== state.roomId) return;
  state.participants = state.participants.filter((id) => id !== userId);
  const peer = state.peers.get(userId);
  if (peer) closePeer(peer);
  render();
});

socket.on('offer', ({ roomId, senderId, offer } = {}) => {
  if (roomId !== state.roomId || !state.media || !offer) return;
  const stale = state.peers.get(senderId);
  if (stale) closePeer(stale);
  const peer = createPeer(senderId, false);
  if (!state.participants.includes(senderId)) state.participants.push(senderId);
  render();
  enqueue(peer, async () => {
    await peer.pc.setRemoteDescription(offer);
    const answer = await peer.pc.createAnswer();
    await peer.pc.setLocalDescription(answer);
    relay(peer, 'answer', { answer: descriptionJson(peer.pc.localDescription) });
    descriptionSent(peer);
  });
});

socket.on('answer', ({ roomId, senderId, answer } = {}) => {
  const peer = state.peers.get(senderId);
  if (roomId !== state.roomId || !peer || !peer.initiator || !answer) return;
  enqueue(peer, () => peer.pc.setRemoteDescription(answer));
});

socket.on('ice-candidate', ({ roomId, senderId, candidate } = {}) => {
  const peer = state.peers.get(senderId);
  if (roomId !== state.roomId || !peer) return;
  enqueue(peer, async () => {
    try {
      // null: the remote side has gathered all its candidates.
      await peer.pc.addIceCandidate(candidate ?? undefined);
    } catch (err) {
      if (candidate) throw err;
      // An end-of-candidates signal the browser does not take is harmless.
    }
  });
});

socket.on('signaling-error', ({ event, code, message } = {}) => {
  console.warn(`signaling-error on ${event}: ${code} ${message}`);
});

/**
 * Sends `event` with `body` to `peer`; while not seated (after a blip) it waits
 * in `unsent`, in order. A failed ack is logged (the target may have just left).
 */
function relay(peer, event, body) {
  if (!state.seated) {
    state.unsent.push({ peer, event, body });
    return;
  }
  socket.timeout(ACK_TIMEOUT_MS).emit(event, { roomId: state.roomId, targetId: peer.id, ...body }, (err, ack) => {
    if (err) console.warn(`${event} to ${peer.id}: no ack`);
    else if (!ack?.ok) console.warn(`${event} to ${peer.id}: ${ack?.error?.code} ${ack?.error?.message}`);
  });
}

/** Sends the relays held while not seated, in order, to the peers still in the call. */
function sendUnsent() {
  for (const { peer, event, body } of state.unsent.splice(0)) {
    if (!peer.closed) relay(peer, event, body);
  }
}

// ---------------------------------------------------------------------------
// joining and leaving

function validId(value) {
  // eslint-disable-next-line no-control-regex
  return value.length > 0 && value.length <= MAX_ID_LENGTH && !/[\u0000-\u001f\u007f-\u009f]/.test(value);
}

/**
 * Joins `roomId` as `userId`; with `create` ({ name, requiresApproval }),
 * creates it first as its host. During a call, only its re-join after a blip
 * (same room and userId, not seated) goes through, and keeps the call.
 */
async function join(roomId, userId, { create } = {}) {
  if (state.busy || state.seated) return;
  if (state.joined && (roomId !== state.roomId || userId !== state.me)) return;
  if (!validId(roomId) || !validId(userId)) {
    setStatus(`Room and name must be 1 to ${MAX_ID_LENGTH} characters, without control characters.`);
    return;
  }
  // Leaving or a disconnect bumps the generation: a join still under way
  // from before then stops at its next step.
  const gen = ++state.generation;
  state.busy = true;
  state.wanted = { roomId, userId };
  renderControls();
  setStatus(`Joining ${roomId}…`);
  try {
    const iceServers = await fetchIceServers(userId);
    if (gen !== state.generation) return;
    state.rtcIceServers = iceServers;
    if (!state.media) {
      const media = await getLocalMedia({ forceGenerated: params.get('media') === 'generated' });
      // Keep it for a rejoin under way, unless one got its own meanwhile.
      if (state.media || !state.wanted) media.stop();
      else setMedia(media);
      if (gen !== state.generation) return;
    }
  } catch (err) {
    if (gen !== state.generation) return;
    state.busy = false;
    renderControls();
    setStatus(`Cannot start the call: ${err.message}`);
    return;
  }
  if (create) {
    // Seated as host on /dashboard; the join-room below moves the seat here.
    const made = await lobby.create(roomId, userId, create);
    if (gen !== state.generation) {
      if (made.ok) lobby.abandon(roomId);
      return;
    }
    if (!made.ok) {
      endCall();
      setStatus(`Could not create ${create.name} (${made.error?.code}: ${made.error?.message}).`);
      return;
    }
  }
  if (!state.joined) {
    state.roomId = roomId;
    state.me = userId;
    state.participants = [userId];
  }
  render();
  // A synchronous ack callback: it runs in order with the events around it.
  socket.timeout(ACK_TIMEOUT_MS).emit('join-room', { roomId, userId }, (err, ack) => {
    if (gen !== state.generation) return;
    state.busy = false;
    if (err || !ack?.ok) {
      const why = err ? 'no answer from the server' : `${ack?.error?.code}: ${ack?.error?.message}`;
      if (create) lobby.abandon(roomId);
      endCall();
      setStatus(`Could not join ${roomId} (${why}).`);
      return;
    }
    state.joined = true;
    state.seated = true;
    sendUnsent();
    render();
    setStatus(`In room ${roomId} as ${userId}.`);
  });
}

function setMedia(media) {
  state.media = media;
  ui.localVideo.srcObject = media.stream;
  ui.localState.textContent = media.source === 'camera' ? 'camera and microphone' : 'generated test stream';
}

function leave() {
  if (state.roomId && socket.connected) {
    socket.timeout(ACK_TIMEOUT_MS).emit('leave-room', { roomId: state.roomId }, () => {});
  }
  const roomId = state.roomId;
  state.wanted = null;
  endCall();
  setStatus(roomId ? `Left ${roomId}.` : 'Not in a room.');
}

/** Closes every peer and forgets the room; stops local media unless rejoining. */
function endCall({ keepWanted = false } = {}) {
  state.generation += 1;
  for (const peer of [...state.peers.values()]) closePeer(peer);
  state.roomId = null;
  state.joined = false;
  state.seated = false;
  state.unsent = [];
  state.busy = false;
  state.participants = [];
  // Whatever host seat this page held is gone: no request can be answered.
  lobby.callEnded();
  if (!keepWanted) {
    state.wanted = null;
    state.media?.stop();
    state.media = null;
    ui.localVideo.srcObject = null;
    ui.localState.textContent = 'no media';
  }
  render();
}

/** The ICE servers for `userId` (TURN credentials are bound to it). */
async function fetchIceServers(userId) {
  try {
    const res = await fetch(`/api/ice-servers?userId=${encodeURIComponent(userId)}`, {
      signal: AbortSignal.timeout(5000),
    });
    const body = await res.json();
    if (res.ok && Array.isArray(body.iceServers)) return body.iceServers;
    console.warn(`/api/ice-servers: ${res.status} ${JSON.stringify(body)}`);
  } catch (err) {
    console.warn(`/api/ice-servers: ${err.message}`);
  }
  return state.eventIce?.iceServers ?? [];
}

// ---------------------------------------------------------------------------
// peers

/**
 * A peer: { id, initiator, pc, dc, chain, sent, pendingCandidates, tile }.
 * `chain` runs this peer's signaling steps one after another, in the order
 * their messages arrived.
 */
function createPeer(id, initiator) {
  const pc = new RTCPeerConnection({ iceServers: state.rtcIceServers });
  const peer = {
    id,
    initiator,
    pc,
    dc: null,
    chain: Promise.resolve(),
    sent: false,
    pendingCandidates: [],
    closed: false,
    tile: createTile(id),
  };
  state.peers.set(id, peer);

  for (const track of state.media.stream.getTracks()) pc.addTrack(track, state.media.stream);

  pc.onicecandidate = ({ candidate }) => {
    const json = candidate ? candidate.toJSON() : null;
    // Candidates go out after the description they belong to.
    if (peer.sent) sendCandidate(peer, json);
    else peer.pendingCandidates.push(json);
  };
  pc.ontrack = ({ streams, track }) => {
    const video = peer.tile.video;
    const stream = streams[0] ?? new MediaStream([track]);
    if (video.srcObject !== stream) {
      video.srcObject = stream;
      playVideo(peer);
    }
  };
  pc.onconnectionstatechange = () => renderPeer(peer);
  pc.oniceconnectionstatechange = () => renderPeer(peer);

  if (initiator) setupChannel(peer, pc.createDataChannel('chat'));
  else pc.ondatachannel = ({ channel }) => setupChannel(peer, channel);

  renderPeer(peer);
  return peer;
}

function sendOffer(peer) {
  enqueue(peer, async () => {
    const offer = await peer.pc.createOffer();
    await peer.pc.setLocalDescription(offer);
    relay(peer, 'offer', { offer: descriptionJson(peer.pc.localDescription) });
    descriptionSent(peer);
  });
}

function descriptionJson(desc) {
  return { type: desc.type, sdp: desc.sdp };
}

function descriptionSent(peer) {
  peer.sent = true;
  for (const candidate of peer.pendingCandidates.splice(0)) sendCandidate(peer, candidate);
}

function sendCandidate(peer, candidate) {
  if (peer.closed || !state.roomId) return;
  relay(peer, 'ice-candidate', { candidate });
}

function enqueue(peer, step) {
  peer.chain = peer.chain
    .then(() => (peer.closed ? undefined : step()))
    .catch((err) => console.error(`peer ${peer.id}: ${err.name}: ${err.message}`));
}

/** Whether the call with `peer` can go on by itself: neither it nor its chat channel failed or closed. */
function alive(peer) {
  return !['failed', 'closed'].includes(peer.pc.connectionState) && !['closing', 'closed'].includes(peer.dc?.readyState);
}

function closePeer(peer) {
  peer.closed = true;
  peer.dc?.close();
  peer.pc.close();
  peer.tile.root.remove();
  if (state.peers.get(peer.id) === peer) state.peers.delete(peer.id);
  renderParticipants();
}

function setupChannel(peer, channel) {
  peer.dc = channel;
  channel.onopen = channel.onclose = () => {
    renderPeer(peer);
    renderControls();
  };
  channel.onmessage = ({ data }) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg?.type === 'chat' && typeof msg.text === 'string') addMessage(peer.id, msg.text.slice(0, 1000));
  };
  renderPeer(peer);
}

// ---------------------------------------------------------------------------
// chat

/** Sends `text` to every open data channel; returns how many got it. */
function sendChat(text) {
  const clean = String(text).trim().slice(0, 1000);
  if (!clean || !state.joined) return 0;
  let count = 0;
  for (const peer of state.peers.values()) {
    if (peer.dc?.readyState === 'open') {
      peer.dc.send(JSON.stringify({ type: 'chat', text: clean }));
      count += 1;
    }
  }
  addMessage(state.me, clean, true);
  return count;
}

function addMessage(from, text, self = false) {
  const message = { from, text, self, at: new Date().toISOString() };
  state.messages.push(message);
  const li = document.createElement('li');
  li.className = self ? 'self' : '';
  const who = document.createElement('strong');
  who.className = 'from';
  who.textContent = self ? `${from} (you)` : from;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(who, ': ', body);
  ui.messages.append(li);
  li.scrollIntoView({ block: 'nearest' });
}

// ---------------------------------------------------------------------------
// rendering

function setStatus(text) {
  ui.status.textContent = text;
}

function createTile(id) {
  const root = document.createElement('figure');
  root.className = 'tile';
  root.dataset.peer = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute('aria-label', `Video from ${id}`);
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = id;
  const stateText = document.createElement('span');
  stateText.className = 'state';
  caption.append(name, ' ', stateText);
  root.append(video, caption);
  ui.tiles.append(root);
  return { root, video, caption, stateText };
}

/** Plays a remote video; if autoplay with sound is refused, muted plus a button. */
function playVideo(peer) {
  const { video, caption } = peer.tile;
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
    if (caption.querySelector('button')) return;
    const unmute = document.createElement('button');
    unmute.type = 'button';
    unmute.textContent = 'Unmute';
    unmute.setAttribute('aria-label', `Unmute ${peer.id}`);
    unmute.onclick = () => {
      video.muted = false;
      unmute.remove();
    };
    caption.append(' ', unmute);
  });
}

function peerSummary(peer) {
  const { connectionState, iceConnectionState } = peer.pc;
  return `${connectionState} (ICE ${iceConnectionState}), chat ${peer.dc?.readyState ?? 'waiting'}`;
}

function renderPeer(peer) {
  if (peer.closed) return;
  peer.tile.stateText.textContent = peerSummary(peer);
  peer.tile.root.dataset.state = peer.pc.connectionState;
  renderParticipants();
}

function renderParticipants() {
  const items = state.participants.map((id) => {
    const li = document.createElement('li');
    li.dataset.user = id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = id === state.me ? `${id} (you)` : id;
    li.append(name);
    const peer = state.peers.get(id);
    if (id !== state.me) {
      const st = document.createElement('span');
      st.className = 'peer-state';
      st.textContent = peer ? peer.pc.connectionState : 'waiting for offer';
      li.append(' ', st);
    }
    return li;
  });
  ui.participants.replaceChildren(...items);
  ui.noParticipants.hidden = items.length > 0;
}

function renderControls() {
  const inCall = state.joined || state.busy;
  ui.join.disabled = inCall;
  ui.room.disabled = inCall;
  ui.name.disabled = inCall;
  ui.leave.disabled = !inCall;
  const canChat = state.joined;
  ui.message.disabled = !canChat;
  ui.send.disabled = !canChat;
}

function render() {
  renderParticipants();
  renderControls();
  lobby.render();
}

// ---------------------------------------------------------------------------
// wiring

ui.room.value = params.get('room') ?? 'demo';
ui.name.value = params.get('name') ?? `guest-${Math.floor(Math.random() * 9000 + 1000)}`;

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  join(ui.room.value.trim(), ui.name.value.trim());
});
ui.leave.addEventListener('click', leave);
ui.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  sendChat(ui.message.value);
  ui.message.value = '';
});
ui.name.addEventListener('input', () => lobby.render());
window.addEventListener('pagehide', () => {
  socket.close();
  lobbySocket.close();
});

render();
if (params.get('autojoin') === '1') {
  join(ui.room.value.trim(), ui.name.value.trim());
}

/** Read-only views of the call, and `send`, for tests and the console. */
window.switchboardDemo = Object.freeze({
  me: () => state.me,
  roomId: () => state.roomId,
  joined: () => state.joined,
  /** In the room on the current connection (false during a blip, until the re-join). */
  seated: () => state.seated,
  connected: () => socket.connected,
  transport: () => socket.io.engine?.transport?.name ?? null,
  participants: () => [...state.participants],
  peers: () =>
    [...state.peers.values()].map((p) => ({
      id: p.id,
      initiator: p.initiator,
      connectionState: p.pc.connectionState,
      iceConnectionState: p.pc.iceConnectionState,
      dataChannelState: p.dc?.readyState ?? null,
    })),
  messages: () => state.messages.map((m) => ({ ...m })),
  iceServers: () => structuredClone(state.rtcIceServers),
  eventIceServers: () => structuredClone(state.eventIce),
  mediaSource: () => state.media?.source ?? null,
  send: (text) => sendChat(text),
  /** The lobby: { connected, rooms, knock, requests }. */
  lobby: () => lobby.view(),
});
