//! PeerJS (peerjs-server's behaviour, cluster-wide): registering an id (a
//! takeover by the same token closes the older connection wherever it is),
//! forwarding `{type, src, dst, payload}` to the id's connection here or on
//! another instance, queueing what is sent to an id not connected yet, and
//! the sweep that expires a queue `PEERJS_EXPIRE_TIMEOUT_MS` after its
//! oldest message, telling each sender once (`EXPIRE`).
//!
//! Only `HEARTBEAT` keeps a client alive: one silent for
//! `PEERJS_ALIVE_TIMEOUT_MS` is closed by the same sweep.
//!
//! A queue is swept by the instances whose connections sent to it (each
//! notes when it is due); what a dead instance queued is dropped with its
//! queue's Redis expiry, without an `EXPIRE` (its senders are gone too).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tracing::{debug, info, warn};

use super::Core;
use super::courier::DeliveryError;
use super::error::CoreError;
use super::event::Event;
use crate::domain::peerjs::{self, PeerId, PeerMessage, Waiting};
use crate::domain::rate::OncePerSecond;
use crate::domain::{ConnId, now_ms};
use crate::store::peerjs::{Claim, Expired, Holder};

/// This instance's PeerJS bookkeeping: the ids its connections hold (and
/// when each last sent `HEARTBEAT`), and when the queues it sent to are due
/// to expire. One sweep serves every connection: none keeps a timer of its own.
#[derive(Default)]
pub struct Registry {
    here: DashMap<ConnId, Local>,
    due: Mutex<HashMap<PeerId, u64>>,
}

/// A connection of this instance holding an id (with the token it was
/// registered with, to put it back if Redis loses it).
struct Local {
    id: PeerId,
    token: Arc<str>,
    /// Its last `HEARTBEAT` (or its opening), Unix ms.
    heartbeat: AtomicU64,
}

/// PeerJS operations over the core.
pub struct PeerJs<'a>(pub(super) &'a Arc<Core>);

impl PeerJs<'_> {
    fn registry(&self) -> &Registry {
        &self.0.peers
    }

    /// Registers `id` for connection `conn` with `token`; the older
    /// connection of a takeover is closed.
    pub async fn open(&self, id: &PeerId, token: &str, conn: &ConnId) -> Result<(), CoreError> {
        let core = self.0;
        let holder = Holder { token: Arc::from(token), conn: conn.clone(), instance: core.instance.clone() };
        let limit = core.config.peerjs.concurrent_limit;
        let claim = core.stores.peers.claim(id, &holder, limit).await.map_err(|e| core.reported(e, "peerjs open"))?;
        match claim {
            Claim::Taken => return Err(CoreError::IdTaken),
            Claim::Full => return Err(CoreError::ConcurrentLimit),
            Claim::Opened => {}
            Claim::TookOver(old) => {
                info!(peer_id = %id, conn_id = %conn, old_conn_id = %old, "peerjs id taken over by its token: the older connection is closed");
                if old != *conn {
                    core.courier.close(&old).await;
                }
            }
        }
        let heartbeat = AtomicU64::new(now_ms());
        self.registry().here.insert(conn.clone(), Local { id: id.clone(), token: holder.token, heartbeat });
        Ok(())
    }

    /// The messages that waited for `id`, oldest first, taken from its queue.
    pub async fn waiting(&self, id: &PeerId) -> Vec<PeerMessage> {
        match self.0.stores.peers.take(id).await {
            Ok(all) => all.into_iter().map(|w| w.message).collect(),
            Err(e) => {
                self.0.reported(e, "peerjs queue");
                Vec::new()
            }
        }
    }

    /// Frees the id `conn` held (it closed).
    pub async fn close(&self, conn: &ConnId) {
        let Some((_, Local { id, .. })) = self.registry().here.remove(conn) else { return };
        if let Err(e) = self.0.stores.peers.release(&id, conn).await {
            self.0.reported(e, "peerjs close");
        }
    }

    /// Forwards `message` (its `src` set by the transport) as peerjs-server does.
    pub async fn forward(&self, message: PeerMessage) {
        let core = self.0;
        let holder = match core.stores.peers.holder(&message.dst).await {
            Ok(holder) => holder,
            Err(e) => return drop(core.reported(e, "peerjs forward")),
        };
        let Some(holder) = holder else { return self.queue(message).await };
        let (src, dst, kind) = (message.src.clone(), message.dst.clone(), message.kind);
        let event = Event::PeerJs(message);
        match core.courier.send(&holder.conn, &event).await {
            Ok(()) => {}
            // Registered here, not attached yet: it reads its queue once it is.
            Err(DeliveryError::Gone) if self.registry().here.contains_key(&holder.conn) => {
                let Event::PeerJs(message) = event else { return };
                self.queue(message).await
            }
            Err(DeliveryError::Gone) => {
                // The id's connection is gone without its clean-up: free it, and
                // tell the sender to stop trying (peerjs-server's LEAVE).
                let _ = core.stores.peers.release(&dst, &holder.conn).await;
                if kind != peerjs::Forwarded::Leave {
                    self.send_if_here(PeerMessage::leave(src, dst)).await;
                }
            }
            Err(e) => {
                static WARNING: OncePerSecond = OncePerSecond::new();
                if WARNING.ready(now_ms()) {
                    warn!(peer_id = %dst, error = %e, "a PeerJS message was not delivered: its destination is not reading, or Redis is away (logged at most once a second)");
                }
            }
        }
    }

    /// A message for an id not connected: queued (not `LEAVE`/`EXPIRE`,
    /// which are dropped), and handed over at once if the id connected meanwhile.
    async fn queue(&self, message: PeerMessage) {
        let core = self.0;
        if !message.kind.waits() {
            return debug!(peer_id = %message.dst, kind = message.kind.as_str(), "a PeerJS message to an absent id was dropped, as peerjs-server does");
        }
        let config = &core.config.peerjs;
        let (at, dst, src) = (now_ms(), message.dst.clone(), message.src.clone());
        let keep = config.expire_timeout * 2 + Duration::from_secs(60);
        match core.stores.peers.enqueue(&Waiting { message, at }, config.queue_max, keep).await {
            Ok(true) => {}
            Ok(false) => {
                info!(peer_id = %dst, "a PeerJS destination has PEERJS_QUEUE_MAX messages waiting: the sender gets EXPIRE");
                return self.send_if_here(PeerMessage::expire(src, dst)).await;
            }
            Err(e) => return drop(core.reported(e, "peerjs queue")),
        }
        let deadline = at + config.expire_timeout.as_millis() as u64;
        self.registry().due.lock().unwrap_or_else(|p| p.into_inner()).entry(dst.clone()).or_insert(deadline);
        // The id may have connected (and read its queue) since it was looked up;
        // a connection of this instance still opening reads it itself once attached.
        let opening = |holder: &Holder| {
            self.registry().here.contains_key(&holder.conn) && core.courier.local(&holder.conn).is_none()
        };
        if let Ok(Some(holder)) = core.stores.peers.holder(&dst).await
            && !opening(&holder)
        {
            for message in self.waiting(&dst).await {
                let _ = core.courier.send(&holder.conn, &Event::PeerJs(message)).await;
            }
        }
    }

    /// Delivers `message` if its destination is connected; drops it otherwise.
    async fn send_if_here(&self, message: PeerMessage) {
        let core = self.0;
        if let Ok(Some(holder)) = core.stores.peers.holder(&message.dst).await {
            let _ = core.courier.send(&holder.conn, &Event::PeerJs(message)).await;
        }
    }

    /// Expires the queues due by now: each sender gets one `EXPIRE` per destination.
    pub async fn sweep(&self) {
        let now = now_ms();
        let due: Vec<PeerId> = {
            let mut map = self.registry().due.lock().unwrap_or_else(|p| p.into_inner());
            let due: Vec<PeerId> = map.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
            for id in &due {
                map.remove(id);
            }
            due
        };
        let timeout = self.0.config.peerjs.expire_timeout.as_millis() as u64;
        for dst in due {
            match self.0.stores.peers.expire(&dst, now.saturating_sub(timeout)).await {
                Ok(Expired::Taken(waited)) => {
                    for expire in peerjs::expiries(&waited) {
                        self.send_if_here(expire).await;
                    }
                }
                Ok(Expired::Since(at)) => {
                    self.registry().due.lock().unwrap_or_else(|p| p.into_inner()).insert(dst, at + timeout);
                }
                Ok(Expired::Empty) => {}
                Err(e) => {
                    self.0.reported(e, "peerjs expiry");
                    self.registry().due.lock().unwrap_or_else(|p| p.into_inner()).insert(dst, now + timeout);
                }
            }
        }
    }

    /// Puts back the ids of this instance's live connections where Redis
    /// lost them; a connection whose id someone else holds now is closed. How many went back.
    pub async fn restore(&self) -> Result<usize, crate::store::StoreError> {
        let holder = |conn: &ConnId, token: &Arc<str>| Holder {
            token: token.clone(),
            conn: conn.clone(),
            instance: self.0.instance.clone(),
        };
        let mine: Vec<(ConnId, PeerId, Holder)> =
            self.registry().here.iter().map(|e| (e.key().clone(), e.id.clone(), holder(e.key(), &e.token))).collect();
        let mut restored = 0;
        for (conn, id, holder) in mine {
            if self.0.stores.peers.restore(&id, &holder).await? {
                restored += 1;
            } else {
                warn!(peer_id = %id, conn_id = %conn, "a PeerJS id lost while Redis was away is held by another connection now: this one is closed");
                self.registry().here.remove(&conn);
                self.0.courier.close(&conn).await;
            }
        }
        Ok(restored)
    }

    /// `conn` sent `HEARTBEAT`: it is alive.
    pub fn heartbeat(&self, conn: &ConnId) {
        if let Some(local) = self.registry().here.get(conn) {
            local.heartbeat.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Closes this instance's connections that sent no `HEARTBEAT` for `PEERJS_ALIVE_TIMEOUT_MS`.
    pub async fn sweep_silent(&self) {
        let cutoff = now_ms().saturating_sub(self.0.config.peerjs.alive_timeout.as_millis() as u64);
        let silent: Vec<(ConnId, PeerId)> = (self.registry().here.iter())
            .filter(|e| e.heartbeat.load(Ordering::Relaxed) <= cutoff)
            .map(|e| (e.key().clone(), e.id.clone()))
            .collect();
        for (conn, id) in silent {
            info!(conn_id = %conn, peer_id = %id, "peerjs client closed: no HEARTBEAT within PEERJS_ALIVE_TIMEOUT_MS");
            self.0.courier.close(&conn).await;
        }
    }
}

/// The sweeps, about once a second (as peerjs-server's): queues that
/// expired, clients silent too long. Runs until aborted.
pub async fn run(core: Arc<Core>) {
    let config = &core.config.peerjs;
    let period = (config.expire_timeout / 2).min(config.alive_timeout / 4).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        core.peerjs().sweep().await;
        core.peerjs().sweep_silent().await;
    }
}
