//! What a queued device signal weighs (issue 17, problem 1): its body kept
//! as the JSON text it arrived as ([`SignalBody`], shared, never re-parsed),
//! and the byte budgets that bound what may wait ([`QueueBudget`]).
//!
//! A signal's weight is the length of its body's JSON text. Three budgets
//! hold at once: per receiving device, per sending user across every
//! receiver, and for the whole instance (or cluster, with Redis); past any
//! of them (or past [`QueueBudget::signals`] per queue) the signal is refused
//! and nothing is queued.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A signal's body: the JSON text as received, shared (a clone costs a
/// reference count) and written back out byte for byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignalBody(Arc<RawValue>);

impl SignalBody {
    /// The body of a parsed value, as compact JSON text (what serializing the
    /// value would write).
    pub fn from_value(value: &serde_json::Value) -> Self {
        let raw = serde_json::value::to_raw_value(value).expect("a JSON value always serializes");
        Self(Arc::from(raw))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Its weight: the bytes of its JSON text.
    pub fn len(&self) -> usize {
        self.json().len()
    }

    /// Whether the text is empty (never, for a valid body).
    pub fn is_empty(&self) -> bool {
        self.json().is_empty()
    }
}

impl PartialEq for SignalBody {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

/// How much may wait in device queues (`DEVICE_QUEUE_MAX_BYTES`,
/// `DEVICE_SENDER_MAX_BYTES`, `DEVICE_QUEUES_MAX_BYTES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueBudget {
    /// Signals waiting for one device, at most.
    pub signals: usize,
    /// Bytes waiting for one device, at most.
    pub queue_bytes: usize,
    /// Bytes one sending user has waiting across every receiver, at most.
    pub sender_bytes: usize,
    /// Bytes waiting in every queue together, at most.
    pub total_bytes: usize,
}

impl Default for QueueBudget {
    /// 1 000 signals, 1 MiB per queue, 4 MiB per sender, 256 MiB in all.
    fn default() -> Self {
        Self { signals: 1000, queue_bytes: 1 << 20, sender_bytes: 4 << 20, total_bytes: 256 << 20 }
    }
}

/// What is held now against each budget, before a new signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Signals in the receiver's queue.
    pub signals: usize,
    /// Bytes in the receiver's queue.
    pub queue_bytes: usize,
    /// Bytes the sender's user has waiting.
    pub sender_bytes: usize,
    /// Bytes waiting in every queue.
    pub total_bytes: usize,
}

/// Which budget refused a signal (each names its variable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// The receiver's queue holds this many signals already.
    #[error("{0} signals are waiting for that device already; it must take some first")]
    Signals(usize),
    /// The receiver's queue would pass this many bytes.
    #[error("that device's queue would pass its budget of {0} bytes (DEVICE_QUEUE_MAX_BYTES); it must take some first")]
    Queue(usize),
    /// The sender's user would have more than this many bytes waiting.
    #[error(
        "this user's waiting signals would pass the sender budget of {0} bytes (DEVICE_SENDER_MAX_BYTES); wait until they are taken"
    )]
    Sender(usize),
    /// Every queue together would pass this many bytes.
    #[error("the server's device queues would pass their budget of {0} bytes (DEVICE_QUEUES_MAX_BYTES); retry later")]
    Total(usize),
}

impl QueueBudget {
    /// Whether a signal of `bytes` fits on top of `held`; the first budget it
    /// would pass otherwise (signals, queue, sender, total).
    pub fn admits(&self, held: Held, bytes: usize) -> Result<(), OverBudget> {
        if held.signals >= self.signals {
            Err(OverBudget::Signals(self.signals))
        } else if held.queue_bytes + bytes > self.queue_bytes {
            Err(OverBudget::Queue(self.queue_bytes))
        } else if held.sender_bytes + bytes > self.sender_bytes {
            Err(OverBudget::Sender(self.sender_bytes))
        } else if held.total_bytes + bytes > self.total_bytes {
            Err(OverBudget::Total(self.total_bytes))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_is_written_back_as_the_text_it_was_and_weighs_its_bytes() {
        let value = json!({"sdp": "v=0\r\n", "n": [1, 2.5, null], "é": true});
        let body = SignalBody::from_value(&value);
        assert_eq!(body.json(), serde_json::to_string(&value).unwrap());
        assert_eq!(body.len(), body.json().len());
        let out = serde_json::to_string(&json!({"data": serde_json::to_value(&body).unwrap()})).unwrap();
        assert_eq!(out, serde_json::to_string(&json!({"data": value})).unwrap());
        let back: SignalBody = serde_json::from_str(body.json()).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn each_budget_refuses_what_would_pass_it_and_names_itself() {
        let budget = QueueBudget { signals: 3, queue_bytes: 100, sender_bytes: 150, total_bytes: 200 };
        let held = Held { signals: 1, queue_bytes: 50, sender_bytes: 50, total_bytes: 50 };
        assert_eq!(budget.admits(held, 50), Ok(()), "exactly the budget fits");
        assert_eq!(budget.admits(held, 51), Err(OverBudget::Queue(100)));
        assert_eq!(budget.admits(Held { signals: 3, ..held }, 1), Err(OverBudget::Signals(3)));
        assert_eq!(budget.admits(Held { sender_bytes: 120, ..held }, 40), Err(OverBudget::Sender(150)));
        assert_eq!(budget.admits(Held { total_bytes: 170, ..held }, 40), Err(OverBudget::Total(200)));
        assert!(OverBudget::Sender(150).to_string().contains("DEVICE_SENDER_MAX_BYTES"));
        assert!(OverBudget::Queue(100).to_string().contains("DEVICE_QUEUE_MAX_BYTES"));
        assert!(OverBudget::Total(200).to_string().contains("DEVICE_QUEUES_MAX_BYTES"));
    }
}
