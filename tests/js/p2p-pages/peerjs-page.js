// Driver of peerjs.html, called by peerjs-browser.test.mjs through
// page.evaluate: one Peer, its DataConnections, everything they received.

window.p2p = (() => {
  let peer = null;
  let openedId = null;
  const errors = [];
  /** Each DataConnection with what it saw: { conn, open, closed, received, errors }. */
  const conns = [];

  function track(conn) {
    const entry = { conn, open: false, closed: false, received: [], errors: [] };
    conns.push(entry);
    conn.on('open', () => {
      entry.open = true;
    });
    conn.on('data', (data) => entry.received.push(data));
    conn.on('close', () => {
      entry.closed = true;
    });
    conn.on('error', (err) => entry.errors.push(`${err.type}: ${err.message}`));
    return entry;
  }

  return {
    /**
     * Creates the Peer: `id` (null: ask the server for one) and the options
     * host, port, path, key. No STUN/TURN servers: host candidates on
     * loopback only, nothing leaves the machine.
     */
    start(id, { host, port, path, key }) {
      const options = { host, port, path, key, secure: false, debug: 2, config: { iceServers: [] } };
      peer = id === null ? new peerjs.Peer(options) : new peerjs.Peer(id, options);
      peer.on('open', (got) => {
        openedId = got;
      });
      peer.on('connection', track);
      peer.on('error', (err) => errors.push(`${err.type}: ${err.message}`));
    },

    /** Opens a DataConnection to `id`. */
    connect(id) {
      track(peer.connect(id, { reliable: true }));
    },

    /** Sends `data` on the open DataConnection with `id`. */
    send(id, data) {
      const entry = conns.find((c) => c.conn.peer === id && c.open && !c.closed);
      if (!entry) throw new Error(`no open DataConnection with ${id}`);
      entry.conn.send(data);
    },

    /** Closes the Peer and its connections. */
    destroy() {
      peer?.destroy();
    },

    /** What the page knows, as JSON. */
    state() {
      return {
        id: peer?.id ?? null,
        openedId,
        open: peer?.open ?? false,
        disconnected: peer?.disconnected ?? null,
        destroyed: peer?.destroyed ?? null,
        errors,
        conns: conns.map((c) => ({
          peer: c.conn.peer,
          open: c.open,
          closed: c.closed,
          received: c.received,
          errors: c.errors,
          channel: c.conn.dataChannel?.readyState ?? null,
          connection: c.conn.peerConnection?.connectionState ?? null,
        })),
      };
    },
  };
})();
