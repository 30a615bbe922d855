//! The one test suite every [`RoomStore`] engine must pass.
//!
//! Each engine's module invokes [`store_suite!`](crate::store_suite) with a
//! future that builds a fresh, empty store (and a guard); every function below becomes
//! a `#[tokio::test]` for that engine, so memory and Redis honour the same rules.

// Each function is named as the sentence it checks; that name is its documentation.
#![allow(missing_docs)]

use std::sync::Arc;

pub use super::suite_grace::*;
use super::{RoomStore, RoomStoreError};
use crate::domain::{ConnId, Joined, Request, RoomError, RoomId, RoomMeta, Route, UserId};

/// Declares the suite's tests for one engine: `store_suite!(async { (MyStore::new(), guard) })`,
/// where the guard keeps whatever the store needs alive for the test.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@tests $make;
            join_creates_the_room_and_lists_users_in_join_order,
            a_join_past_max_size_is_refused_and_changes_nothing,
            concurrent_joins_never_exceed_max_size_nor_lose_a_participant,
            the_same_user_on_a_new_connection_takes_the_seat_over,
            joining_again_on_the_same_connection_changes_nothing,
            leave_reports_the_remaining_peers_and_deletes_an_empty_room,
            leaving_a_room_one_is_not_in_returns_none,
            leave_all_removes_the_connection_from_every_room,
            leave_all_of_a_replaced_connection_keeps_the_new_seat,
            route_requires_both_ends_in_the_room,
            list_pages_are_ordered_by_creation_then_id,
            a_room_created_with_metadata_seats_its_host_and_its_id_cannot_be_taken,
            approval_names_and_host_handover_are_kept_by_the_store,
            a_held_seat_stays_keeps_relays_in_order_up_to_the_limit_and_hands_them_over_on_resume,
            a_held_seat_whose_grace_ends_leaves_naming_the_senders_of_what_was_kept,
            a_seat_held_again_keeps_what_a_resume_has_not_handed_over_and_a_new_seat_starts_live);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                // The guard (a private redis-server, say) lives until the test ends.
                let (store, _guard) = $make.await;
                $crate::store::rooms::suite::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

pub(super) fn room(s: &str) -> RoomId {
    RoomId::parse(s).unwrap()
}
pub(super) fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}
pub(super) fn conn(s: &str) -> ConnId {
    ConnId::new(s)
}

fn rule(result: Result<impl std::fmt::Debug, RoomStoreError>) -> RoomError {
    match result {
        Err(RoomStoreError::Rule(e)) => e,
        other => panic!("expected a rule error, got {other:?}"),
    }
}

pub async fn join_creates_the_room_and_lists_users_in_join_order(s: Arc<impl RoomStore>) {
    let a = s.join(&room("r"), &user("b"), &conn("1"), 10).await.unwrap();
    assert_eq!(a.joined, Joined::New);
    assert_eq!((a.users, a.peers), (vec![user("b")], vec![]));
    let b = s.join(&room("r"), &user("a"), &conn("2"), 10).await.unwrap();
    assert_eq!((b.users, b.peers), (vec![user("b"), user("a")], vec![conn("1")]));
    let snap = s.room(&room("r")).await.unwrap().unwrap();
    assert_eq!(snap.participants, vec![user("b"), user("a")]);
    assert_eq!(s.count().await.unwrap(), 1);
}

pub async fn a_join_past_max_size_is_refused_and_changes_nothing(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("1"), 2).await.unwrap();
    s.join(&room("r"), &user("b"), &conn("2"), 2).await.unwrap();
    let err = rule(s.join(&room("r"), &user("c"), &conn("3"), 2).await);
    assert_eq!(err, RoomError::Full { max: 2 });
    assert_eq!(s.room(&room("r")).await.unwrap().unwrap().participants, vec![user("a"), user("b")]);
    assert!(s.leave_all(&conn("3")).await.unwrap().is_empty(), "the refused connection holds nothing");
}

pub async fn concurrent_joins_never_exceed_max_size_nor_lose_a_participant(s: Arc<impl RoomStore>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(
                async move { s.join(&room("hot"), &user(&format!("u{i}")), &conn(&format!("c{i}")), 10).await },
            )
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(rule(Err::<(), _>(e)), RoomError::Full { max: 10 }),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(s.room(&room("hot")).await.unwrap().unwrap().participants.len(), 10);
}

pub async fn the_same_user_on_a_new_connection_takes_the_seat_over(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("old"), 10).await.unwrap();
    s.join(&room("r"), &user("b"), &conn("2"), 10).await.unwrap();
    let again = s.join(&room("r"), &user("a"), &conn("new"), 10).await.unwrap();
    assert_eq!(again.joined, Joined::Rejoined { replaced: conn("old") });
    assert_eq!(again.users, vec![user("a"), user("b")]);
    let route = s.route(&room("r"), &conn("2"), &user("a")).await.unwrap();
    assert_eq!(route.target, conn("new"));
    assert_eq!(rule(s.route(&room("r"), &conn("old"), &user("b")).await), RoomError::NotInRoom);
}

pub async fn joining_again_on_the_same_connection_changes_nothing(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("1"), 10).await.unwrap();
    let again = s.join(&room("r"), &user("a"), &conn("1"), 10).await.unwrap();
    assert_eq!(again.joined, Joined::Already);
    assert_eq!(again.users, vec![user("a")]);
    let other = rule(s.join(&room("r"), &user("z"), &conn("1"), 10).await);
    assert_eq!(other, RoomError::AlreadyJoinedAs(user("a")));
}

pub async fn leave_reports_the_remaining_peers_and_deletes_an_empty_room(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("1"), 10).await.unwrap();
    s.join(&room("r"), &user("b"), &conn("2"), 10).await.unwrap();
    let left = s.leave(&room("r"), &conn("1")).await.unwrap().unwrap();
    assert_eq!((left.user, left.peers, left.room_deleted), (user("a"), vec![conn("2")], false));
    let last = s.leave(&room("r"), &conn("2")).await.unwrap().unwrap();
    assert!(last.room_deleted && last.peers.is_empty());
    assert_eq!(s.room(&room("r")).await.unwrap(), None);
    assert_eq!(s.count().await.unwrap(), 0);
}

pub async fn leaving_a_room_one_is_not_in_returns_none(s: Arc<impl RoomStore>) {
    assert_eq!(s.leave(&room("nowhere"), &conn("1")).await.unwrap(), None);
    s.join(&room("r"), &user("a"), &conn("1"), 10).await.unwrap();
    assert_eq!(s.leave(&room("r"), &conn("2")).await.unwrap(), None);
}

pub async fn leave_all_removes_the_connection_from_every_room(s: Arc<impl RoomStore>) {
    s.join(&room("r1"), &user("a"), &conn("1"), 10).await.unwrap();
    s.join(&room("r2"), &user("a"), &conn("1"), 10).await.unwrap();
    s.join(&room("r2"), &user("b"), &conn("2"), 10).await.unwrap();
    let mut left = s.leave_all(&conn("1")).await.unwrap();
    left.sort_by(|x, y| x.room.cmp(&y.room));
    assert_eq!(left.len(), 2);
    assert!(left[0].room_deleted, "r1 had only this connection");
    assert_eq!((left[1].peers.clone(), left[1].room_deleted), (vec![conn("2")], false));
    assert_eq!(s.count().await.unwrap(), 1);
    assert!(s.leave_all(&conn("1")).await.unwrap().is_empty());
}

pub async fn leave_all_of_a_replaced_connection_keeps_the_new_seat(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("old"), 10).await.unwrap();
    s.join(&room("r"), &user("a"), &conn("new"), 10).await.unwrap();
    assert!(s.leave_all(&conn("old")).await.unwrap().is_empty());
    assert_eq!(s.room(&room("r")).await.unwrap().unwrap().participants, vec![user("a")]);
}

pub async fn route_requires_both_ends_in_the_room(s: Arc<impl RoomStore>) {
    s.join(&room("r"), &user("a"), &conn("1"), 10).await.unwrap();
    s.join(&room("r"), &user("b"), &conn("2"), 10).await.unwrap();
    s.join(&room("other"), &user("c"), &conn("3"), 10).await.unwrap();
    let ok = s.route(&room("r"), &conn("1"), &user("b")).await.unwrap();
    assert_eq!(ok, Route { sender: user("a"), target: conn("2"), held: false });
    assert_eq!(rule(s.route(&room("r"), &conn("3"), &user("b")).await), RoomError::NotInRoom);
    assert_eq!(rule(s.route(&room("r"), &conn("1"), &user("c")).await), RoomError::TargetNotFound);
    assert_eq!(rule(s.route(&room("gone"), &conn("1"), &user("b")).await), RoomError::NotInRoom);
}

pub async fn list_pages_are_ordered_by_creation_then_id(s: Arc<impl RoomStore>) {
    for (i, name) in ["m", "c", "x", "a", "q"].iter().enumerate() {
        s.join(&room(name), &user("u"), &conn(&format!("c{i}")), 10).await.unwrap();
    }
    let all = s.list(0, 100).await.unwrap();
    assert_eq!(all.total, 5);
    let keys: Vec<_> = all.rooms.iter().map(|r| (r.created_at, r.id.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by createdAt, then id");
    let first = s.list(0, 2).await.unwrap();
    let rest = s.list(2, 100).await.unwrap();
    assert_eq!((first.total, first.rooms.len(), rest.rooms.len()), (5, 2, 3));
    let paged: Vec<_> = first.rooms.into_iter().chain(rest.rooms).collect();
    assert_eq!(paged, all.rooms);
    assert!(s.list(5, 10).await.unwrap().rooms.is_empty());
}

fn meta(host: &str, requires_approval: bool) -> RoomMeta {
    RoomMeta {
        name: "Standup".into(),
        description: "daily".into(),
        host: "Host".into(),
        host_id: user(host),
        requires_approval,
        approved: vec![],
        names: vec![],
        requests: vec![],
    }
}

pub async fn a_room_created_with_metadata_seats_its_host_and_its_id_cannot_be_taken(s: Arc<impl RoomStore>) {
    let created = s.create(&room("m"), meta("h", false), &conn("1")).await.unwrap();
    assert_eq!((created.users, created.joined), (vec![user("h")], Joined::New));
    let snapshot = s.room(&room("m")).await.unwrap().unwrap();
    assert_eq!(snapshot.meta, Some(meta("h", false)));
    assert_eq!(snapshot.host_conn, Some(conn("1")));
    assert_eq!(rule(s.create(&room("m"), meta("x", false), &conn("2")).await), RoomError::AlreadyExists);
    s.join(&room("plain"), &user("a"), &conn("3"), 10).await.unwrap();
    assert_eq!(rule(s.create(&room("plain"), meta("x", false), &conn("2")).await), RoomError::AlreadyExists);
    let listed = s.list(0, 10).await.unwrap();
    assert_eq!(listed.rooms.iter().map(|r| r.meta.is_some()).collect::<Vec<_>>(), vec![true, false]);
}

pub async fn approval_names_and_host_handover_are_kept_by_the_store(s: Arc<impl RoomStore>) {
    s.create(&room("m"), meta("h", true), &conn("1")).await.unwrap();
    assert_eq!(rule(s.join(&room("m"), &user("a"), &conn("2"), 10).await), RoomError::NotApproved);
    assert_eq!(s.request(&room("m"), &user("a"), 0, 1_000).await.unwrap(), Request::Pending);
    assert_eq!(rule(s.decide(&room("m"), &conn("2"), &user("a"), true).await), RoomError::NotHost);
    assert_eq!(rule(s.request(&room("nowhere"), &user("a"), 0, 1_000).await), RoomError::NoSuchRoom);
    s.request(&room("m"), &user("late"), 0, 1_000).await.unwrap();
    assert!(s.expire_request(&room("m"), &user("late"), 1_000).await.unwrap());
    assert_eq!(rule(s.decide(&room("m"), &conn("1"), &user("late"), true).await), RoomError::NoRequest);
    s.decide(&room("m"), &conn("1"), &user("a"), true).await.unwrap();
    s.join(&room("m"), &user("a"), &conn("2"), 10).await.unwrap();
    s.name_user(&room("m"), &user("a"), "Alice").await.unwrap();
    let left = s.leave(&room("m"), &conn("1")).await.unwrap().unwrap();
    assert_eq!((left.user, left.new_host), (user("h"), Some(user("a"))));
    let m = s.room(&room("m")).await.unwrap().unwrap().meta.unwrap();
    assert_eq!((m.host_id, m.host, m.approved), (user("a"), "Alice".to_owned(), vec![user("a")]));
}
