//! The seats each local connection holds, as it was told: for
//! `MAX_ROOMS_PER_CONNECTION`, and as the [`Intent`] the store is made to
//! agree with after an outage, a data loss or an answer that came too late
//! ([`crate::core::upkeep`]). A seat is recorded here before the store is
//! asked for it and given up here before the store is asked to remove it, so
//! a reconcile running meanwhile never undoes either.

use dashmap::DashMap;

use crate::domain::{ConnId, RoomId, UserId};
use crate::store::rooms::Intent;

/// What one connection holds: (room, user) pairs.
pub type Held = Vec<(RoomId, UserId)>;

/// Seats by connection, on this instance, and the connections among them
/// that closed and whose seats are held (seat grace).
#[derive(Default)]
pub struct SeatBook(DashMap<ConnId, Held>, dashmap::DashSet<ConnId>);

impl SeatBook {
    /// `conn` holds `user`'s seat in `room` (replacing another user's there);
    /// the user it held there before, if any.
    pub fn remember(&self, conn: &ConnId, room: &RoomId, user: &UserId) -> Option<UserId> {
        let mut seats = self.0.entry(conn.clone()).or_default();
        let before = seats.iter().position(|(r, _)| r == room).map(|at| seats.remove(at).1);
        seats.push((room.clone(), user.clone()));
        before
    }

    /// `conn` no longer holds a seat in `room`; the user it held, if any.
    pub fn forget(&self, conn: &ConnId, room: &RoomId) -> Option<UserId> {
        let before = self.0.get_mut(conn).and_then(|mut seats| {
            let at = seats.iter().position(|(r, _)| r == room)?;
            Some(seats.remove(at).1)
        });
        self.0.remove_if(conn, |_, seats| seats.is_empty());
        before
    }

    /// Puts back what `conn` held in `room` before a change that did not happen.
    pub fn undo(&self, conn: &ConnId, room: &RoomId, before: Option<UserId>) {
        match before {
            Some(user) => drop(self.remember(conn, room, &user)),
            None => drop(self.forget(conn, room)),
        }
    }

    /// `conn` has closed: it holds nothing.
    pub fn clear(&self, conn: &ConnId) {
        self.0.remove(conn);
        self.1.remove(conn);
    }

    /// `conn` has closed and its seats are held until it is [`Self::clear`]ed.
    pub fn hold(&self, conn: &ConnId) {
        self.1.insert(conn.clone());
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

impl Intent for SeatBook {
    fn seats(&self) -> Vec<(ConnId, Held)> {
        self.live()
    }

    fn holds(&self, conn: &ConnId, room: &RoomId) -> Option<UserId> {
        self.0.get(conn)?.iter().find(|(r, _)| r == room).map(|(_, u)| u.clone())
    }

    fn held(&self, conn: &ConnId) -> bool {
        self.1.contains(conn)
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
        assert_eq!(book.remember(&c, &r1, &a), None);
        assert_eq!(book.remember(&c, &r1, &b), Some(a.clone()));
        assert_eq!(book.holds(&c, &r1), Some(b.clone()));
        assert_eq!(book.live(), vec![(c.clone(), vec![(r1.clone(), b.clone())])]);
        assert!(book.limit_reached(&c, &r2, 1) && !book.limit_reached(&c, &r1, 1), "its own room is no new seat");
        book.undo(&c, &r1, Some(a.clone()));
        assert_eq!(book.holds(&c, &r1), Some(a.clone()), "a change undone puts back what was there");
        assert_eq!(book.forget(&c, &r1), Some(a.clone()));
        assert!(book.live().is_empty() && book.holds(&c, &r1).is_none());
        book.remember(&c, &r2, &a);
        book.hold(&c);
        assert!(book.held(&c) && book.holds(&c, &r2).is_some(), "a held connection keeps its seats");
        book.clear(&c);
        assert!(book.live().is_empty() && !book.held(&c));
    }
}
