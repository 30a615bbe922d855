//! A room and its rules: who may join, who leaves, and who may relay to whom.
//!
//! Participants are kept in join order (the order `room-users` reports). A user
//! holds one seat per room; the same user joining from a new connection takes
//! the seat over (a reconnect), keeping its place in the order.
//!
//! A seat whose connection closed abruptly may be *held* (seat grace): it
//! stays, relays to it are to be kept rather than delivered ([`Route::held`]),
//! and the same user joining again *resumes* it ([`Joined::Resumed`]); it stays
//! marked held until the kept relays are handed over ([`Room::release`]).
//!
//! A room may carry metadata (seed 001's dashboard): a name, a description, a
//! host, and whether joining needs the host's approval. The host is a
//! participant; when it leaves, the next participant in join order becomes
//! host. In a room that requires approval, only the host and users it
//! approved may take a seat.
//!
//! Must not import an I/O crate or anything outside `domain` (as all of `domain`).

use std::time::SystemTime;

use super::ids::{ConnId, RoomId, UserId};

/// A participant: which user, on which connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The participant's user id in this room.
    pub user: UserId,
    /// The connection that holds the seat.
    pub conn: ConnId,
    /// Whether the seat is held for a connection that closed abruptly (or
    /// resumed, its kept relays not yet handed over).
    pub held: bool,
}

impl Member {
    /// A live participant.
    pub fn new(user: UserId, conn: ConnId) -> Self {
        Self { user, conn, held: false }
    }
}

/// What a successful join did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    /// A new participant took a seat.
    New,
    /// The user's seat moved from an older connection to this one.
    Rejoined {
        /// The connection that no longer holds the seat.
        replaced: ConnId,
    },
    /// The user's held seat moved to this connection: the seat stays held
    /// until its kept relays are handed over ([`Room::release`]).
    Resumed {
        /// The connection that closed.
        replaced: ConnId,
    },
    /// This connection already held this seat; nothing changed.
    Already,
}

/// Where a relay goes, once the rules allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The sender's user id in the room (sent to the target as `senderId`).
    pub sender: UserId,
    /// The target's connection.
    pub target: ConnId,
    /// Whether the target's seat is held: the relay is to be kept for it.
    pub held: bool,
}

/// A participant that left, and who hosts the room now if that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departure {
    /// The user id that held the seat.
    pub user: UserId,
    /// The new host, when the one who left was the host and others remain.
    pub new_host: Option<UserId>,
}

/// A room rule that refused an operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The room has `max` participants already.
    #[error("room is full ({max} participants)")]
    Full {
        /// The configured maximum.
        max: usize,
    },
    /// The connection is not a participant of the room.
    #[error("not a participant of this room")]
    NotInRoom,
    /// No participant of the room has the target user id.
    #[error("no participant with that userId in this room")]
    TargetNotFound,
    /// The connection is in the room under another user id.
    #[error("this connection is already in the room as {0:?}; leave-room first")]
    AlreadyJoinedAs(UserId),
    /// The room requires approval and the host has not approved this user.
    #[error("this room requires the host's approval: send join-request first")]
    NotApproved,
    /// A room with this id exists already.
    #[error("a room with this id exists already")]
    AlreadyExists,
    /// Only the room's host may do this.
    #[error("only the room's host may do this")]
    NotHost,
    /// No join request of this user is waiting (never sent, decided, or expired).
    #[error("no join request of this user is waiting")]
    NoRequest,
    /// The room has [`MAX_PENDING_REQUESTS`] requests waiting already.
    #[error("too many join requests are waiting for this room's host")]
    TooManyRequests,
    /// No room has this id.
    #[error("no room with this id")]
    NoSuchRoom,
}

/// A room: its id, creation time, participants in join order, and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Room {
    id: RoomId,
    created_at: SystemTime,
    members: Vec<Member>,
    meta: Option<RoomMeta>,
}

impl Room {
    /// An empty room created at `created_at`.
    pub fn new(id: RoomId, created_at: SystemTime) -> Self {
        Self { id, created_at, members: Vec::new(), meta: None }
    }

    /// A room as stored elsewhere (a Redis hash), members in join order.
    pub fn restore(id: RoomId, created_at: SystemTime, members: Vec<Member>, meta: Option<RoomMeta>) -> Self {
        Self { id, created_at, members, meta }
    }

    /// The connection holding `user`'s seat, if the user has one.
    pub fn seat_of(&self, user: &UserId) -> Option<&ConnId> {
        self.members.iter().find(|m| &m.user == user).map(|m| &m.conn)
    }

    /// The room id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// When the room was created.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// Participants in join order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Participant user ids in join order.
    pub fn users(&self) -> Vec<UserId> {
        self.members.iter().map(|m| m.user.clone()).collect()
    }

    /// Whether the room has no participants left (it is then deleted).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Connections of every participant except `conn` (who to notify).
    pub fn peers_of(&self, conn: &ConnId) -> Vec<ConnId> {
        self.members.iter().filter(|m| &m.conn != conn).map(|m| m.conn.clone()).collect()
    }

    /// Seats `user` on `conn`, within `max_size` participants.
    pub fn join(&mut self, user: &UserId, conn: &ConnId, max_size: usize) -> Result<Joined, RoomError> {
        if let Some(mine) = self.members.iter().find(|m| &m.conn == conn) {
            return if &mine.user == user {
                Ok(Joined::Already)
            } else {
                Err(RoomError::AlreadyJoinedAs(mine.user.clone()))
            };
        }
        if let Some(seat) = self.members.iter_mut().find(|m| &m.user == user) {
            let replaced = std::mem::replace(&mut seat.conn, conn.clone());
            return Ok(if seat.held { Joined::Resumed { replaced } } else { Joined::Rejoined { replaced } });
        }
        if let Some(meta) = &self.meta
            && meta.requires_approval
            && &meta.host_id != user
            && !meta.approved.contains(user)
        {
            return Err(RoomError::NotApproved);
        }
        if self.members.len() >= max_size {
            return Err(RoomError::Full { max: max_size });
        }
        self.members.push(Member::new(user.clone(), conn.clone()));
        Ok(Joined::New)
    }

    /// Removes the participant on `conn`; if it hosted the room, the next
    /// participant in join order becomes host.
    pub fn leave(&mut self, conn: &ConnId) -> Option<Departure> {
        let at = self.members.iter().position(|m| &m.conn == conn)?;
        let user = self.members.remove(at).user;
        let next = self.members.first().map(|m| m.user.clone());
        let mut new_host = None;
        if let Some(meta) = self.meta.as_mut() {
            meta.names.retain(|(u, _)| u != &user);
            if meta.host_id == user
                && let Some(next) = next
            {
                meta.host = meta.name_of(&next);
                meta.host_id = next.clone();
                new_host = Some(next);
            }
        }
        Some(Departure { user, new_host })
    }

    /// Allows a relay from the participant on `from` to the participant `to`.
    pub fn route(&self, from: &ConnId, to: &UserId) -> Result<Route, RoomError> {
        let sender = self.members.iter().find(|m| &m.conn == from).ok_or(RoomError::NotInRoom)?;
        let target = self.members.iter().find(|m| &m.user == to).ok_or(RoomError::TargetNotFound)?;
        Ok(Route { sender: sender.user.clone(), target: target.conn.clone(), held: target.held })
    }

    /// Holds the seat of the participant on `conn` (its connection closed
    /// abruptly); the user, if it has a seat here.
    pub fn hold(&mut self, conn: &ConnId) -> Option<UserId> {
        let seat = self.members.iter_mut().find(|m| &m.conn == conn)?;
        seat.held = true;
        Some(seat.user.clone())
    }

    /// Ends the hold of `user`'s seat resumed on `conn` (its kept relays are
    /// handed over): relays go to it again. Whether anything changed.
    pub fn release(&mut self, user: &UserId, conn: &ConnId) -> bool {
        match self.members.iter_mut().find(|m| &m.user == user && &m.conn == conn && m.held) {
            Some(seat) => {
                seat.held = false;
                true
            }
            None => false,
        }
    }
}

mod approval;
#[cfg(test)]
mod tests;

pub use approval::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PENDING_REQUESTS, Request, RoomMeta};
