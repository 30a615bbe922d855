//! The room rules, without a store.

use super::*;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn conn(s: &str) -> ConnId {
    ConnId::new(s)
}

fn room() -> Room {
    Room::new(RoomId::parse("r").unwrap(), SystemTime::UNIX_EPOCH)
}

#[test]
fn participants_are_listed_in_join_order() {
    let mut r = room();
    for (u, c) in [("b", "1"), ("a", "2"), ("c", "3")] {
        assert_eq!(r.join(&user(u), &conn(c), 10), Ok(Joined::New));
    }
    assert_eq!(r.users(), vec![user("b"), user("a"), user("c")]);
}

#[test]
fn a_full_room_refuses_a_new_user() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 2).unwrap();
    r.join(&user("b"), &conn("2"), 2).unwrap();
    assert_eq!(r.join(&user("c"), &conn("3"), 2), Err(RoomError::Full { max: 2 }));
    assert_eq!(r.members().len(), 2);
}

#[test]
fn the_same_user_on_a_new_connection_takes_the_seat_over_even_when_full() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 2).unwrap();
    r.join(&user("b"), &conn("2"), 2).unwrap();
    assert_eq!(r.join(&user("a"), &conn("9"), 2), Ok(Joined::Rejoined { replaced: conn("1") }));
    assert_eq!(r.users(), vec![user("a"), user("b")]);
    assert_eq!(r.route(&conn("2"), &user("a")).unwrap().target, conn("9"));
    assert_eq!(r.leave(&conn("1")), None, "the old connection holds no seat");
}

#[test]
fn joining_twice_on_one_connection_changes_nothing() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 5).unwrap();
    assert_eq!(r.join(&user("a"), &conn("1"), 5), Ok(Joined::Already));
    assert_eq!(r.members().len(), 1);
}

#[test]
fn one_connection_cannot_hold_two_users_in_a_room() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 5).unwrap();
    assert_eq!(r.join(&user("b"), &conn("1"), 5), Err(RoomError::AlreadyJoinedAs(user("a"))));
}

#[test]
fn leaving_removes_only_that_connection() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 5).unwrap();
    r.join(&user("b"), &conn("2"), 5).unwrap();
    assert_eq!(r.leave(&conn("1")).map(|d| d.user), Some(user("a")));
    assert_eq!(r.leave(&conn("1")), None);
    assert_eq!(r.users(), vec![user("b")]);
    assert_eq!(r.leave(&conn("2")).map(|d| d.user), Some(user("b")));
    assert!(r.is_empty());
}

#[test]
fn relays_need_both_ends_in_the_room() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 5).unwrap();
    r.join(&user("b"), &conn("2"), 5).unwrap();
    assert_eq!(r.route(&conn("1"), &user("b")), Ok(Route { sender: user("a"), target: conn("2"), held: false }));
    assert_eq!(r.route(&conn("3"), &user("b")), Err(RoomError::NotInRoom));
    assert_eq!(r.route(&conn("1"), &user("zz")), Err(RoomError::TargetNotFound));
}

#[test]
fn peers_exclude_the_given_connection() {
    let mut r = room();
    r.join(&user("a"), &conn("1"), 5).unwrap();
    r.join(&user("b"), &conn("2"), 5).unwrap();
    assert_eq!(r.peers_of(&conn("1")), vec![conn("2")]);
}

fn meta(host: &str, requires_approval: bool) -> RoomMeta {
    RoomMeta {
        name: "Standup".into(),
        description: String::new(),
        host: host.to_uppercase(),
        host_id: user(host),
        requires_approval,
        approved: vec![],
        names: vec![],
        requests: vec![],
    }
}

#[test]
fn a_room_that_requires_approval_seats_only_the_host_and_approved_users() {
    let mut r = Room::create(RoomId::parse("r").unwrap(), SystemTime::UNIX_EPOCH, meta("h", true), &conn("1"));
    assert_eq!(r.users(), vec![user("h")]);
    assert_eq!(r.join(&user("a"), &conn("2"), 10), Err(RoomError::NotApproved));
    assert_eq!(r.decide(&conn("1"), &user("a"), true), Err(RoomError::NoRequest), "nothing asked yet");
    assert_eq!(r.request(&user("a"), 0, 1_000), Ok(Request::Pending));
    assert_eq!(r.decide(&conn("2"), &user("a"), true), Err(RoomError::NotHost), "only the host's connection");
    r.decide(&conn("1"), &user("a"), true).unwrap();
    assert_eq!(r.request(&user("a"), 0, 1_000), Ok(Request::Approved), "approved once, approved for good");
    assert_eq!(r.join(&user("a"), &conn("2"), 10), Ok(Joined::New));
    assert_eq!(r.join(&user("a"), &conn("3"), 10), Ok(Joined::Rejoined { replaced: conn("2") }));
    let mut open = Room::create(RoomId::parse("o").unwrap(), SystemTime::UNIX_EPOCH, meta("h", false), &conn("1"));
    assert_eq!(open.join(&user("b"), &conn("4"), 10), Ok(Joined::New));
    assert_eq!(room().decide(&conn("1"), &user("a"), true), Err(RoomError::NotHost), "no metadata, no host");
    assert_eq!(open.request(&user("c"), 0, 1_000), Ok(Request::Approved), "no approval needed");
}

#[test]
fn a_request_is_rejected_by_the_host_or_expires_and_then_cannot_be_decided() {
    let mut r = Room::create(RoomId::parse("r").unwrap(), SystemTime::UNIX_EPOCH, meta("h", true), &conn("1"));
    r.request(&user("a"), 0, 1_000).unwrap();
    r.decide(&conn("1"), &user("a"), false).unwrap();
    assert_eq!(r.join(&user("a"), &conn("2"), 10), Err(RoomError::NotApproved));
    r.request(&user("b"), 0, 1_000).unwrap();
    assert!(!r.expire_request(&user("b"), 999), "not yet");
    assert!(r.expire_request(&user("b"), 1_000));
    assert_eq!(r.decide(&conn("1"), &user("b"), true), Err(RoomError::NoRequest), "too late");
    for i in 0..MAX_PENDING_REQUESTS {
        r.request(&user(&format!("u{i}")), 0, 1_000).unwrap();
    }
    assert_eq!(r.request(&user("one-more"), 0, 1_000), Err(RoomError::TooManyRequests));
}

#[test]
fn when_the_host_leaves_the_next_participant_in_join_order_hosts() {
    let mut r = Room::create(RoomId::parse("r").unwrap(), SystemTime::UNIX_EPOCH, meta("h", false), &conn("1"));
    r.join(&user("a"), &conn("2"), 10).unwrap();
    r.join(&user("b"), &conn("3"), 10).unwrap();
    r.name_user(&user("a"), "Alice");
    assert_eq!(r.leave(&conn("3")), Some(Departure { user: user("b"), new_host: None }));
    assert_eq!(r.leave(&conn("1")), Some(Departure { user: user("h"), new_host: Some(user("a")) }));
    let m = r.meta().unwrap();
    assert_eq!((m.host_id.as_str(), m.host.as_str()), ("a", "Alice"));
    assert_eq!(r.leave(&conn("2")), Some(Departure { user: user("a"), new_host: None }), "nobody left to host");
}

/// Issue 17, problem 8: a request repeated while it waits changes nothing
/// (the core then arms no second timer and asks the host once).
#[test]
fn a_request_repeated_while_it_waits_keeps_its_first_deadline() {
    let mut r = Room::create(RoomId::parse("r").unwrap(), SystemTime::UNIX_EPOCH, meta("h", true), &conn("1"));
    assert_eq!(r.request(&user("a"), 0, 1_000), Ok(Request::Pending));
    for now in [10, 500, 999] {
        assert_eq!(r.request(&user("a"), now, now + 1_000), Ok(Request::StillPending));
    }
    assert_eq!(r.meta().unwrap().requests, vec![(user("a"), 1_000)], "one request, its first deadline");
    assert!(r.expire_request(&user("a"), 1_000), "it expires when the first would have");
    assert_eq!(r.request(&user("a"), 1_001, 2_001), Ok(Request::Pending), "asking again after it lapsed is new");
}
