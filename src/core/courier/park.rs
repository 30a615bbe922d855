//! Parking: a connection of `/` that has closed (seat grace on) is parked
//! from the moment its close is known until its seats are held or given up:
//! what other instances send it meanwhile is kept here, in order, for the
//! hold to keep in the store ([`Courier::unpark`]); then it stays known as
//! *settled* until it is detached, so a relay that found it gone knows
//! whether to wait ([`Courier::parking`]).

use tracing::warn;

use super::Courier;
use crate::core::event::Event;
use crate::domain::ConnId;

/// Events kept for one parked connection, at most.
pub const PARKED_MAX: usize = 4096;

/// Where a closed connection is in its parking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Not parked: open, or detached, or its protocol does not park.
    No,
    /// Closed; its seats are being held or given up.
    Parked,
    /// Its seats are held or given up; it is not detached yet.
    Settled,
}

impl Courier {
    /// `conn` has closed: what other instances send it is kept until [`Self::unpark`].
    pub fn park(&self, conn: &ConnId) {
        self.parked.insert(conn.clone(), Some(Vec::new()));
    }

    /// Where `conn` is in its parking.
    pub fn parking(&self, conn: &ConnId) -> Parking {
        match self.parked.get(conn).as_deref() {
            None => Parking::No,
            Some(Some(_)) => Parking::Parked,
            Some(None) => Parking::Settled,
        }
    }

    /// Ends `conn`'s parking: what was kept for it, in the order it came.
    pub fn unpark(&self, conn: &ConnId) -> Vec<Event> {
        match self.parked.get_mut(conn) {
            Some(mut parked) => parked.take().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Keeps `event` for `conn` if it is parked; whether it did.
    pub(super) fn park_event(&self, conn: &ConnId, event: Event) -> bool {
        let Some(mut parked) = self.parked.get_mut(conn) else { return false };
        let Some(events) = parked.as_mut() else { return false };
        if events.len() >= PARKED_MAX {
            warn!(conn_id = %conn, "an event for a connection being held was dropped: too many came before the hold");
        } else {
            events.push(event);
        }
        true
    }
}
