//! Seat grace (issue 20): how long the seats of a connection on `/` that
//! closed abruptly are held for its user to come back, and how many relays
//! are kept for each meanwhile. Read, like every variable, in `mod.rs`.

use std::time::Duration;

/// The seat grace settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GraceConfig {
    /// `RESUME_GRACE_MS`: how long a seat is held after its connection closed
    /// abruptly (default 10 000; 0 turns seat grace off).
    pub resume_grace: Duration,
    /// `RESUME_BUFFER_EVENTS`: relays kept for one held seat; past it a relay
    /// to it gets `target-busy` (default 256).
    pub resume_buffer_events: usize,
}

impl GraceConfig {
    /// Whether seats are held at all.
    pub fn on(&self) -> bool {
        !self.resume_grace.is_zero()
    }
}
