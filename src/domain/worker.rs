//! Worker routing (seed 002): a worker's record, the id rule, and when a
//! worker counts as healthy. Time is passed in (Unix milliseconds).

use serde::{Deserialize, Serialize};

use super::ConnId;

/// Longest worker id, in bytes (ASCII only).
pub const MAX_WORKER_ID: usize = 128;

/// Whether `raw` is a valid worker (or `/edge` client) id: 1 to
/// [`MAX_WORKER_ID`] letters, digits, `-`, `_`, `.` or `:`.
pub fn valid_id(raw: &str) -> bool {
    (1..=MAX_WORKER_ID).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    /// Its id (also its name on the ring).
    pub worker_id: String,
    /// Where it runs.
    pub region: String,
    /// How many clients it takes, as it declared.
    pub capacity: u32,
    /// Its last heartbeat (Unix ms).
    pub last_seen: u64,
    /// The front server holding its connection.
    pub instance: String,
    /// Its connection there.
    pub conn: ConnId,
}

impl WorkerRecord {
    /// Whether it heartbeat within `timeout_ms` of `now`.
    pub fn healthy(&self, now: u64, timeout_ms: u64) -> bool {
        self.last_seen.saturating_add(timeout_ms) > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_healthy_until_its_timeout_has_passed_since_its_last_heartbeat() {
        let w = WorkerRecord {
            worker_id: "w1".into(),
            region: "eu".into(),
            capacity: 1,
            last_seen: 20,
            instance: "a".into(),
            conn: ConnId::new("c"),
        };
        assert!(w.healthy(1019, 1000) && !w.healthy(1020, 1000));
    }

    #[test]
    fn worker_ids_are_short_and_plain() {
        assert!(valid_id("w-1.eu:a_b") && valid_id(&"w".repeat(128)));
        assert!(!valid_id("") && !valid_id(&"w".repeat(129)) && !valid_id("w 1") && !valid_id("wé"));
    }
}
