//! Parking: a connection that closed abruptly, while its seats are being
//! held (seat grace), keeps what other instances send it here, in order,
//! until the hold takes it ([`Courier::unpark`]).

use tracing::warn;

use super::Courier;
use crate::core::event::Event;
use crate::domain::ConnId;

/// Events kept for one parked connection, at most.
pub const PARKED_MAX: usize = 4096;

impl Courier {
    /// `conn` closed abruptly and its seats are about to be held: what other
    /// instances send it is kept until [`Self::unpark`].
    pub fn park(&self, conn: &ConnId) {
        self.parked.insert(conn.clone(), Vec::new());
    }

    /// Whether `conn` is parked.
    pub fn is_parked(&self, conn: &ConnId) -> bool {
        self.parked.contains_key(conn)
    }

    /// Ends `conn`'s parking: what was kept for it, in the order it came.
    pub fn unpark(&self, conn: &ConnId) -> Vec<Event> {
        self.parked.remove(conn).map(|(_, events)| events).unwrap_or_default()
    }

    /// Keeps `event` for `conn` if it is parked; whether it did.
    pub(super) fn park_event(&self, conn: &ConnId, event: Event) -> bool {
        let Some(mut parked) = self.parked.get_mut(conn) else { return false };
        if parked.len() >= PARKED_MAX {
            warn!(conn_id = %conn, "an event for a connection being held was dropped: too many came before the hold");
        } else {
            parked.push(event);
        }
        true
    }
}
