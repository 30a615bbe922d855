//! PeerJS's rules (peerjs-server 1.0.2 is the reference): the ids peers
//! register, the message types the server forwards, what waits for an id
//! not connected yet, and when it expires.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Longest id (characters): peerjs-server has no bound; switchboard's.
pub const MAX_PEER_ID_CHARS: usize = 128;

/// A peer's id, as the client chose it (or `GET {path}/{key}/id` gave it):
/// 1 to [`MAX_PEER_ID_CHARS`] characters, none a control character.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId(Arc<str>);

/// An id that breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a PeerJS id is 1 to {MAX_PEER_ID_CHARS} characters, none a control character")]
pub struct BadPeerId;

impl PeerId {
    /// Checks `raw` against the rule.
    pub fn parse(raw: &str) -> Result<Self, BadPeerId> {
        let chars = raw.chars().count();
        if chars == 0 || chars > MAX_PEER_ID_CHARS || raw.chars().any(char::is_control) {
            return Err(BadPeerId);
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PeerId {
    type Error = BadPeerId;
    fn try_from(raw: String) -> Result<Self, BadPeerId> {
        Self::parse(&raw)
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> String {
        id.0.to_string()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// The message types the server forwards from one peer to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Forwarded {
    /// A connection offer.
    Offer,
    /// Its answer.
    Answer,
    /// An ICE candidate.
    Candidate,
    /// The sender closed its connection to the destination.
    Leave,
    /// A message to the destination expired.
    Expire,
}

impl Forwarded {
    /// The type as the wire writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Forwarded::Offer => "OFFER",
            Forwarded::Answer => "ANSWER",
            Forwarded::Candidate => "CANDIDATE",
            Forwarded::Leave => "LEAVE",
            Forwarded::Expire => "EXPIRE",
        }
    }

    /// One of the five, by its wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Offer, Self::Answer, Self::Candidate, Self::Leave, Self::Expire].into_iter().find(|k| k.as_str() == raw)
    }

    /// Whether a message of this type waits for a destination not connected
    /// (`LEAVE` and `EXPIRE` to an absent id are dropped, as peerjs-server does).
    pub fn waits(self) -> bool {
        !matches!(self, Forwarded::Leave | Forwarded::Expire)
    }
}

/// One message from `src` to `dst`, as forwarded: `{type, src, dst, payload}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerMessage {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Forwarded,
    /// The sender, set by the server.
    pub src: PeerId,
    /// The destination.
    pub dst: PeerId,
    /// Whatever the sender put there; absent when it gave none.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

/// A payload as the sender wrote it: JSON text, carried without being
/// parsed into a tree (an SDP offer is relayed as the bytes it came in).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// Wraps JSON text already checked to be one JSON value.
    pub fn new(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

/// A field that is there, even as `null` (serde's `Option` would take `null` for absent).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl PeerMessage {
    /// The `EXPIRE` the sender of a message to `dst` gets: from `dst`, to it.
    pub fn expire(sender: PeerId, dst: PeerId) -> Self {
        Self { kind: Forwarded::Expire, src: dst, dst: sender, payload: None }
    }

    /// The `LEAVE` a sender gets when its destination's connection is gone.
    pub fn leave(sender: PeerId, dst: PeerId) -> Self {
        Self { kind: Forwarded::Leave, src: dst, dst: sender, payload: None }
    }
}

/// A message waiting for its destination, and since when (Unix ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The message.
    pub message: PeerMessage,
    /// When it was queued.
    pub at: u64,
}

/// The `EXPIRE`s an expired queue gives: one per sender, in queue order.
pub fn expiries(waited: &[Waiting]) -> Vec<PeerMessage> {
    let mut senders: Vec<&PeerId> = Vec::new();
    for w in waited {
        if !senders.contains(&&w.message.src) {
            senders.push(&w.message.src);
        }
    }
    senders.into_iter().map(|s| PeerMessage::expire(s.clone(), waited[0].message.dst.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    #[test]
    fn ids_are_one_to_128_characters_without_control_characters() {
        assert!(PeerId::parse("a").is_ok() && PeerId::parse("peer one-2_x").is_ok());
        assert!(PeerId::parse(&"é".repeat(128)).is_ok(), "characters, not bytes");
        assert_eq!(PeerId::parse(""), Err(BadPeerId));
        assert_eq!(PeerId::parse(&"a".repeat(129)), Err(BadPeerId));
        assert_eq!(PeerId::parse("a\nb"), Err(BadPeerId));
    }

    #[test]
    fn the_five_forwarded_types_and_which_of_them_wait() {
        for raw in ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"] {
            assert_eq!(Forwarded::parse(raw).unwrap().as_str(), raw);
        }
        assert_eq!(Forwarded::parse("HEARTBEAT"), None);
        assert_eq!(Forwarded::parse("offer"), None, "types are case-sensitive");
        assert!(Forwarded::Offer.waits() && Forwarded::Candidate.waits() && Forwarded::Answer.waits());
        assert!(!Forwarded::Leave.waits() && !Forwarded::Expire.waits());
    }

    #[test]
    fn a_message_is_written_type_src_dst_payload_and_without_payload_when_none() {
        let raw = |json: &str| Some(Payload::new(RawValue::from_string(json.to_owned()).unwrap()));
        let m = PeerMessage { kind: Forwarded::Offer, src: id("a"), dst: id("b"), payload: raw(r#"{"x": 1}"#) };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"type":"OFFER","src":"a","dst":"b","payload":{"x": 1}}"#, "the payload as it came");
        assert_eq!(serde_json::from_str::<PeerMessage>(&text).unwrap(), m);
        let null = PeerMessage { payload: raw("null"), ..m };
        let text = serde_json::to_string(&null).unwrap();
        assert_eq!(serde_json::from_str::<PeerMessage>(&text).unwrap(), null, "a null payload stays one");
        let e = PeerMessage::expire(id("a"), id("b"));
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"type":"EXPIRE","src":"b","dst":"a"}"#);
    }

    #[test]
    fn an_expired_queue_gives_one_expire_per_sender_in_order() {
        let w = |src: &str, at| Waiting {
            message: PeerMessage { kind: Forwarded::Candidate, src: id(src), dst: id("d"), payload: None },
            at,
        };
        let waited = [w("a", 1), w("b", 2), w("a", 3)];
        let out = expiries(&waited);
        assert_eq!(out, vec![PeerMessage::expire(id("a"), id("d")), PeerMessage::expire(id("b"), id("d"))]);
    }
}
