//! A device's connection and its mail: one connection per device (a new one
//! turns the older out, wherever it is), and one delivery loop per
//! connection that pushes the device's queue in id order, then its expiry
//! notices, each to be confirmed. A signal leaves the queue only when the
//! device confirms it, so a drop mid-delivery loses nothing: the unconfirmed
//! rest comes again on the next connection. A push unconfirmed within
//! `SIGNAL_ACK_TIMEOUT_MS` is pushed again on the same connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::core::event::Event;
use crate::core::link::{Confirmed, Link};
use crate::core::{Core, CoreError};
use crate::domain::presence::DeviceId;
use crate::domain::signal::{Notice, Queued};
use crate::domain::{ConnId, UserId, unix_ms};
use crate::store::StoreError;
use crate::store::devices::{Endpoint, Wake};

/// Signals and notices pushed to a connection and not yet confirmed, at most.
const WINDOW: usize = 32;
/// How long delivery waits before asking the store again after it failed.
const RETRY: Duration = Duration::from_secs(1);
/// How often an idle connection's mail is read even without a wake-up (a
/// wake-up published while an instance was reconnecting to Redis is lost).
const RECHECK: Duration = Duration::from_secs(30);

/// The device connections of this instance, each with the signal that wakes its delivery.
#[derive(Default)]
pub struct Mailboxes(DashMap<DeviceId, (ConnId, Arc<Notify>)>);

impl Mailboxes {
    fn wake(&self, device: &DeviceId) {
        if let Some(entry) = self.0.get(device) {
            entry.1.notify_one();
        }
    }

    fn wake_all(&self) {
        for entry in self.0.iter() {
            entry.1.notify_one();
        }
    }
}

/// Puts the endpoints of this instance's device connections back where
/// Redis lost them (or survivors dropped them), and wakes every local
/// device to read its mail; how many were put back.
pub async fn restore_endpoints(core: &Arc<Core>) -> Result<usize, StoreError> {
    let held: Vec<(DeviceId, ConnId)> =
        core.mailboxes.0.iter().map(|e| (e.key().clone(), e.value().0.clone())).collect();
    let mut restored = 0;
    for (device, conn) in held {
        let at = Endpoint { instance: core.instance.clone(), conn };
        if core.stores.devices.endpoints.restore(&device, at).await? {
            restored += 1;
        }
    }
    core.mailboxes.wake_all();
    Ok(restored)
}

/// One device's connection on this instance.
pub struct Mailbox {
    core: Arc<Core>,
    device: DeviceId,
    /// The connection's user (its token's, with JWT on): it is pushed only
    /// while the device is that user's.
    user: Option<UserId>,
    endpoint: Endpoint,
    /// Woken when the device has mail, a confirmation frees the window, or the connection closes.
    wake: Arc<Notify>,
    closed: AtomicBool,
    in_flight: AtomicUsize,
    /// The lowest signal and notice ids whose push went unconfirmed in time
    /// (`u64::MAX`: none): delivery pushes from there again.
    rewind: [AtomicU64; 2],
}

/// What is next to push.
enum Mail {
    Signal(Queued),
    Notice(Notice),
}

impl Mailbox {
    /// Takes `device`'s seat for connection `conn`: the mailbox, and the
    /// device's older connection (still live somewhere) to turn out.
    pub async fn open(
        core: &Arc<Core>,
        (device, user): (DeviceId, Option<UserId>),
        conn: ConnId,
    ) -> Result<(Self, Option<Endpoint>), CoreError> {
        let endpoint = Endpoint { instance: core.instance.clone(), conn };
        let old = core.stores.devices.endpoints.register(&device, endpoint.clone()).await;
        let old = old.map_err(|e| core.reported(e, "device connect"))?.filter(|old| old != &endpoint);
        let mailbox = Self {
            core: core.clone(),
            device,
            user,
            endpoint,
            wake: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            rewind: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        };
        Ok((mailbox, old))
    }

    /// The device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Pushes the device's mail through `link` until the connection closes
    /// or another connection takes the device; false in that last case (the
    /// connection should be told to go).
    pub async fn deliver(self: &Arc<Self>, link: Arc<dyn Link>) -> bool {
        let mailboxes = &self.core.mailboxes;
        mailboxes.0.insert(self.device.clone(), (self.endpoint.conn.clone(), self.wake.clone()));
        let (mut last_signal, mut last_notice) = (0, 0);
        while !self.closed.load(Ordering::Acquire) {
            let [signal_from, notice_from] = [0, 1].map(|i| self.rewind[i].swap(u64::MAX, Ordering::AcqRel));
            last_signal = last_signal.min(signal_from.saturating_sub(1));
            last_notice = last_notice.min(notice_from.saturating_sub(1));
            // Boxed: the loop waits idle far longer than it reads, and keeps its largest state.
            match Box::pin(self.mail(last_signal, last_notice)).await {
                Ok(None) => break,
                Ok(Some(mail)) => {
                    for item in mail {
                        if self.in_flight.load(Ordering::Acquire) >= WINDOW || !self.push(&link, &item) {
                            break;
                        }
                        match item {
                            Mail::Signal(q) => last_signal = q.id,
                            Mail::Notice(n) => last_notice = n.id,
                        }
                    }
                    let _ = tokio::time::timeout(RECHECK, self.wake.notified()).await;
                }
                Err(e) => {
                    drop(self.core.reported(e, "device delivery"));
                    let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                }
            }
        }
        mailboxes.0.remove_if(&self.device, |_, (conn, _)| *conn == self.endpoint.conn);
        self.closed.load(Ordering::Acquire)
    }

    /// The mail after the given ids, signals first, of the device's current
    /// owner only; `None` once this connection no longer holds the device,
    /// or the device belongs to another user than the connection's.
    async fn mail(&self, last_signal: u64, last_notice: u64) -> Result<Option<Vec<Mail>>, StoreError> {
        let devices = &self.core.stores.devices;
        let held = match devices.endpoints.endpoint(&self.device).await? {
            Some(at) => at == self.endpoint,
            // Redis lost it (or survivors dropped it while this instance was
            // taken for dead): this connection still holds the device.
            None => devices.endpoints.restore(&self.device, self.endpoint.clone()).await?,
        };
        if !held {
            debug!(device_id = %self.device, conn_id = %self.endpoint.conn, "delivery stops: the device is connected elsewhere");
            return Ok(None);
        }
        let Some(owner) = devices.presence.device(&self.device).await?.map(|d| d.user) else {
            // No record (open mode, never announced): nothing was queued for it.
            return Ok(Some(Vec::new()));
        };
        if self.user.as_ref().is_some_and(|user| user != &owner) {
            debug!(device_id = %self.device, "delivery stops: the device belongs to another user now");
            return Ok(None);
        }
        // Only what fits the window: a page, never the whole queue.
        let room = WINDOW.saturating_sub(self.in_flight.load(Ordering::Acquire));
        let signals = if room == 0 {
            Vec::new()
        } else {
            devices.queues.pending(&self.device, &owner, last_signal, room).await?
        };
        let notices = devices.queues.notices(&self.device, &owner).await?.into_iter().filter(|n| n.id > last_notice);
        Ok(Some(signals.into_iter().map(Mail::Signal).chain(notices.map(Mail::Notice)).collect()))
    }

    /// Pushes one item; its confirmation removes it from the store. False if
    /// the connection cannot take it now (it is pushed again later).
    fn push(self: &Arc<Self>, link: &Arc<dyn Link>, item: &Mail) -> bool {
        let (id, signal, event) = match item {
            Mail::Signal(q) => (
                q.id,
                true,
                Event::Signal {
                    id: q.id,
                    kind: q.signal.kind,
                    from: q.signal.from.clone(),
                    to: q.signal.to.clone(),
                    data: q.signal.data.clone(),
                    timestamp: unix_ms(q.queued_at),
                },
            ),
            Mail::Notice(n) => (
                n.id,
                false,
                Event::SignalExpired {
                    to: n.expired.to.clone(),
                    kind: n.expired.kind,
                    queued_at: unix_ms(n.expired.queued_at),
                },
            ),
        };
        let confirmation = match link.push(&event, self.core.config.presence.ack_timeout) {
            Ok(confirmation) => confirmation,
            Err(e) => {
                debug!(conn_id = %self.endpoint.conn, id, error = %e, "not pushed now");
                return false;
            }
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let mailbox = self.clone();
        tokio::spawn(async move {
            match confirmation.await {
                Confirmed::Yes => mailbox.confirmed(id, signal).await,
                Confirmed::TimedOut if !mailbox.closed.load(Ordering::Acquire) => {
                    // Still queued: pushed again from here (the device tells repeats by id).
                    debug!(device_id = %mailbox.device, id, signal, "not confirmed in time: pushed again");
                    mailbox.rewind[usize::from(!signal)].fetch_min(id, Ordering::AcqRel);
                }
                // The connection closed: it comes again on the next one.
                Confirmed::TimedOut | Confirmed::Closed => {}
            }
            mailbox.in_flight.fetch_sub(1, Ordering::AcqRel);
            mailbox.wake.notify_one();
        });
        true
    }

    async fn confirmed(&self, id: u64, signal: bool) {
        let queues = &self.core.stores.devices.queues;
        let removed =
            if signal { queues.remove(&self.device, id).await } else { queues.remove_notice(&self.device, id).await };
        if let Err(e) = removed {
            drop(self.core.reported(e, "device confirmation"));
        }
    }

    /// The connection closed: stop delivering and give up the device's seat.
    /// Runs once, whoever calls it first.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.wake.notify_one();
        let core = &self.core;
        core.mailboxes.0.remove_if(&self.device, |_, (conn, _)| *conn == self.endpoint.conn);
        if let Err(e) = core.stores.devices.endpoints.unregister(&self.device, &self.endpoint).await {
            drop(core.reported(e, "device disconnect"));
        }
    }
}

/// Forwards wake-ups from every instance to this instance's device connections. Runs until aborted.
pub async fn dispatch_wakes(core: Arc<Core>) {
    let mut wakes = core.stores.devices.endpoints.wakes();
    loop {
        match wakes.recv().await {
            Ok(Wake::Device(device)) => core.mailboxes.wake(&device),
            Ok(Wake::All) | Err(RecvError::Lagged(_)) => core.mailboxes.wake_all(),
            Err(RecvError::Closed) => return,
        }
    }
}
