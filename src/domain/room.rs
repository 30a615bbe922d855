//! A room and its rules: who may join, who leaves, and who may relay to whom.
//!
//! Participants are kept in join order (the order `room-users` reports). A user
//! holds one seat per room; the same user joining from a new connection takes
//! the seat over (a reconnect), keeping its place in the order.

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
}

/// A room: its id, creation time and participants in join order.
#[derive(Clone, Debug, PartialEq)]
pub struct Room {
    id: RoomId,
    created_at: SystemTime,
    members: Vec<Member>,
}

impl Room {
    /// An empty room created at `created_at`.
    pub fn new(id: RoomId, created_at: SystemTime) -> Self {
        Self { id, created_at, members: Vec::new() }
    }

    /// A room as stored elsewhere (a Redis hash), members in join order.
    pub fn restore(id: RoomId, created_at: SystemTime, members: Vec<Member>) -> Self {
        Self { id, created_at, members }
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
        if self.members.len() >= max_size {
            return Err(RoomError::Full { max: max_size });
        }
        self.members.push(Member { user: user.clone(), conn: conn.clone() });
        Ok(Joined::New)
    }

    /// Removes the participant on `conn`, returning its user id if it was one.
    pub fn leave(&mut self, conn: &ConnId) -> Option<UserId> {
        let at = self.members.iter().position(|m| &m.conn == conn)?;
        Some(self.members.remove(at).user)
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
        assert_eq!(r.leave(&conn("1")), Some(user("a")));
        assert_eq!(r.leave(&conn("1")), None);
        assert_eq!(r.users(), vec![user("b")]);
        assert_eq!(r.leave(&conn("2")), Some(user("b")));
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
}
