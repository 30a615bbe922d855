//! Device records, signals, notices and endpoints as the Redis engines keep
//! them: JSON with times in Unix milliseconds, parsed back through the domain
//! rules so a corrupt value is reported, never trusted.

use serde::{Deserialize, Serialize};

use crate::domain::presence::{Capability, Device, DeviceId, NetworkId, SignalAddress};
use crate::domain::queue::SignalBody;
use crate::domain::signal::{Expired, Notice, Outgoing, Queued, SignalKind};
use crate::domain::{ConnId, UserId};
use crate::store::devices::Endpoint;
use crate::store::redis::{millis, time, valid};
use std::time::SystemTime;

/// A device record as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct DeviceJson {
    id: String,
    user: String,
    network: String,
    signal_address: String,
    capabilities: Vec<String>,
    coordinator: bool,
    last_seen: u64,
    online: bool,
    created_at: u64,
}

impl From<&Device> for DeviceJson {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.to_string(),
            user: d.user.to_string(),
            network: d.network.to_string(),
            signal_address: d.signal_address.to_string(),
            capabilities: d.capabilities.iter().map(|c| c.name().to_owned()).collect(),
            coordinator: d.coordinator,
            last_seen: millis(d.last_seen),
            online: d.online,
            created_at: millis(d.created_at),
        }
    }
}

impl DeviceJson {
    pub(super) fn into_device(self) -> Result<Device, String> {
        Ok(Device {
            id: valid(&self.id, DeviceId::parse)?,
            user: valid(&self.user, UserId::parse)?,
            network: valid(&self.network, NetworkId::parse)?,
            signal_address: valid(&self.signal_address, SignalAddress::parse)?,
            capabilities: self.capabilities.iter().map(|c| valid(c, Capability::parse)).collect::<Result<_, _>>()?,
            coordinator: self.coordinator,
            last_seen: time(self.last_seen),
            online: self.online,
            created_at: time(self.created_at),
        })
    }
}

/// A queued signal as stored; `id` is given (and spliced in) by the enqueue
/// script. `bytes` (its body's weight), `sender_user` and `to` are what the
/// scripts read to take it off the budgets when it leaves; `data` is the
/// body's text as received. Entries written before owners and budgets have
/// no `bytes`, `sender_user` or `owner`: they weigh nothing on the budgets,
/// and belong to the device ids themselves (the open server's users), so
/// they stay readable there and expire as usual instead of failing to decode.
#[derive(Serialize, Deserialize)]
pub(super) struct SignalJson {
    #[serde(skip_serializing)]
    id: u64,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    sender_user: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    kind: String,
    from: String,
    to: String,
    data: SignalBody,
    queued_at: u64,
}

impl SignalJson {
    pub(super) fn new(signal: &Outgoing, now: SystemTime) -> Self {
        Self {
            id: 0,
            bytes: signal.data.len(),
            sender_user: Some(signal.sender_user.to_string()),
            owner: Some(signal.owner.to_string()),
            kind: signal.kind.name().to_owned(),
            from: signal.from.to_string(),
            to: signal.to.to_string(),
            data: signal.data.clone(),
            queued_at: millis(now),
        }
    }

    pub(super) fn into_queued(self) -> Result<Queued, String> {
        let signal = Outgoing {
            kind: kind(&self.kind)?,
            from: valid(&self.from, DeviceId::parse)?,
            sender_user: valid(self.sender_user.as_deref().unwrap_or(&self.from), UserId::parse)?,
            to: valid(&self.to, DeviceId::parse)?,
            owner: valid(self.owner.as_deref().unwrap_or(&self.to), UserId::parse)?,
            data: self.data,
        };
        Ok(Queued { id: self.id, signal, queued_at: time(self.queued_at) })
    }
}

/// An expiry notice as stored; `id` is given (and spliced in) by the expire script.
#[derive(Serialize, Deserialize)]
pub(super) struct NoticeJson {
    #[serde(skip_serializing)]
    id: u64,
    sender: String,
    /// Absent in notices written before owners: the sender device's id.
    #[serde(default)]
    sender_user: Option<String>,
    to: String,
    kind: String,
    queued_at: u64,
}

impl From<&Expired> for NoticeJson {
    fn from(e: &Expired) -> Self {
        Self {
            id: 0,
            sender: e.sender.to_string(),
            sender_user: Some(e.sender_user.to_string()),
            to: e.to.to_string(),
            kind: e.kind.name().to_owned(),
            queued_at: millis(e.queued_at),
        }
    }
}

impl NoticeJson {
    pub(super) fn into_notice(self) -> Result<Notice, String> {
        let expired = Expired {
            sender: valid(&self.sender, DeviceId::parse)?,
            sender_user: valid(self.sender_user.as_deref().unwrap_or(&self.sender), UserId::parse)?,
            to: valid(&self.to, DeviceId::parse)?,
            kind: kind(&self.kind)?,
            queued_at: time(self.queued_at),
        };
        Ok(Notice { id: self.id, expired })
    }
}

/// An endpoint as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct EndpointJson {
    instance: String,
    conn: String,
}

impl From<&Endpoint> for EndpointJson {
    fn from(at: &Endpoint) -> Self {
        Self { instance: at.instance.to_string(), conn: at.conn.as_str().to_owned() }
    }
}

impl EndpointJson {
    pub(super) fn into_endpoint(self) -> Result<Endpoint, String> {
        Ok(Endpoint { instance: self.instance.into(), conn: ConnId::new(&self.conn) })
    }
}

fn kind(raw: &str) -> Result<SignalKind, String> {
    SignalKind::parse(raw).ok_or_else(|| format!("{raw:?} is no signal kind"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue written by the version before owners and budgets still decodes
    /// (an error here stopped every expiry sweep).
    #[test]
    fn entries_from_before_owners_decode_as_the_device_ids_own() {
        let old = r#"{"id":7,"kind":"offer","from":"peer_a","to":"peer_b","data":{"sdp":"v=0"},"queued_at":1000}"#;
        let queued = serde_json::from_str::<SignalJson>(old).unwrap().into_queued().unwrap();
        assert_eq!(
            (queued.id, queued.signal.owner.as_str(), queued.signal.sender_user.as_str()),
            (7, "peer_b", "peer_a")
        );
        let notice = r#"{"id":2,"sender":"peer_a","to":"peer_b","kind":"answer","queued_at":1000}"#;
        let notice = serde_json::from_str::<NoticeJson>(notice).unwrap().into_notice().unwrap();
        assert_eq!(notice.expired.sender_user.as_str(), "peer_a");
    }
}
