//! Everything the core sends to a connection, whatever its protocol. Each
//! protocol renders an event in its own wire form (`transport/<feature>/wire.rs`)
//! or does not carry it. Events cross instances on the cluster bus as they
//! are, so every field is plain data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::mesh::{ClientId, OrgId};
use crate::domain::peerjs::PeerMessage;
use crate::domain::presence::DeviceId;
use crate::domain::queue::SignalBody;
use crate::domain::signal::SignalKind;
use crate::domain::{RoomId, UserId};

/// A server-to-client event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// To a joiner: the participants, joiner included, in join order.
    RoomUsers {
        /// The room.
        room: RoomId,
        /// Its participants.
        users: Vec<UserId>,
    },
    /// To a room's participants: someone joined.
    UserJoined {
        /// The room.
        room: RoomId,
        /// Who joined.
        user: UserId,
    },
    /// To a room's participants: someone left (or disconnected).
    UserLeft {
        /// The room.
        room: RoomId,
        /// Who left.
        user: UserId,
    },
    /// To one participant: an offer, answer or candidate from another.
    Relay {
        /// The room both are in.
        room: RoomId,
        /// The sender's user id there.
        sender: UserId,
        /// Which message.
        kind: SignalKind,
        /// Its body, exactly as sent.
        body: Value,
    },
    /// To a sender: relays it sent to a held seat were kept and never
    /// delivered (the seat's grace ended without its user coming back).
    RelayExpired {
        /// The room.
        room: RoomId,
        /// The user they were for.
        target: UserId,
        /// How many.
        count: usize,
    },
    /// To a room's participants: its host left and another took over.
    HostChanged {
        /// The room.
        room: RoomId,
        /// The new host's user id.
        host_id: UserId,
        /// The new host's display name.
        host: String,
    },
    /// To a room's host: someone asks to join.
    JoinRequest {
        /// The room.
        room: RoomId,
        /// Who asks.
        user: UserId,
        /// Their display name.
        user_name: String,
    },
    /// To whoever waits on a join request: the host's answer, or why it lapsed.
    JoinDecided {
        /// The room.
        room: RoomId,
        /// Who asked.
        user: UserId,
        /// Whether they may join.
        approved: bool,
        /// Why it was rejected without the host (`timeout`, `room-closed`).
        reason: Option<String>,
    },
    /// To directory subscribers: every room (up to the listing limit).
    RoomList {
        /// The rooms, oldest first.
        rooms: Vec<RoomView>,
        /// When it was made, Unix milliseconds.
        timestamp: u64,
    },
    /// To directory clients: how many are connected, cluster-wide.
    ClientCount {
        /// Directory clients.
        count: usize,
        /// When it was counted, Unix milliseconds.
        timestamp: u64,
    },
    /// To a channel's subscribers: a client's event relayed as sent.
    ChannelMessage {
        /// The event's name.
        event: String,
        /// Its payload.
        payload: Value,
    },
    /// To an organization: its clients.
    ClientList {
        /// Earliest join first.
        clients: Vec<ClientView>,
    },
    /// To an organization: its admin is alive.
    AdminHeartbeat {
        /// The admin.
        admin: ClientId,
        /// Unix milliseconds.
        timestamp: u64,
    },
    /// To an organization: a new admin.
    AdminElected {
        /// The organization.
        org: OrgId,
        /// The admin.
        admin: ClientId,
        /// Its priority in the election.
        priority: u32,
        /// Whether it is a temporary admin.
        temporary: bool,
        /// Unix milliseconds.
        timestamp: u64,
    },
    /// To an organization: a temporary admin gave the seat up.
    AdminSteppedDown {
        /// The former admin.
        admin: ClientId,
        /// Why (`main-admin-returned`).
        reason: String,
        /// Unix milliseconds.
        timestamp: u64,
    },
    /// To an organization's clients on one instance: that instance is alive.
    ServerHeartbeat {
        /// Unix milliseconds.
        timestamp: u64,
        /// The organization's clients, cluster-wide.
        client_count: usize,
    },
    /// To an organization's location viewers: where a client is.
    LocationUpdate {
        /// The client.
        client: ClientId,
        /// Degrees.
        latitude: f64,
        /// Degrees.
        longitude: f64,
        /// Metres.
        accuracy: f64,
        /// Unix milliseconds.
        timestamp: u64,
    },
    /// To one client or an organization: a client's message, as sent.
    PeerMessage {
        /// The sender.
        from: ClientId,
        /// The sender's display name.
        from_name: String,
        /// The message.
        message: Value,
        /// Unix milliseconds.
        timestamp: u64,
    },
    /// To a device: a queued signal, to be confirmed.
    Signal {
        /// Its id in the device's queue.
        id: u64,
        /// Offer, answer or candidate.
        kind: SignalKind,
        /// The sending device.
        from: DeviceId,
        /// The receiving device.
        to: DeviceId,
        /// Its body, as sent (its JSON text, shared).
        data: SignalBody,
        /// When it was sent, Unix milliseconds.
        timestamp: u64,
    },
    /// To a device: a signal it sent expired unconfirmed.
    SignalExpired {
        /// The device that never took it.
        to: DeviceId,
        /// What it was.
        kind: SignalKind,
        /// When it was sent, Unix milliseconds.
        queued_at: u64,
    },
    /// To a topic's subscribers: a published message, as the frame each of
    /// them gets (its JSON text, shared).
    TopicMessage {
        /// The frame.
        message: SignalBody,
    },
    /// Between a worker and a client: a signal, its sender named by id.
    WorkerSignal {
        /// The worker's id, or the client's connection id.
        from: String,
        /// Offer, answer or candidate.
        kind: SignalKind,
        /// Its body, as sent.
        data: Value,
    },
    /// A PeerJS message from one peer to another, as forwarded.
    PeerJs(PeerMessage),
}

/// A room as the live directory lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// The room id.
    pub id: RoomId,
    /// When it was created, Unix milliseconds.
    pub created_at: u64,
    /// Its participants in join order, with their display names.
    pub participants: Vec<ParticipantView>,
    /// How many participants.
    pub participant_count: usize,
    /// Its metadata, for rooms that have it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub meta: Option<RoomMetaView>,
}

/// A participant as the directory lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// The user id.
    pub id: UserId,
    /// The display name (the user id when none was given).
    pub name: String,
}

/// A room's metadata as the directory lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMetaView {
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The host's display name.
    pub host: String,
    /// The host's user id.
    pub host_id: UserId,
    /// Whether joining needs the host's approval.
    pub requires_approval: bool,
}

/// A mesh client as its organization's list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    /// Its id.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// Declared capabilities.
    pub capabilities: Vec<String>,
    /// Its last heartbeat or message, Unix milliseconds.
    pub last_seen: u64,
}
