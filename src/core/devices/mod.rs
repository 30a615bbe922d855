//! Devices (seed 004): presence announcements and discovery, and signals
//! stored and forwarded to devices whether or not they are connected. A
//! signal is queued in every case; the receiver's instance is woken to push
//! it if the receiver is connected anywhere ([`mailbox`]).
//!
//! Must not import `transport`, nor any socket.io or HTTP crate (as all of `core`).

pub mod mailbox;

use std::sync::Arc;
use std::time::SystemTime;

use tracing::info;

use super::{Core, CoreError};
use crate::domain::UserId;
use crate::domain::presence::{Announcement, Device, DeviceId, NetworkAccess, NetworkId, PeerLookup};
use crate::domain::queue::SignalBody;
use crate::domain::signal::{self, Outgoing, Queued, SignalKind};
use crate::metrics::SignalOutcome;

/// What became of a signal sent: delivered now (its receiver is connected
/// somewhere, and was woken) or queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The signal's id in its receiver's queue.
    pub id: u64,
    /// Whether the receiver is connected (it is pushed now).
    pub live: bool,
}

/// Most signals one `GET /signaling/messages` returns; the rest come with
/// the next page (`?after=` the last id read).
pub const MESSAGES_PAGE: usize = 100;

/// The device operations (a view over [`Core`]).
pub struct DeviceSignals<'a>(pub(super) &'a Arc<Core>);

impl DeviceSignals<'_> {
    /// Records an announcement into a network `access` allows, within the
    /// announcement limit; the device's record after it.
    pub async fn announce(&self, a: Announcement, access: &NetworkAccess) -> Result<Device, CoreError> {
        let core = self.0;
        // Before the limit is counted: a refused network uses up nothing.
        within(access, &a.network)?;
        let presence = &core.stores.devices.presence;
        // Counted per user and device, so another user's refused attempts on a
        // device id cannot use up its owner's allowance.
        let limit = core.config.presence.announce_limit;
        let refused = presence.take_announcement(&a.user, &a.device, limit).await;
        if let Some(wait) = refused.map_err(|e| core.reported(e, "announce"))? {
            return Err(CoreError::TooManyAnnouncements(wait));
        }
        // A device id changes hands only once its old owner's signals are gone
        // (taken or expired); even if this raced a signal, reads are per owner.
        // Checked unless the record is the announcer's own (it may be gone).
        let current = presence.device(&a.device).await.map_err(|e| core.reported(e, "announce"))?;
        if current.is_none_or(|d| d.user != a.user) {
            let waiting = core.stores.devices.queues.others_waiting(&a.device, &a.user).await;
            if waiting.map_err(|e| core.reported(e, "announce"))? {
                info!(device_id = %a.device, user_id = %a.user, "announcement refused: another user's signals wait for this device");
                return Err(CoreError::DeviceTakenWhileSignalsWait);
            }
        }
        let device = presence.announce(a, SystemTime::now()).await.map_err(|e| core.reported(e, "announce"))?;
        info!(network_id = %device.network, device_id = %device.id, user_id = %device.user, "device announced");
        Ok(device)
    }

    /// The devices of `network` (one `access` allows) online now, earliest first.
    pub async fn peers(&self, network: &NetworkId, access: &NetworkAccess) -> Result<Vec<Device>, CoreError> {
        within(access, network)?;
        let core = self.0;
        let ttl = core.config.presence.device_ttl;
        let peers = core.stores.devices.presence.peers(network, SystemTime::now(), ttl).await;
        Ok(peers.map_err(|e| core.reported(e, "peers"))?)
    }

    /// Where `user`'s device in `network` (one `access` allows) is, or the fallback coordinators.
    pub async fn find(
        &self,
        network: &NetworkId,
        user: &UserId,
        access: &NetworkAccess,
    ) -> Result<PeerLookup, CoreError> {
        within(access, network)?;
        let core = self.0;
        let ttl = core.config.presence.device_ttl;
        let found = core.stores.devices.presence.find_user(network, user, SystemTime::now(), ttl).await;
        Ok(found.map_err(|e| core.reported(e, "peer"))?)
    }

    /// With JWT on: whether `user` may act for `device` (announced it, and its record is live).
    pub async fn owned_by(&self, device: &DeviceId, user: &UserId) -> Result<(), CoreError> {
        let core = self.0;
        let record = core.stores.devices.presence.device(device).await.map_err(|e| core.reported(e, "device"))?;
        match record {
            Some(d) if &d.user == user && !d.is_expired(SystemTime::now()) => Ok(()),
            _ => Err(CoreError::NotYourDevice),
        }
    }

    /// Whose queue of `device` a reader reads: its record's owner (live or
    /// not). With JWT on (`user` given) only that owner may read it; without
    /// a record there is no owner, and nothing to read.
    pub async fn reader(&self, device: &DeviceId, user: Option<&UserId>) -> Result<Option<UserId>, CoreError> {
        let core = self.0;
        let record = core.stores.devices.presence.device(device).await.map_err(|e| core.reported(e, "messages"))?;
        match (record, user) {
            (Some(d), Some(user)) if &d.user == user => Ok(Some(d.user)),
            (_, Some(_)) => Err(CoreError::NotYourDevice),
            (record, None) => Ok(record.map(|d| d.user)),
        }
    }

    /// One page of `device`'s queue: at most [`MESSAGES_PAGE`] signals with
    /// ids above `after`, oldest first; unless `peek`, what was read is removed
    /// (only what this call removed is returned, so two readers never both get one).
    /// Only the signals queued for `owner` ([`Self::reader`]) are read.
    pub async fn messages(
        &self,
        (device, owner): (&DeviceId, &UserId),
        after: u64,
        peek: bool,
    ) -> Result<Vec<Queued>, CoreError> {
        let core = self.0;
        let queues = &core.stores.devices.queues;
        let page = queues.pending(device, owner, after, MESSAGES_PAGE).await;
        let mut messages = page.map_err(|e| core.reported(e, "messages"))?;
        if !peek && let Some(last) = messages.last() {
            // Up to what was read: a signal queued meanwhile stays.
            messages = queues.ack(device, owner, last.id).await.map_err(|e| core.reported(e, "messages"))?;
        }
        Ok(messages)
    }

    /// Removes `owner`'s signals of `device`'s queue up to `up_to` (confirmed); how many.
    pub async fn confirm(&self, (device, owner): (&DeviceId, &UserId), up_to: u64) -> Result<usize, CoreError> {
        let core = self.0;
        let removed = core.stores.devices.queues.ack(device, owner, up_to).await;
        Ok(removed.map_err(|e| core.reported(e, "confirm"))?.len())
    }

    /// Queues a signal from `from` to `to` (within one network, which
    /// `access` must allow) and wakes the receiver.
    pub async fn signal(
        &self,
        (from, access): (&DeviceId, &NetworkAccess),
        to: DeviceId,
        kind: SignalKind,
        data: SignalBody,
    ) -> Result<Sent, CoreError> {
        let core = self.0;
        let devices = &core.stores.devices;
        let now = SystemTime::now();
        let (sender, receiver) = tokio::join!(devices.presence.device(from), devices.presence.device(&to));
        let sender = sender.map_err(|e| core.reported(e, "signal"))?;
        let receiver = receiver.map_err(|e| core.reported(e, "signal"))?;
        signal::check_route(sender.as_ref(), receiver.as_ref(), now)?;
        let (Some(sender), Some(receiver)) = (sender, receiver) else {
            return Err(CoreError::Route(signal::RouteError::TargetNotFound));
        };
        // The route keeps it within the sender's network: that one must be allowed.
        within(access, &sender.network)?;
        // Stamped with both owners now: a later owner of either id reads neither.
        let outgoing = Outgoing { kind, from: from.clone(), sender_user: sender.user, to, owner: receiver.user, data };
        let budget = &core.config.presence.queue_budget;
        let queued = devices.queues.enqueue(outgoing, now, budget).await;
        let queued = queued.map_err(|e| core.reported(e, "signal"))?;
        let to = &queued.signal.to;
        let live = devices.endpoints.endpoint(to).await.map_err(|e| core.reported(e, "signal"))?.is_some();
        if let Err(e) = devices.endpoints.wake(to).await {
            // It is queued: the receiver gets it on its next connection.
            drop(core.reported(e, "signal wake-up"));
        }
        core.metrics.signal(if live { SignalOutcome::Delivered } else { SignalOutcome::Queued }, 1);
        let status = if live { "delivered" } else { "queued" };
        info!(device_id = %from, to_device_id = %to, kind = kind.name(), id = queued.id, status, "signal");
        Ok(Sent { id: queued.id, live })
    }
}

/// `NotInNetwork` unless `access` allows `network`.
fn within(access: &NetworkAccess, network: &NetworkId) -> Result<(), CoreError> {
    match access.allows(network) {
        true => Ok(()),
        false => Err(CoreError::NotInNetwork(network.as_str().to_owned())),
    }
}
