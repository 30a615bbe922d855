//! Counters for `GET /metrics`, and the Prometheus text they are shown in.
//!
//! Counters are per instance (Prometheus scrapes each instance and sums);
//! presence figures (devices, networks, coordinators, queued signals) and
//! rooms come from the store, so in a cluster every instance shows the same
//! cluster-wide value for them.
//!
//! Must not import `transport` or `core`: the core and the routes feed it.

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::PROTOCOL_NAMES;

/// One counter per protocol, in [`PROTOCOL_NAMES`]' order.
type PerProtocol = [AtomicU64; PROTOCOL_NAMES.len()];

/// What became of a signal sent on `/devices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Handed to the receiver's live connection.
    Delivered,
    /// Kept until the receiver connects.
    Queued,
    /// Expired unconfirmed; its sender was told.
    Expired,
}

impl SignalOutcome {
    const ALL: [SignalOutcome; 3] = [Self::Delivered, Self::Queued, Self::Expired];

    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Queued => "queued",
            Self::Expired => "expired",
        }
    }
}

/// What seat grace did: seats held, resumed, expired; relays kept, and
/// relays whose senders were told they expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraceOutcome {
    /// A seat held for a connection that closed abruptly.
    Held,
    /// A held seat taken back by its user.
    Resumed,
    /// A held seat whose grace ended.
    Expired,
    /// A relay kept for a held seat.
    Kept,
    /// A kept relay never delivered (its sender told `relay-expired`).
    Unsent,
}

impl GraceOutcome {
    const ALL: [GraceOutcome; 5] = [Self::Held, Self::Resumed, Self::Expired, Self::Kept, Self::Unsent];

    fn label(self) -> &'static str {
        ["held", "resumed", "expired", "kept", "unsent"][self as usize]
    }
}

/// The core's relay events, by wire name.
pub const RELAY_EVENTS: [&str; 3] = ["offer", "answer", "ice-candidate"];

/// Connections of this instance over every namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketCount {
    /// All of them.
    pub all: usize,
    /// Those on the websocket transport.
    pub websocket: usize,
}

/// This instance's counters.
#[derive(Default)]
pub struct Metrics {
    signals: [AtomicU64; 3],
    relays: [AtomicU64; 3],
    grace: [AtomicU64; 5],
    /// `ROOM_LIST_INTERVAL_MS` ticks: a list sent, skipped (no room, no subscriber, no list).
    room_list_ticks: [AtomicU64; 2],
    sockets: OnceLock<Box<dyn Fn() -> SocketCount + Send + Sync>>,
    /// Raw WebSocket connections open and opened, messages received, per protocol.
    open: PerProtocol,
    opened: PerProtocol,
    messages: PerProtocol,
}

impl Metrics {
    /// Counts a signal's outcome.
    pub fn signal(&self, outcome: SignalOutcome, n: u64) {
        self.signals[outcome as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` of what seat grace did.
    pub fn grace(&self, outcome: GraceOutcome, n: u64) {
        self.grace[outcome as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a relay of the core (`event` one of [`RELAY_EVENTS`]).
    pub fn relayed(&self, event: &str) {
        if let Some(i) = RELAY_EVENTS.iter().position(|e| *e == event) {
            self.relays[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a tick of the periodic room list: whether a list went out to this instance's subscribers.
    pub fn room_list_tick(&self, sent: bool) {
        self.room_list_ticks[usize::from(!sent)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection of `protocol` (one of [`PROTOCOL_NAMES`]) opened.
    pub fn protocol_opened(&self, protocol: &str) {
        self.bump(&self.open, protocol, 1);
        self.bump(&self.opened, protocol, 1);
    }

    /// Counts a connection of `protocol` closed.
    pub fn protocol_closed(&self, protocol: &str) {
        self.bump(&self.open, protocol, u64::MAX);
    }

    /// Counts a message a client of `protocol` sent.
    pub fn protocol_message(&self, protocol: &str) {
        self.bump(&self.messages, protocol, 1);
    }

    fn bump(&self, counters: &PerProtocol, protocol: &str, by: u64) {
        if let Some(i) = PROTOCOL_NAMES.iter().position(|p| *p == protocol) {
            counters[i].fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Per protocol: connections open now (socket.io's counted by its layer), opened, and messages received.
    fn protocols(&self) -> impl Iterator<Item = (&'static str, [u64; 3])> + '_ {
        PROTOCOL_NAMES.iter().enumerate().map(|(i, name)| {
            let open = match *name {
                "socket.io" => self.sockets().all as u64,
                _ => self.open[i].load(Ordering::Relaxed),
            };
            (*name, [open, self.opened[i].load(Ordering::Relaxed), self.messages[i].load(Ordering::Relaxed)])
        })
    }

    /// Sets how connections are counted (once the socket.io layer exists).
    pub fn count_sockets_with(&self, count: impl Fn() -> SocketCount + Send + Sync + 'static) {
        let _ = self.sockets.set(Box::new(count));
    }

    /// Connections on this instance, over every namespace.
    pub fn sockets(&self) -> SocketCount {
        self.sockets.get().map_or_else(SocketCount::default, |count| count())
    }

    fn signals(&self) -> [(SignalOutcome, u64); 3] {
        SignalOutcome::ALL.map(|o| (o, self.signals[o as usize].load(Ordering::Relaxed)))
    }

    fn room_list_ticks(&self) -> [(&'static str, u64); 2] {
        let n = |i: usize| self.room_list_ticks[i].load(Ordering::Relaxed);
        [("sent", n(0)), ("skipped", n(1))]
    }

    fn relays(&self) -> [(&'static str, u64); 3] {
        let mut i = 0;
        RELAY_EVENTS.map(|e| {
            let n = self.relays[i].load(Ordering::Relaxed);
            i += 1;
            (e, n)
        })
    }
}

/// Everything `/metrics` shows.
pub struct Snapshot<'a> {
    /// This instance's counters.
    pub metrics: &'a Metrics,
    /// Socket.io connections on the default namespace of this instance.
    pub connections: usize,
    /// Rooms (cluster-wide with Redis).
    pub rooms: usize,
    /// Presence figures from the device store.
    pub presence: &'a crate::domain::presence::PresenceStats,
    /// Signals waiting in queues.
    pub queued: usize,
    /// Whether this instance leads the cluster.
    pub leader: bool,
    /// Workers registered, healthy, and virtual nodes on the ring.
    pub workers: (usize, usize, usize),
    /// `POST /bootstrap` answers given by this instance.
    pub bootstraps: u64,
}

/// The snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: usize| vec![(String::new(), v as u64)];
    metric("switchboard_connections", "gauge", "Socket.io connections on / of this instance.", &plain(s.connections));
    metric(
        "switchboard_websocket_connections",
        "gauge",
        "Connections of this instance using the websocket transport, every namespace.",
        &plain(s.metrics.sockets().websocket),
    );
    metric("switchboard_rooms", "gauge", "Rooms with at least one participant.", &plain(s.rooms));
    let relays: Vec<_> = s.metrics.relays().iter().map(|(e, n)| (format!("{{event=\"{e}\"}}"), *n)).collect();
    metric("switchboard_relays_total", "counter", "Relays delivered by this instance, by event.", &relays);
    let p = s.presence;
    let grace: Vec<_> = GraceOutcome::ALL
        .iter()
        .map(|o| (format!("{{outcome=\"{}\"}}", o.label()), s.metrics.grace[*o as usize].load(Ordering::Relaxed)))
        .collect();
    metric(
        "switchboard_seat_grace_total",
        "counter",
        "Seat grace on this instance: seats held, resumed and expired; relays kept for held seats, and kept relays never delivered.",
        &grace,
    );
    metric("switchboard_active_devices", "gauge", "Devices online.", &plain(p.active_devices));
    metric("switchboard_active_networks", "gauge", "Networks with a device online.", &plain(p.active_networks));
    let coordinators: Vec<_> =
        p.coordinators.iter().map(|(net, n)| (format!("{{network=\"{net}\"}}"), *n as u64)).collect();
    metric("switchboard_coordinators", "gauge", "Online coordinators per network with devices online.", &coordinators);
    metric("switchboard_queued_signals", "gauge", "Signals waiting for their device.", &plain(s.queued));
    let signals: Vec<_> =
        s.metrics.signals().iter().map(|(o, n)| (format!("{{outcome=\"{}\"}}", o.label()), *n)).collect();
    metric("switchboard_signals_total", "counter", "Device signals by outcome, on this instance.", &signals);
    metric("switchboard_leader", "gauge", "1 if this instance is the cluster's leader.", &plain(usize::from(s.leader)));
    let (registered, healthy, vnodes) = s.workers;
    let workers = vec![
        ("{health=\"healthy\"}".to_owned(), healthy as u64),
        ("{health=\"unhealthy\"}".to_owned(), (registered - healthy.min(registered)) as u64),
    ];
    metric("switchboard_workers", "gauge", "Registered workers by health.", &workers);
    metric("switchboard_ring_virtual_nodes", "gauge", "Virtual nodes on the worker ring.", &plain(vnodes));
    metric(
        "switchboard_bootstraps_total",
        "counter",
        "Bootstrap answers given by this instance.",
        &[(String::new(), s.bootstraps)],
    );
    let per = |k: usize| -> Vec<_> {
        s.metrics.protocols().map(|(name, n)| (format!("{{protocol=\"{name}\"}}"), n[k])).collect()
    };
    metric("switchboard_protocol_connections", "gauge", "Connections of this instance, by protocol.", &per(0));
    metric(
        "switchboard_protocol_connections_total",
        "counter",
        "Raw WebSocket connections opened on this instance, by protocol (socket.io's are not counted here).",
        &per(1),
    );
    metric("switchboard_protocol_messages_total", "counter", "Messages clients sent, by protocol.", &per(2));
    let ticks: Vec<_> = s.metrics.room_list_ticks().iter().map(|(o, n)| (format!("{{outcome=\"{o}\"}}"), *n)).collect();
    metric(
        "switchboard_room_list_ticks_total",
        "counter",
        "Periodic /dashboard room list ticks of this instance: a list sent to its subscribers, or skipped (no room, no subscriber here, or the store unavailable).",
        &ticks,
    );
    out
}

#[cfg(test)]
mod tests;
