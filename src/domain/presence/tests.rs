//! The presence rules, without a store.

use std::time::SystemTime;

use super::*;
use crate::domain::UserId;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn announcement(device: &str, user: &str, caps: &[&str]) -> Announcement {
    Announcement {
        network: NetworkId::parse("home").unwrap(),
        device: DeviceId::parse(device).unwrap(),
        user: UserId::parse(user).unwrap(),
        signal_address: SignalAddress::parse(&format!("wss://signal.example/{device}")).unwrap(),
        capabilities: caps.iter().map(|c| Capability::parse(c).unwrap()).collect(),
    }
}

fn device(id: &str, created: u64, caps: &[&str]) -> Device {
    Device::announce(None, announcement(id, "u", caps), t(created)).unwrap()
}

#[test]
fn network_ids_are_one_to_fifty_letters_or_digits() {
    assert!(NetworkId::parse("home42").is_ok());
    assert!(NetworkId::parse(&"n".repeat(50)).is_ok());
    for bad in ["", &"n".repeat(51), "home-net", "höme", "a b"] {
        assert_eq!(NetworkId::parse(bad), Err(PresenceError::NetworkId), "{bad:?}");
    }
}

#[test]
fn device_ids_match_the_seed_pattern_within_one_hundred_characters() {
    assert!(DeviceId::parse("peer_alice_1642684800").is_ok());
    assert!(DeviceId::parse(&format!("peer_{}", "a".repeat(95))).is_ok());
    for bad in ["peer_", "alice", "peer-alice", "peer_al ice", "PEER_alice", &format!("peer_{}", "a".repeat(96))] {
        assert_eq!(DeviceId::parse(bad), Err(PresenceError::DeviceId), "{bad:?}");
    }
}

#[test]
fn signal_addresses_are_websocket_urls_with_a_host() {
    for good in ["wss://signal.example/peer_a", "ws://10.0.0.2:8080/signaling?x=1", "wss://u@h.example"] {
        assert!(SignalAddress::parse(good).is_ok(), "{good}");
    }
    for bad in ["https://signal.example", "wss://", "wss:///path", "wss://:80/x", "wss://a b", "ws://h\n", "signal"] {
        assert_eq!(SignalAddress::parse(bad), Err(PresenceError::SignalAddress), "{bad:?}");
    }
    assert!(SignalAddress::parse(&format!("wss://h/{}", "p".repeat(MAX_SIGNAL_ADDRESS))).is_err());
}

#[test]
fn capabilities_are_relay_store_or_coordinator() {
    assert_eq!(Capability::parse("store"), Ok(Capability::Store));
    assert_eq!(Capability::parse("admin"), Err(PresenceError::Capability("admin".into())));
}

#[test]
fn an_announcement_upserts_keeps_the_first_sighting_and_dedups_capabilities() {
    let first = Device::announce(None, announcement("peer_a", "alice", &["relay", "relay"]), t(0)).unwrap();
    assert_eq!((first.online, first.coordinator, first.capabilities.clone()), (true, false, vec![Capability::Relay]));
    let again = Device::announce(Some(&first), announcement("peer_a", "alice", &["coordinator"]), t(60)).unwrap();
    assert_eq!((again.created_at, again.last_seen, again.coordinator), (t(0), t(60), true));
}

#[test]
fn another_user_cannot_take_a_device_id() {
    let mine = device("peer_a", 0, &[]);
    let err = Device::announce(Some(&mine), announcement("peer_a", "mallory", &[]), t(1));
    assert_eq!(err, Err(AnnounceError::OwnedByAnotherUser));
}

#[test]
fn a_device_goes_stale_after_the_ttl_and_is_deleted_after_retention() {
    let d = device("peer_a", 0, &[]);
    let ttl = Duration::from_secs(600);
    assert!(!d.is_stale(t(599), ttl));
    assert!(d.is_stale(t(600), ttl));
    assert!(!d.is_expired(t(3599)));
    assert!(d.is_expired(t(3600)));
}

#[test]
fn promotion_fills_exactly_the_missing_seats_earliest_first() {
    let mut net = vec![
        device("peer_late", 30, &["store"]),
        device("peer_early", 10, &["relay"]),
        device("peer_mid", 20, &["relay", "store"]),
        device("peer_plain", 0, &[]),
    ];
    assert_eq!(promotions(&net, 2), vec![DeviceId::parse("peer_early").unwrap(), DeviceId::parse("peer_mid").unwrap()]);
    net[1].promote();
    assert_eq!(promotions(&net, 2), vec![DeviceId::parse("peer_mid").unwrap()], "one seat left");
    net[2].promote();
    assert!(promotions(&net, 2).is_empty());
    net[1].go_offline();
    assert_eq!(
        promotions(&net, 2),
        vec![DeviceId::parse("peer_late").unwrap()],
        "an offline coordinator does not count"
    );
    assert!(promotions(&[device("peer_plain", 0, &[])], 2).is_empty(), "no capable device");
}

#[test]
fn a_promotion_survives_reannouncements_while_online() {
    let mut d = device("peer_a", 0, &["relay"]);
    d.promote();
    let again = Device::announce(Some(&d), announcement("peer_a", "u", &["relay"]), t(60)).unwrap();
    assert!(again.coordinator);
    d.go_offline();
    let back = Device::announce(Some(&d), announcement("peer_a", "u", &["relay"]), t(9000)).unwrap();
    assert!(!back.coordinator, "promotion ended when it went offline");
}
