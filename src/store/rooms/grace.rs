//! Seat grace in the room store: the seats held for connections that closed
//! abruptly, and the relays kept for them until their user resumes the seat
//! or the grace ends ([`super::RoomStore::hold`] and the calls after it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::signal::SignalKind;
use crate::domain::{ConnId, Room, RoomId, UserId};

/// A relay kept for a held seat, as its target will get it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptRelay {
    /// The sender's user id in the room.
    pub sender: UserId,
    /// Offer, answer or candidate.
    pub kind: SignalKind,
    /// Its body, exactly as sent.
    pub body: Value,
}

/// What became of a relay offered to a held seat.
#[derive(Clone, Debug, PartialEq)]
pub enum Keeping {
    /// Kept, behind those kept before it.
    Kept,
    /// The seat has as many relays kept as it may: refused.
    Full,
    /// The seat was resumed on this connection and its kept relays handed
    /// over: deliver it there.
    Live(ConnId),
    /// The seat is not held (it left, or the store lost it).
    NotHeld,
}

/// A seat held for a connection that closed.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldSeat {
    /// The room.
    pub room: RoomId,
    /// The user whose seat it is.
    pub user: UserId,
}

/// A sender whose relays to a seat that left were kept and never delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Unsent {
    /// The sender's user id.
    pub sender: UserId,
    /// Its connection now.
    pub conn: ConnId,
    /// How many of its relays were not delivered.
    pub count: usize,
}

/// The senders of `kept` still seated in `room`, with their counts, in the
/// order they first sent.
pub fn unsent(room: Option<&Room>, kept: &[KeptRelay]) -> Vec<Unsent> {
    let mut out: Vec<Unsent> = Vec::new();
    for relay in kept {
        if let Some(seen) = out.iter_mut().find(|u| u.sender == relay.sender) {
            seen.count += 1;
            continue;
        }
        if let Some(conn) = room.and_then(|r| r.seat_of(&relay.sender)) {
            out.push(Unsent { sender: relay.sender.clone(), conn: conn.clone(), count: 1 });
        }
    }
    out
}

/// How long a hold's keys outlive its grace in Redis, at least: its owner
/// ends it at the grace's end, or survivors when the owner dies.
pub const HOLD_MARGIN_MS: u64 = 60_000;

/// How long the marker of a held seat put back after a data loss lives (the
/// grace left is not known to the store: the longest grace, and the margin).
pub const RESTORED_HOLD_TTL_MS: u64 = 3_600_000 + HOLD_MARGIN_MS;

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn unsent_counts_per_sender_in_first_sent_order_and_skips_senders_gone() {
        let (a, b, gone) = (UserId::parse("a").unwrap(), UserId::parse("b").unwrap(), UserId::parse("x").unwrap());
        let mut room = Room::new(RoomId::parse("r").unwrap(), SystemTime::now());
        room.join(&a, &ConnId::new("ca"), 10).unwrap();
        room.join(&b, &ConnId::new("cb"), 10).unwrap();
        let relay = |sender: &UserId| KeptRelay { sender: sender.clone(), kind: SignalKind::Offer, body: Value::Null };
        let kept = [relay(&b), relay(&a), relay(&gone), relay(&b)];
        let got = unsent(Some(&room), &kept);
        assert_eq!(
            got,
            vec![
                Unsent { sender: b.clone(), conn: ConnId::new("cb"), count: 2 },
                Unsent { sender: a.clone(), conn: ConnId::new("ca"), count: 1 },
            ]
        );
        assert!(unsent(None, &kept).is_empty(), "a deleted room has nobody to tell");
    }
}
