//! Parking: a connection of `/` that has closed (seat grace on) is parked
//! from the moment its close is known until its seats are held or given up:
//! what other instances send it meanwhile is kept here, in order, for the
//! hold to keep in the store ([`Courier::unpark`]). Once held, it stays known
//! here until its grace ends ([`Courier::forget_held`]): a relay another
//! instance routed to it by a copy of the room from before the hold is handed
//! to the core to keep ([`Courier::orphans`]) instead of being dropped.

use std::sync::Mutex;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::warn;

use super::Courier;
use crate::core::event::Event;
use crate::domain::ConnId;

/// Events kept for one parked connection, at most.
pub const PARKED_MAX: usize = 4096;

/// A closed connection's parking, as kept.
pub(super) enum Park {
    /// Its seats are being held or given up; what came meanwhile.
    Parked(Vec<Event>),
    /// Its seats are held.
    Held,
    /// Its seats were given up (or could not be held).
    Done,
}

/// Where a closed connection is in its parking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Not parked: open, or gone, or its protocol does not park.
    No,
    /// Closed; its seats are being held or given up.
    Parked,
    /// Its seats are held or given up.
    Settled,
}

/// Where relays for held connections go (the core's end, once asked for).
#[derive(Default)]
pub(super) struct Orphans(Mutex<Option<UnboundedSender<(ConnId, Event)>>>);

impl Courier {
    /// `conn` has closed: what other instances send it is kept until [`Self::unpark`]
    /// (with what was kept already, if its socket failed before its close was known).
    pub fn park(&self, conn: &ConnId) {
        self.parked.entry(conn.clone()).or_insert_with(|| Park::Parked(Vec::new()));
    }

    /// Where `conn` is in its parking.
    pub fn parking(&self, conn: &ConnId) -> Parking {
        match self.parked.get(conn).as_deref() {
            None => Parking::No,
            Some(Park::Parked(_)) => Parking::Parked,
            Some(Park::Held | Park::Done) => Parking::Settled,
        }
    }

    /// Ends `conn`'s parking: what was kept for it, in the order it came;
    /// `held` says its seats are held (it stays known until [`Self::forget_held`]).
    pub fn unpark(&self, conn: &ConnId, held: bool) -> Vec<Event> {
        let parked = self.parked.insert(conn.clone(), if held { Park::Held } else { Park::Done });
        match parked {
            Some(Park::Parked(events)) => events,
            _ => Vec::new(),
        }
    }

    /// `conn`'s grace has ended.
    pub fn forget_held(&self, conn: &ConnId) {
        self.parked.remove(conn);
    }

    /// The relays sent to held connections of this instance from now on
    /// (asked once, by the core).
    pub fn orphans(&self) -> UnboundedReceiver<(ConnId, Event)> {
        let (tx, rx) = unbounded_channel();
        *self.orphans.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Keeps `event` for `conn`, which could not take it: parked (or still
    /// attached though its socket has gone: its close is on its way), or
    /// held (handed to the core); whether it did.
    pub(super) fn park_event(&self, conn: &ConnId, event: Event, attached: bool) -> bool {
        if attached {
            self.park(conn);
        }
        let Some(mut parked) = self.parked.get_mut(conn) else { return false };
        match &mut *parked {
            Park::Parked(events) if events.len() >= PARKED_MAX => {
                warn!(conn_id = %conn, "an event for a connection being held was dropped: too many came before the hold");
            }
            Park::Parked(events) => events.push(event),
            Park::Done => return false,
            Park::Held => {
                let orphans = self.orphans.0.lock().unwrap_or_else(|p| p.into_inner());
                return orphans.as_ref().is_some_and(|tx| tx.send((conn.clone(), event)).is_ok());
            }
        }
        true
    }
}
