//! A room and its rules: who may join, who leaves, and who may relay to whom.
//!
//! Participants are kept in join order (the order `room-users` reports). A user
//! holds one seat per room; the same user joining from a new connection takes
//! the seat over (a reconnect), keeping its place in the order.
//!
//! A room may carry metadata (seed 001's dashboard): a name, a description, a
//! host, and whether joining needs the host's approval. The host is a
//! participant; when it leaves, the next participant in join order becomes
//! host. In a room that requires approval, only the host and users it
//! approved may take a seat.

use std::time::SystemTime;

use super::ids::{ConnId, RoomId, UserId};

/// A participant: which user, on which connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The participant's user id in this room.
    pub user: UserId,
    /// The connection that holds the seat.
    pub conn: ConnId,
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
}

/// Longest room name, host name or user display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest room description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A room's optional metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomMeta {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The host's display name.
    pub host: String,
    /// The host's user id (a participant while the room has any).
    pub host_id: UserId,
    /// Whether a seat needs the host's approval.
    pub requires_approval: bool,
    /// Users the host let in, kept while the room lives.
    pub approved: Vec<UserId>,
    /// Display names given when joining, by user (participants only).
    pub names: Vec<(UserId, String)>,
    /// Join requests waiting for the host: who, and until when (Unix ms).
    pub requests: Vec<(UserId, u64)>,
}

/// Most join requests one room keeps waiting at once.
pub const MAX_PENDING_REQUESTS: usize = 64;

/// What became of a join request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Waiting for the host, until the deadline.
    Pending,
    /// The room needs no approval, or the user is already let in.
    Approved,
}

impl RoomMeta {
    /// The display name of `user`: the one it gave, else its id.
    pub fn name_of(&self, user: &UserId) -> String {
        self.names.iter().find(|(u, _)| u == user).map_or_else(|| user.as_str().to_owned(), |(_, n)| n.clone())
    }
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

    /// A new room with metadata, its host seated on `conn`.
    pub fn create(id: RoomId, created_at: SystemTime, meta: RoomMeta, conn: &ConnId) -> Self {
        let host = Member { user: meta.host_id.clone(), conn: conn.clone() };
        Self { id, created_at, members: vec![host], meta: Some(meta) }
    }

    /// The metadata, if the room has any.
    pub fn meta(&self) -> Option<&RoomMeta> {
        self.meta.as_ref()
    }

    /// Records `user`'s request to join at `now_ms`, waiting until `deadline_ms`.
    pub fn request(&mut self, user: &UserId, now_ms: u64, deadline_ms: u64) -> Result<Request, RoomError> {
        let meta = self.meta.as_mut().ok_or(RoomError::NoSuchRoom)?;
        if !meta.requires_approval || &meta.host_id == user || meta.approved.contains(user) {
            return Ok(Request::Approved);
        }
        // Requests past their deadline are dropped here too, whoever expires them.
        meta.requests.retain(|(u, deadline)| u != user && *deadline > now_ms);
        if meta.requests.len() >= MAX_PENDING_REQUESTS {
            return Err(RoomError::TooManyRequests);
        }
        meta.requests.push((user.clone(), deadline_ms));
        Ok(Request::Pending)
    }

    /// The host's answer to `user`'s waiting request, if `by` holds the
    /// host's seat: approved users may take a seat from now on.
    pub fn decide(&mut self, by: &ConnId, user: &UserId, approve: bool) -> Result<(), RoomError> {
        let host = self.meta.as_ref().map(|m| m.host_id.clone()).ok_or(RoomError::NotHost)?;
        if self.seat_of(&host) != Some(by) {
            return Err(RoomError::NotHost);
        }
        let meta = self.meta.as_mut().ok_or(RoomError::NotHost)?;
        let at = meta.requests.iter().position(|(u, _)| u == user).ok_or(RoomError::NoRequest)?;
        meta.requests.remove(at);
        if approve && !meta.approved.contains(user) {
            meta.approved.push(user.clone());
        }
        Ok(())
    }

    /// Drops `user`'s request if it is still waiting at `now_ms` past its
    /// deadline; whether it did (the request then counts as rejected).
    pub fn expire_request(&mut self, user: &UserId, now_ms: u64) -> bool {
        let Some(meta) = self.meta.as_mut() else { return false };
        let before = meta.requests.len();
        meta.requests.retain(|(u, deadline)| u != user || *deadline > now_ms);
        before != meta.requests.len()
    }

    /// Records the display name `user` gave (rooms with metadata only).
    pub fn name_user(&mut self, user: &UserId, name: &str) {
        let is_member = self.seat_of(user).is_some();
        if let Some(meta) = self.meta.as_mut().filter(|_| is_member) {
            meta.names.retain(|(u, _)| u != user);
            meta.names.push((user.clone(), name.to_owned()));
        }
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
            return Ok(Joined::Rejoined { replaced });
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
        self.members.push(Member { user: user.clone(), conn: conn.clone() });
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
        Ok(Route { sender: sender.user.clone(), target: target.conn.clone() })
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(r.route(&conn("1"), &user("b")), Ok(Route { sender: user("a"), target: conn("2") }));
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
}
