// The lobby: the live room directory of `/dashboard` (seed 001), creating a
// room (optionally one that needs the host's approval), knocking, and the
// host's admit/deny prompt. The call itself stays on `/` (app.js).
//
// How a room with approval is used, with the server as it is:
// - The host creates it on `/dashboard` (`room-created`, seated there as
//   host), then joins it on `/` under the same userId: the seat, and with it
//   the host's role, moves to the `/` connection (a rejoin takes the seat).
// - A joiner knocks on `/dashboard` (`join-request`) and waits there for
//   `join-approved` / `join-rejected`; once approved, its `join-room` on `/`
//   under the same userId is let in.
// - The host gets `join-request` on whichever connection holds its seat
//   (`/dashboard` for the moment between creating and joining, `/` after),
//   and must answer on that connection, or the server says `not-host`.

const ROOMS_CHANNEL = 'webrtc-dashboard-rooms';
const ACK_TIMEOUT_MS = 10000;
const MAX_ROOM_NAME = 100;

/**
 * Wires the lobby panel. `socket` is the `/dashboard` socket, `callSocket`
 * the `/` one; `me()` is the userId the user chose; `call()` is
 * { roomId, joined, busy } of the call; `join(roomId, userId, { create })`
 * starts a call (creating the room first when `create` is given);
 * `setStatus(text)` reports to the page's status line.
 */
export function createLobby({ socket, callSocket, ui, me, call, join, setStatus }) {
  const state = {
    /** The last pushed list, as the server sent it. */
    rooms: [],
    listed: false,
    /** The knock under way or last decided: { roomId, userId, status, reason }. */
    knock: null,
    /** Join requests waiting for this host's answer: { roomId, userId, userName }. */
    requests: [],
  };
  /** roomId -> the list item's elements (kept, so focus and screen readers are not disturbed). */
  const items = new Map();

  const ask = (on, event, payload) =>
    on
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck(event, payload)
      .catch(() => ({ ok: false, error: { code: 'timeout', message: 'no answer from the server' } }));
  const why = (ack) => `${ack?.error?.code}: ${ack?.error?.message}`;
  const roomName = (roomId) => state.rooms.find((r) => r.id === roomId)?.name ?? roomId;

  // -------------------------------------------------------------------------
  // the directory

  socket.on('connect', () => {
    // Again after every reconnect: subscriptions end with the connection.
    ask(socket, 'subscribe', { channel: ROOMS_CHANNEL }).then((ack) => {
      if (!ack.ok) console.warn(`lobby subscribe: ${why(ack)}`);
    });
    render();
  });
  socket.on('disconnect', () => {
    // The server dropped any seat or request this connection held.
    state.requests = state.requests.filter((r) => r.via !== socket);
    render();
  });
  socket.on('server-room-list', ({ rooms } = {}) => {
    if (!Array.isArray(rooms)) return;
    state.rooms = rooms;
    state.listed = true;
    render();
  });

  // -------------------------------------------------------------------------
  // creating a room: join() calls create() once media is ready

  /** `room-created` with this user as host; resolves to the ack. */
  function create(roomId, userId, { name, requiresApproval }) {
    return ask(socket, 'room-created', { id: roomId, name, hostId: userId, host: userId, requiresApproval });
  }

  /** Gives up the seat `create` took here, when the call did not go on. */
  function abandon(roomId) {
    ask(socket, 'user-left-room', { roomId });
  }

  ui.createForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.createName.value.trim().slice(0, MAX_ROOM_NAME);
    if (!name) return;
    ui.createName.value = '';
    join(newRoomId(name), me(), { create: { name, requiresApproval: ui.createApproval.checked } });
  });

  // -------------------------------------------------------------------------
  // knocking

  function enter(room) {
    const userId = me();
    const { joined, busy } = call();
    if (joined || busy) return;
    if (!userId) {
      setStatus('Choose a display name first.');
      return;
    }
    if (!room.requiresApproval || room.hostId === userId) {
      join(room.id, userId);
      return;
    }
    const knock = { roomId: room.id, userId, status: 'asking', reason: null };
    state.knock = knock;
    setStatus(`Asking the host of ${room.name ?? room.id} to let you in…`);
    render();
    ask(socket, 'join-request', { roomId: room.id, userId, userName: userId }).then((ack) => {
      if (state.knock !== knock || knock.status !== 'asking') return;
      if (!ack.ok) {
        decided(knock, false, null, `Could not knock on ${roomName(knock.roomId)} (${why(ack)}).`);
      } else if (ack.status === 'approved') {
        decided(knock, true);
      } else {
        knock.status = 'pending';
        setStatus(`Waiting for the host of ${roomName(knock.roomId)} to let you in…`);
        render();
      }
    });
  }

  for (const [event, approved] of [['join-approved', true], ['join-rejected', false]]) {
    socket.on(event, ({ roomId, userId, reason } = {}) => {
      const knock = state.knock;
      if (!knock || knock.roomId !== roomId || knock.userId !== userId) return;
      if (knock.status !== 'asking' && knock.status !== 'pending') return;
      decided(knock, approved, reason ?? null);
    });
  }

  function decided(knock, approved, reason = null, failure = null) {
    knock.status = approved ? 'approved' : failure ? 'failed' : 'rejected';
    knock.reason = reason;
    const name = roomName(knock.roomId);
    if (approved) {
      join(knock.roomId, knock.userId);
    } else if (failure) {
      setStatus(failure);
    } else if (reason === 'timeout') {
      setStatus(`The host of ${name} did not answer in time; you were not let in.`);
    } else if (reason === 'room-closed') {
      setStatus(`${name} closed before the host answered.`);
    } else {
      setStatus(`The host of ${name} turned you away.`);
    }
    render();
  }

  // -------------------------------------------------------------------------
  // the host's prompt

  for (const via of [socket, callSocket]) {
    via.on('join-request', ({ roomId, userId, userName } = {}) => {
      if (typeof roomId !== 'string' || typeof userId !== 'string') return;
      state.requests = state.requests.filter((r) => r.roomId !== roomId || r.userId !== userId);
      state.requests.push({ roomId, userId, userName: userName || userId, via });
      render();
    });
  }

  /** Answers a request on the connection holding the host's seat (the other one if that says `not-host`). */
  async function answer(request, approve) {
    const { roomId, userId } = request;
    state.requests = state.requests.filter((r) => r.roomId !== roomId || r.userId !== userId);
    render();
    const inCall = call().joined && call().roomId === roomId;
    const order = inCall ? [callSocket, socket] : [socket, callSocket];
    const event = approve ? 'join-approved' : 'join-rejected';
    let ack;
    for (const on of order) {
      ack = await ask(on, event, { roomId, userId });
      if (ack.ok || ack.error?.code !== 'not-host') break;
    }
    if (ack.ok) setStatus(approve ? `You let ${request.userName} in.` : `You turned ${request.userName} away.`);
    else setStatus(`Could not answer ${request.userName} (${why(ack)}).`);
  }

  /** The call ended: this user holds no host seat any more, so nothing can be answered. */
  function callEnded() {
    state.requests = [];
  }

  // -------------------------------------------------------------------------
  // rendering

  function render() {
    renderRooms();
    renderRequests();
    const { joined, busy } = call();
    ui.create.disabled = joined || busy || !socket.connected;
    ui.lobbyState.textContent = !socket.connected
      ? 'Connecting to the room directory…'
      : !state.listed
        ? 'Loading rooms…'
        : state.rooms.length === 0
          ? 'No rooms yet: create one.'
          : `${state.rooms.length} ${state.rooms.length === 1 ? 'room' : 'rooms'}`;
  }

  function renderRooms() {
    const { roomId: current, joined, busy } = call();
    const seen = new Set();
    state.rooms.forEach((room, at) => {
      seen.add(room.id);
      let item = items.get(room.id);
      if (!item) {
        item = roomItem();
        items.set(room.id, item);
      }
      const name = room.name ?? room.id;
      const count = room.participantCount ?? room.participants?.length ?? 0;
      const here = (joined || busy) && current === room.id;
      const waiting = ['asking', 'pending'].includes(state.knock?.status) && state.knock.roomId === room.id;
      const knocks = room.requiresApproval && room.hostId !== me();
      item.root.dataset.room = room.id;
      set(item.name, name);
      item.badge.hidden = !room.requiresApproval;
      set(item.meta, `${room.host ? `hosted by ${room.host}, ` : ''}${count} ${count === 1 ? 'person' : 'people'}`);
      set(item.button, here ? 'You are here' : waiting ? 'Waiting…' : knocks ? 'Knock' : 'Join');
      item.button.setAttribute('aria-label', `${knocks ? 'Knock to join' : 'Join'} ${name}`);
      item.button.disabled = joined || busy || waiting || !socket.connected;
      item.button.onclick = () => enter(room);
      if (ui.rooms.children[at] !== item.root) ui.rooms.insertBefore(item.root, ui.rooms.children[at] ?? null);
    });
    for (const [id, item] of items) {
      if (!seen.has(id)) {
        item.root.remove();
        items.delete(id);
      }
    }
  }

  function roomItem() {
    const root = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'room-name';
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'needs approval';
    const meta = document.createElement('span');
    meta.className = 'room-meta';
    const button = document.createElement('button');
    button.type = 'button';
    root.append(name, ' ', badge, ' ', meta, ' ', button);
    return { root, name, badge, meta, button };
  }

  function renderRequests() {
    const list = state.requests.map((request) => {
      const li = document.createElement('li');
      li.dataset.user = request.userId;
      li.dataset.room = request.roomId;
      const text = document.createElement('span');
      text.textContent = `${request.userName} asks to join ${roomName(request.roomId)}`;
      const admit = document.createElement('button');
      admit.type = 'button';
      admit.className = 'admit';
      admit.textContent = 'Admit';
      admit.setAttribute('aria-label', `Admit ${request.userName}`);
      admit.onclick = () => answer(request, true);
      const deny = document.createElement('button');
      deny.type = 'button';
      deny.className = 'deny';
      deny.textContent = 'Deny';
      deny.setAttribute('aria-label', `Deny ${request.userName}`);
      deny.onclick = () => answer(request, false);
      li.append(text, ' ', admit, ' ', deny);
      return li;
    });
    const same =
      list.length === ui.requests.children.length &&
      list.every((li, i) => li.textContent === ui.requests.children[i].textContent);
    if (!same) ui.requests.replaceChildren(...list);
    ui.requestsPanel.hidden = list.length === 0;
  }

  /** Read-only view for tests and the console. */
  function view() {
    return {
      connected: socket.connected,
      listed: state.listed,
      rooms: state.rooms.map((r) => ({
        id: r.id,
        name: r.name ?? r.id,
        hostId: r.hostId ?? null,
        requiresApproval: Boolean(r.requiresApproval),
        participantCount: r.participantCount,
      })),
      knock: state.knock && { ...state.knock },
      requests: state.requests.map(({ roomId, userId, userName }) => ({ roomId, userId, userName })),
    };
  }

  return { create, abandon, callEnded, render, view };
}

/** Sets an element's text only when it changes. */
function set(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** A room id from its name: a readable slug and a random suffix. */
function newRoomId(name) {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `${slug || 'room'}-${suffix}`;
}
