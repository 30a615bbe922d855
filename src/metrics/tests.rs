//! The `/metrics` text: every family named, typed and explained, counters moving.

use super::*;
use crate::domain::presence::NetworkId;
use crate::domain::presence::PresenceStats;

#[test]
fn every_family_has_help_and_type_and_counters_move() {
    let metrics = Metrics::default();
    metrics.relayed("offer");
    metrics.relayed("offer");
    metrics.relayed("not-a-relay");
    metrics.signal(SignalOutcome::Queued, 3);
    metrics.count_sockets_with(|| SocketCount { all: 9, websocket: 7 });
    metrics.room_list_tick(true);
    metrics.protocol_opened("peerjs");
    metrics.protocol_opened("peerjs");
    metrics.protocol_closed("peerjs");
    metrics.protocol_message("y-webrtc");
    metrics.room_list_tick(false);
    metrics.room_list_tick(false);
    let presence = PresenceStats {
        active_devices: 4,
        active_networks: 2,
        coordinators: vec![(NetworkId::parse("home").unwrap(), 2)],
    };
    let text = render(&Snapshot {
        metrics: &metrics,
        connections: 5,
        rooms: 1,
        presence: &presence,
        queued: 3,
        leader: true,
        workers: (3, 2, 300),
        bootstraps: 4,
    });
    for line in [
        "switchboard_relays_total{event=\"offer\"} 2",
        "switchboard_relays_total{event=\"answer\"} 0",
        "switchboard_signals_total{outcome=\"queued\"} 3",
        "switchboard_coordinators{network=\"home\"} 2",
        "switchboard_websocket_connections 7",
        "switchboard_connections 5",
        "switchboard_leader 1",
        "switchboard_workers{health=\"unhealthy\"} 1",
        "switchboard_ring_virtual_nodes 300",
        "switchboard_bootstraps_total 4",
        "switchboard_room_list_ticks_total{outcome=\"sent\"} 1",
        "switchboard_room_list_ticks_total{outcome=\"skipped\"} 2",
        "switchboard_protocol_connections{protocol=\"peerjs\"} 1",
        "switchboard_protocol_connections{protocol=\"socket.io\"} 9",
        "switchboard_protocol_connections_total{protocol=\"peerjs\"} 2",
        "switchboard_protocol_messages_total{protocol=\"y-webrtc\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families, text.lines().filter(|l| l.starts_with("# HELP ")).count());
    assert_eq!(families, 18);
}
