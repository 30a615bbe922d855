//! The seats each local connection holds, as it was told: for
//! `MAX_ROOMS_PER_CONNECTION`, and to put seats back when the store lost them
//! (a Redis restart: [`crate::core::upkeep`]).

use dashmap::DashMap;

use crate::domain::{ConnId, RoomId, UserId};

/// What one connection holds: (room, user) pairs.
pub type Held = Vec<(RoomId, UserId)>;

/// Seats by connection, on this instance.
#[derive(Default)]
pub struct SeatBook(DashMap<ConnId, Held>);

impl SeatBook {
    /// `conn` holds `user`'s seat in `room` (replacing another user's there).
    pub fn remember(&self, conn: &ConnId, room: &RoomId, user: &UserId) {
        let mut seats = self.0.entry(conn.clone()).or_default();
        seats.retain(|(r, _)| r != room);
        seats.push((room.clone(), user.clone()));
    }

    /// `conn` no longer holds a seat in `room`.
    pub fn forget(&self, conn: &ConnId, room: &RoomId) {
        if let Some(mut seats) = self.0.get_mut(conn) {
            seats.retain(|(r, _)| r != room);
        }
        self.0.remove_if(conn, |_, seats| seats.is_empty());
    }

    /// `conn` has closed: it holds nothing.
    pub fn clear(&self, conn: &ConnId) {
        self.0.remove(conn);
    }

    /// Whether a seat in `room` would be one more than `max` for `conn`.
    pub fn limit_reached(&self, conn: &ConnId, room: &RoomId, max: usize) -> bool {
        self.0.get(conn).is_some_and(|seats| !seats.iter().any(|(r, _)| r == room) && seats.len() >= max)
    }

    /// Every local connection holding seats, and its seats.
    pub fn live(&self) -> Vec<(ConnId, Held)> {
        self.0.iter().map(|e| (e.key().clone(), e.value().clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_holds_one_seat_per_room_up_to_the_limit_and_nothing_once_closed() {
        let book = SeatBook::default();
        let (c, r1, r2) = (ConnId::new("c"), RoomId::parse("r1").unwrap(), RoomId::parse("r2").unwrap());
        let (a, b) = (UserId::parse("a").unwrap(), UserId::parse("b").unwrap());
        book.remember(&c, &r1, &a);
        book.remember(&c, &r1, &b);
        assert_eq!(book.live(), vec![(c.clone(), vec![(r1.clone(), b.clone())])]);
        assert!(book.limit_reached(&c, &r2, 1) && !book.limit_reached(&c, &r1, 1), "its own room is no new seat");
        book.forget(&c, &r1);
        assert!(book.live().is_empty());
        book.remember(&c, &r2, &a);
        book.clear(&c);
        assert!(book.live().is_empty());
    }
}
