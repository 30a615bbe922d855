//! Latency samples and their percentiles.

use serde_json::{Value, json};

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Records one latency.
    pub fn push(&mut self, micros: u64) {
        self.0.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    /// Moves every sample of `other` into this set.
    pub fn merge(&mut self, other: &mut Samples) {
        self.0.append(&mut other.0);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `{ p50, p99, p999, max }` in milliseconds (nearest-rank), `null`s when empty.
    pub fn summary_ms(&mut self) -> Value {
        self.0.sort_unstable();
        let at = |q: f64| -> Value {
            if self.0.is_empty() {
                return Value::Null;
            }
            let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
            json!(round3(f64::from(self.0[rank - 1]) / 1000.0))
        };
        json!({ "p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "max": at(1.0) })
    }
}

/// `x` rounded to three decimals, for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let mut s = Samples::default();
        for us in 1..=1000 {
            s.push(us * 1000);
        }
        let summary = s.summary_ms();
        assert_eq!(summary["p50"], json!(500.0));
        assert_eq!(summary["p99"], json!(990.0));
        assert_eq!(summary["p999"], json!(999.0));
        assert_eq!(summary["max"], json!(1000.0));
        assert_eq!(Samples::default().summary_ms()["p50"], Value::Null);
    }
}
