//! One peer of the sweep: sends its relays on schedule, counts what arrives,
//! and sends its keepalive frame, until the sweep ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{Counts, Peer, Step, Wire};

/// What an incoming frame was.
pub enum Seen {
    /// A relay: its step, sequence number and send time.
    Relay { k: u64, s: u64, t: u64 },
    /// The server refused one of this peer's relays (or reported it undeliverable).
    Refused,
    /// Anything else.
    Other,
}

/// Sends at each step's rate and counts what arrives, until the sweep ends.
pub async fn pace<W: Wire>(
    mut peer: Peer<W>,
    phase: f64,
    origin: Instant,
    mut steps: watch::Receiver<Option<Step>>,
    counts: Arc<Counts>,
) {
    // Wakes when the next relay is due, but at most once a millisecond (then in batches).
    let wake = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(wake);
    let (period, beat_frame) = peer.keepalive.unwrap_or((Duration::from_secs(3600), ""));
    let mut beat = tokio::time::interval_at((Instant::now() + period.mul_f64(phase)).into(), period);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut step, mut sent, mut expected) = (None::<Step>, 0u64, 0u64);
    loop {
        tokio::select! {
            changed = steps.changed() => {
                if changed.is_err() { break; }
                match *steps.borrow_and_update() {
                    None => break,
                    Some(s) => {
                        counts.reset();
                        step = Some(s);
                        sent = 0;
                        expected = 0;
                        wake.as_mut().reset((s.start + Duration::from_secs_f64(phase / s.rate)).into());
                    }
                }
            }
            frame = peer.wire.recv() => match frame {
                Some(text) => {
                    let now = origin.elapsed().as_micros() as u64;
                    count((peer.read)(text.as_ref()), step, &mut expected, now, end_micros(step, origin), &counts);
                }
                None => break,
            },
            _ = beat.tick(), if peer.keepalive.is_some() => {
                if peer.wire.feed(beat_frame.to_owned()).await.is_err() || peer.wire.flush().await.is_err() {
                    return;
                }
            }
            _ = &mut wake, if step.is_some_and(|s| sent < due(&s, phase, s.end)) => {
                let Some(s) = step else { continue };
                let now = Instant::now();
                let target = due(&s, phase, now);
                let next = s.start + Duration::from_secs_f64((target.max(sent) as f64 + phase) / s.rate);
                wake.as_mut().reset(next.max(now + Duration::from_millis(1)).into());
                if target <= sent { continue; }
                {
                    // How late each relay of the batch is written, one sample per relay.
                    let mut lag = counts.lag.lock().unwrap();
                    for k in sent..target {
                        let fell_due = s.start + Duration::from_secs_f64((k as f64 + phase) / s.rate);
                        lag.push(now.saturating_duration_since(fell_due).as_micros() as u64);
                    }
                }
                let t = origin.elapsed().as_micros();
                let batch = target - sent;
                for _ in 0..batch {
                    let frame = (peer.frame)(s.index, sent, t);
                    sent += 1;
                    if peer.wire.feed(frame).await.is_err() { return; }
                }
                counts.sent.fetch_add(batch, Ordering::Relaxed);
                if peer.wire.flush().await.is_err() { return; }
            }
        }
    }
    peer.wire.close().await;
}

/// How many relays a sender of `phase` has due at `now` in step `s`: its k-th
/// (from 0) falls due at `start + (k + phase) / rate`, and none after `end`.
pub fn due(s: &Step, phase: f64, now: Instant) -> u64 {
    let intervals = now.min(s.end).saturating_duration_since(s.start).as_secs_f64() * s.rate - phase;
    if intervals < 0.0 { 0 } else { intervals as u64 + 1 }
}

fn end_micros(step: Option<Step>, origin: Instant) -> u64 {
    step.map_or(0, |s| s.end.saturating_duration_since(origin).as_micros() as u64)
}

/// Counts one incoming frame: a relay of this step, a refusal, or anything else.
fn count(seen: Seen, step: Option<Step>, expected: &mut u64, now: u64, end: u64, counts: &Counts) {
    let (k, s, t) = match seen {
        Seen::Relay { k, s, t } => (k, s, t),
        Seen::Refused => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Seen::Other => return,
    };
    if step.map(|st| st.index) != Some(k) {
        counts.stale.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.delivered.fetch_add(1, Ordering::Relaxed);
    if now <= end {
        counts.in_window.fetch_add(1, Ordering::Relaxed);
    }
    if s < *expected {
        counts.out_of_order.fetch_add(1, Ordering::Relaxed);
    } else {
        *expected = s + 1;
    }
    counts.latency.lock().unwrap().push(now.saturating_sub(t));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_paced_by_phase_and_stop_at_the_end() {
        let start = Instant::now();
        let s = Step { index: 1, rate: 10.0, start, end: start + Duration::from_secs(1) };
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(due(&s, 0.0, start), 1, "phase 0 sends at the start");
        assert_eq!(due(&s, 0.5, at(49)), 0, "phase 0.5 first sends half an interval in");
        assert_eq!(due(&s, 0.5, at(50)), 1);
        assert_eq!(due(&s, 0.5, at(151)), 2);
        assert_eq!((due(&s, 0.0, at(5000)), due(&s, 0.5, at(5000))), (11, 10), "nothing past the end");
    }

    #[test]
    fn a_late_relay_counts_as_out_of_order_a_refusal_apart_and_an_old_step_as_stale() {
        let origin = Instant::now();
        let step = Some(Step { index: 1, rate: 1.0, start: origin, end: origin + Duration::from_secs(1) });
        let counts = Counts::default();
        let mut expected = 0;
        for s in [0, 2, 1, 3] {
            count(Seen::Relay { k: 1, s, t: 10 }, step, &mut expected, 20, 100, &counts);
        }
        count(Seen::Relay { k: 1, s: 4, t: 10 }, step, &mut expected, 200, 100, &counts);
        count(Seen::Refused, step, &mut expected, 20, 100, &counts);
        count(Seen::Relay { k: 0, s: 9, t: 1 }, step, &mut expected, 20, 100, &counts);
        count(Seen::Other, step, &mut expected, 20, 100, &counts);
        assert_eq!(counts.delivered.load(Ordering::Relaxed), 5);
        assert_eq!(counts.in_window.load(Ordering::Relaxed), 4, "the one after the end counts, not in the window");
        assert_eq!(counts.out_of_order.load(Ordering::Relaxed), 1);
        assert_eq!(counts.refused.load(Ordering::Relaxed), 1);
        assert_eq!(counts.stale.load(Ordering::Relaxed), 1);
        assert_eq!(counts.latency.lock().unwrap().len(), 5);
    }
}
