//! The seat-grace part of the room store suite ([`super::suite`]): both
//! engines hold, keep, hand over and expire seats the same way.

// Each function is named as the sentence it checks; that name is its documentation.
#![allow(missing_docs)]

use std::sync::Arc;

use serde_json::json;

use super::RoomStore;
use super::grace::{HeldSeat, Keeping, KeptRelay, Unsent};
use super::suite::{conn, room, user};
use crate::domain::signal::SignalKind;
use crate::domain::{Joined, RoomError};

fn relay(from: &str, n: u64) -> KeptRelay {
    KeptRelay { sender: user(from), kind: SignalKind::IceCandidate, body: json!({ "n": n }) }
}
fn numbers(kept: &[KeptRelay]) -> Vec<u64> {
    kept.iter().map(|k| k.body["n"].as_u64().unwrap()).collect()
}

pub async fn a_held_seat_stays_keeps_relays_in_order_up_to_the_limit_and_hands_them_over_on_resume(
    s: Arc<impl RoomStore>,
) {
    let r = room("g1");
    s.join(&r, &user("a"), &conn("c1"), 10).await.unwrap();
    s.join(&r, &user("b"), &conn("c2"), 10).await.unwrap();
    assert_eq!(s.hold(&conn("c1"), 10_000).await.unwrap(), vec![HeldSeat { room: r.clone(), user: user("a") }]);
    let listed = s.room(&r).await.unwrap().unwrap().participants;
    assert_eq!(listed, vec![user("a"), user("b")], "a held seat is still listed");
    let route = s.route(&r, &conn("c2"), &user("a")).await.unwrap();
    assert!(route.held && route.target == conn("c1"));
    for n in 1..=3 {
        assert_eq!(s.keep(&r, &user("a"), &relay("b", n), 3).await.unwrap(), Keeping::Kept);
    }
    assert_eq!(s.keep(&r, &user("a"), &relay("b", 4), 3).await.unwrap(), Keeping::Full);
    let resumed = s.join(&r, &user("a"), &conn("c3"), 10).await.unwrap();
    assert_eq!(resumed.joined, Joined::Resumed { replaced: conn("c1") });
    assert_eq!(resumed.users, vec![user("a"), user("b")], "the resumed seat keeps its place");
    assert!(s.route(&r, &conn("c2"), &user("a")).await.unwrap().held, "held until handed over");
    assert_eq!(numbers(&s.take_kept(&r, &user("a"), &conn("c3"), 2).await.unwrap()), vec![1, 2]);
    assert_eq!(s.keep(&r, &user("a"), &relay("b", 5), 3).await.unwrap(), Keeping::Kept, "still kept meanwhile");
    assert_eq!(numbers(&s.take_kept(&r, &user("a"), &conn("c3"), 2).await.unwrap()), vec![3, 5]);
    assert!(s.take_kept(&r, &user("a"), &conn("c3"), 2).await.unwrap().is_empty());
    let route = s.route(&r, &conn("c2"), &user("a")).await.unwrap();
    assert!(!route.held && route.target == conn("c3"), "handed over: relays go to the new connection");
    assert_eq!(s.keep(&r, &user("a"), &relay("b", 6), 3).await.unwrap(), Keeping::Live(conn("c3")));
    assert!(
        s.leave_all(&conn("c1")).await.unwrap().is_empty(),
        "resumed: its old connection's grace ends with nothing"
    );
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![user("a"), user("b")]);
}

pub async fn a_held_seat_whose_grace_ends_leaves_naming_the_senders_of_what_was_kept(s: Arc<impl RoomStore>) {
    let r = room("g2");
    for (u, c) in [("a", "c1"), ("b", "c2"), ("d", "c4")] {
        s.join(&r, &user(u), &conn(c), 10).await.unwrap();
    }
    s.hold(&conn("c1"), 10_000).await.unwrap();
    for (from, n) in [("d", 1), ("b", 2), ("d", 3)] {
        assert_eq!(s.keep(&r, &user("a"), &relay(from, n), 10).await.unwrap(), Keeping::Kept);
    }
    let mut left = s.leave_all(&conn("c1")).await.unwrap();
    assert_eq!(left.len(), 1);
    let out = left.remove(0);
    assert_eq!(
        (out.user.clone(), out.peers.clone(), out.room_deleted),
        (user("a"), vec![conn("c2"), conn("c4")], false)
    );
    assert_eq!(
        out.unsent,
        vec![
            Unsent { sender: user("d"), conn: conn("c4"), count: 2 },
            Unsent { sender: user("b"), conn: conn("c2"), count: 1 },
        ]
    );
    assert_eq!(s.room(&r).await.unwrap().unwrap().participants, vec![user("b"), user("d")]);
    let gone = s.route(&r, &conn("c2"), &user("a")).await;
    assert!(matches!(gone, Err(super::RoomStoreError::Rule(RoomError::TargetNotFound))), "{gone:?}");
    assert_eq!(s.keep(&r, &user("a"), &relay("b", 4), 10).await.unwrap(), Keeping::NotHeld);
    assert!(s.leave_all(&conn("c1")).await.unwrap().is_empty(), "expires once");
}

pub async fn a_seat_held_again_keeps_what_a_resume_has_not_handed_over_and_a_new_seat_starts_live(
    s: Arc<impl RoomStore>,
) {
    let r = room("g3");
    s.join(&r, &user("a"), &conn("c1"), 10).await.unwrap();
    s.join(&r, &user("b"), &conn("c2"), 10).await.unwrap();
    s.hold(&conn("c1"), 10_000).await.unwrap();
    s.keep(&r, &user("a"), &relay("b", 1), 10).await.unwrap();
    s.join(&r, &user("a"), &conn("c3"), 10).await.unwrap();
    s.hold(&conn("c3"), 10_000).await.unwrap();
    s.keep(&r, &user("a"), &relay("b", 2), 10).await.unwrap();
    let left = s.leave_all(&conn("c3")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].unsent, vec![Unsent { sender: user("b"), conn: conn("c2"), count: 2 }]);
    s.join(&r, &user("a"), &conn("c5"), 10).await.unwrap();
    assert!(!s.route(&r, &conn("c2"), &user("a")).await.unwrap().held, "a new seat starts live");
    assert_eq!(s.keep(&r, &user("a"), &relay("b", 2), 10).await.unwrap(), Keeping::NotHeld);
}
