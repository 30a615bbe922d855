//! The route cache's rules, one test each.

use std::time::SystemTime;

use super::*;
use crate::domain::Joined;

fn room(members: &[(&str, &str)]) -> (RoomId, Room) {
    let id = RoomId::parse("r").unwrap();
    let mut room = Room::new(id.clone(), SystemTime::now());
    for (user, conn) in members {
        let joined = room.join(&UserId::parse(user).unwrap(), &ConnId::new(conn), 10).unwrap();
        assert_ne!(joined, Joined::Already);
    }
    (id, room)
}

const WINDOW: Duration = Duration::from_secs(60);

fn usable() -> RouteCache {
    let cache = RouteCache::default();
    cache.set_subscribed(true);
    cache.beat_succeeded(WINDOW);
    cache.tick(false);
    cache
}

fn bob() -> UserId {
    UserId::parse("bob").unwrap()
}

#[test]
fn a_cached_room_routes_both_ways_and_an_announcement_drops_it() {
    let cache = usable();
    let (id, r) = room(&[("alice", "ca"), ("bob", "cb")]);
    let seen = cache.generation(&id);
    cache.offer(&id, r, seen);
    let route = cache.route(&id, &ConnId::new("ca"), &bob()).unwrap();
    assert_eq!((route.sender.as_str(), route.target.as_str()), ("alice", "cb"));
    cache.invalidate(&id);
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_none());
}

#[test]
fn a_read_overtaken_by_an_announcement_is_not_kept() {
    let cache = usable();
    let (id, r) = room(&[("alice", "ca"), ("bob", "cb")]);
    let seen = cache.generation(&id);
    cache.invalidate(&id); // a change announced while the read was in flight
    cache.offer(&id, r, seen);
    assert!(cache.is_empty());
}

#[test]
fn only_positive_answers_come_from_the_cache() {
    let cache = usable();
    let (id, r) = room(&[("alice", "ca")]);
    cache.offer(&id, r, cache.generation(&id));
    assert_eq!(cache.len(), 1);
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_none(), "bob may have joined elsewhere: ask Redis");
    assert!(cache.route(&id, &ConnId::new("stranger"), &UserId::parse("alice").unwrap()).is_none());
}

#[test]
fn without_announcements_or_with_the_store_down_nothing_is_cached_or_served() {
    let (id, r) = room(&[("alice", "ca"), ("bob", "cb")]);
    let fresh = RouteCache::default();
    fresh.offer(&id, r.clone(), fresh.generation(&id));
    assert!(fresh.is_empty(), "not subscribed yet");

    let cache = usable();
    cache.offer(&id, r.clone(), cache.generation(&id));
    cache.beat_failed();
    assert!(cache.is_empty() && cache.route(&id, &ConnId::new("ca"), &bob()).is_none());
    cache.beat_succeeded(WINDOW);
    let seen = cache.generation(&id);
    cache.set_subscribed(false);
    cache.offer(&id, r.clone(), seen);
    assert!(cache.is_empty(), "the subscription dropped while reading");
    cache.set_subscribed(true);
    cache.offer(&id, r, seen);
    assert!(cache.is_empty(), "a read begun before the subscription came back may have missed a change");
}

#[test]
fn copies_are_served_only_while_a_heartbeat_vouches_for_them() {
    let (id, r) = room(&[("alice", "ca"), ("bob", "cb")]);
    let cache = RouteCache::default();
    cache.set_subscribed(true);
    cache.beat_succeeded(Duration::from_millis(30));
    cache.offer(&id, r, cache.generation(&id));
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_some());
    // As after a pause: no heartbeat within the window.
    cache.skip(Duration::from_millis(40));
    assert!(!cache.usable() && cache.route(&id, &ConnId::new("ca"), &bob()).is_none());
    cache.beat_succeeded(WINDOW);
    assert!(cache.is_empty(), "what was cached before the gap is gone");
}

#[test]
fn after_a_stall_nothing_is_served_until_the_announcements_sent_before_it_are_in() {
    let cache = usable();
    let (id, r) = room(&[("alice", "ca"), ("bob", "cb")]);
    cache.offer(&id, r.clone(), cache.generation(&id));
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_some());
    // The process stops (no tick) past STALL: on resuming, before the
    // ticker runs, nothing is served.
    cache.skip(STALL + Duration::from_millis(20));
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_none());
    let token = cache.tick(false).expect("the ticker sees the stall and asks for a sync");
    assert!(cache.is_empty() && !cache.usable());
    cache.offer(&id, r.clone(), cache.generation(&id));
    assert!(cache.is_empty(), "nothing is cached while catching up");
    assert_eq!(cache.tick(true), Some(token), "the token is sent again until heard");
    cache.heard(token + 1);
    assert!(!cache.usable(), "another token does not count");
    cache.heard(token);
    assert!(cache.usable());
    cache.offer(&id, r, cache.generation(&id));
    assert!(cache.route(&id, &ConnId::new("ca"), &bob()).is_some());
}
