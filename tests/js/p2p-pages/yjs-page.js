// Driver of yjs.html, called by ywebrtc-browser.test.mjs through
// page.evaluate: one Y.Doc shared in one room through a WebrtcProvider.

window.p2p = (() => {
  let doc = null;
  let provider = null;

  return {
    /**
     * Joins `room` with `signaling` (a ws:// URL) as the only signaling
     * server; `password` (optional) encrypts the signaling messages. No
     * STUN/TURN servers: host candidates on loopback only.
     */
    start(room, signaling, password) {
      doc = new Y.Doc();
      provider = new WebrtcProvider(room, doc, {
        signaling: [signaling],
        password: password ?? null,
        peerOpts: { config: { iceServers: [] } },
      });
    },

    /** Appends `text` to the shared Y.Text "text". */
    insertText(text) {
      const ytext = doc.getText('text');
      ytext.insert(ytext.length, text);
    },

    /** Sets `key` to `value` in the shared Y.Map "map". */
    setMap(key, value) {
      doc.getMap('map').set(key, value);
    },

    /**
     * Leaves the room and closes the signaling connection: y-webrtc 10.3.0's
     * destroy() alone leaves the websocket open (only disconnect() closes a
     * signaling connection no other provider uses).
     */
    destroy() {
      provider?.disconnect();
      provider?.destroy();
    },

    /** What the page knows, as JSON. */
    state() {
      const room = provider?.room ?? null;
      return {
        signaling: (provider?.signalingConns ?? []).map((c) => ({ url: c.url, connected: c.connected })),
        peerId: room?.peerId ?? null,
        webrtcPeers: room
          ? [...room.webrtcConns].map(([id, c]) => ({ id, connected: c.connected, synced: c.synced, closed: c.closed }))
          : [],
        bcPeers: room ? [...room.bcConns] : [],
        text: doc ? doc.getText('text').toString() : null,
        map: doc ? doc.getMap('map').toJSON() : null,
      };
    },
  };
})();
