//! The paced relay sweep shared by `relay` (socket.io rooms) and
//! `peerjs-relay`: n connected peers, each sending relays to its partner at R
//! a second, for a sweep of R, counting what arrives.
//!
//! Each relay carries the step (`k`), a per-sender sequence number (`s`) and
//! the send time (`t`, microseconds on this process's clock, which both ends
//! of a pair share). The receiver counts deliveries, gaps and reorderings and
//! records latency; relays the server refuses (or reports undeliverable) are
//! counted apart from silent loss. A scenario supplies the connection
//! ([`Wire`]), how a relay is written and how a frame is read ([`Peer`]),
//! and its knee rule.
//!
//! Pacing: sender i of n sends its k-th relay of a step at
//! `start + (k + i / n) / rate`: the senders' phases are spread evenly over one
//! interval, so load arrives smoothly instead of in one burst per interval
//! (1,000 peers due at the same instant queue behind each other for
//! milliseconds on both sides). A sender wakes when its next relay is due, at
//! most once a millisecond, and writes what has fallen due. `t` is stamped when
//! the batch is written; how far writing fell behind the schedule is reported
//! as `sendLagMs`, so a slow load generator (or a server that stops reading)
//! shows instead of hiding in the latency.
//!
//! The knee is the highest offered rate, below the first one that fails the
//! scenario's rule, at which that rule held.

mod pace;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::procfs::{cpu_since, cpu_time, rss_kib};
use crate::sio::Error;
use crate::stats::{Samples, round3};
pub use pace::{Seen, due};

/// A connection the sweep drives: text frames in and out.
pub trait Wire: Send + 'static {
    /// An incoming text frame.
    type Text: AsRef<str> + Send;
    /// The next text frame; `None` once the connection closed.
    fn recv(&mut self) -> impl Future<Output = Option<Self::Text>> + Send;
    /// Queues one frame without writing it out.
    fn feed(&mut self, frame: String) -> impl Future<Output = Result<(), Error>> + Send;
    /// Writes every queued frame out.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Closes the connection.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// One connected peer of the sweep, ready to send.
pub struct Peer<W> {
    /// Its connection.
    pub wire: W,
    /// The frame carrying relay `s` of step `k`, sent at `t` (microseconds).
    pub frame: Box<dyn Fn(u64, u64, u128) -> String + Send>,
    /// What an incoming frame is.
    pub read: fn(&str) -> Seen,
    /// A frame to send every period while connected (PeerJS's `HEARTBEAT`).
    pub keepalive: Option<(Duration, &'static str)>,
}

/// One step of the sweep, as every peer sees it.
#[derive(Clone, Copy)]
pub struct Step {
    pub index: u64,
    pub rate: f64,
    pub start: Instant,
    pub end: Instant,
}

/// What one peer counted in the current step.
#[derive(Default)]
pub struct Counts {
    sent: AtomicU64,
    delivered: AtomicU64,
    in_window: AtomicU64,
    refused: AtomicU64,
    out_of_order: AtomicU64,
    stale: AtomicU64,
    latency: Mutex<Samples>,
    lag: Mutex<Samples>,
}

impl Counts {
    fn reset(&self) {
        for n in [&self.sent, &self.delivered, &self.in_window, &self.refused, &self.out_of_order, &self.stale] {
            n.store(0, Ordering::Relaxed);
        }
        *self.latency.lock().unwrap() = Samples::default();
        *self.lag.lock().unwrap() = Samples::default();
    }
}

/// The sweep's shape: `--rates` per sender per second, `--secs` a step,
/// `--warmup-secs`, `--drain-secs` (the longest wait for relays in flight),
/// `--stop-after-saturated` steps failing the rule in a row.
pub struct Settings {
    pub rates: Vec<f64>,
    pub secs: f64,
    pub warmup: f64,
    pub drain: Duration,
    pub stop_after: usize,
}

impl Settings {
    /// From the command line, with `relay`'s defaults.
    pub fn from_args(args: &Args) -> Result<Self, String> {
        Ok(Self {
            rates: args.list("rates", &[100.0])?,
            secs: args.get("secs", 5.0)?,
            warmup: args.get("warmup-secs", 2.0)?,
            drain: Duration::from_secs_f64(args.get("drain-secs", 10.0)?),
            stop_after: args.get("stop-after-saturated", 2)?,
        })
    }
}

/// Opens `n` peers with `open` (256 at a time), runs the sweep over them,
/// closes them, and returns `{ rssKiB, kneePerSec, steps }`; `rule` says
/// whether a step's figures sustained its offered rate.
pub async fn sweep<W: Wire>(
    n: usize,
    pid: Option<u32>,
    settings: &Settings,
    open: impl Fn(usize) -> BoxFuture<'static, Result<Peer<W>, Error>>,
    rule: impl Fn(&Value, f64) -> bool,
) -> Result<Value, Error> {
    let origin = Instant::now();
    let (step_tx, step_rx) = watch::channel(None::<Step>);
    let counts: Vec<Arc<Counts>> = (0..n).map(|_| Arc::default()).collect();
    let mut peers = JoinSet::new();
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    for (i, count) in counts.iter().enumerate() {
        let phase = i as f64 / n as f64;
        let (opening, count, step_rx, gate, ready) =
            (open(i), count.clone(), step_rx.clone(), gate.clone(), ready_tx.clone());
        peers.spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let opened = opening.await;
            drop(permit);
            match opened {
                Ok(peer) => {
                    let _ = ready.send(Ok(()));
                    pace::pace(peer, phase, origin, step_rx, count).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        });
    }
    drop(ready_tx);
    for _ in 0..n {
        ready_rx.recv().await.ok_or("a peer task ended")??;
    }
    let rss_start = pid.and_then(rss_kib);

    if settings.warmup > 0.0 {
        run_step(&step_tx, &counts, 0, settings.rates[0], settings.warmup, settings.drain, pid).await;
    }
    let mut steps = Vec::new();
    let mut saturated = 0;
    for (i, &rate) in settings.rates.iter().enumerate() {
        let mut step = run_step(&step_tx, &counts, i as u64 + 1, rate, settings.secs, settings.drain, pid).await;
        let offered = rate * n as f64;
        let ok = rule(&step, offered);
        step["offeredPerSec"] = json!(offered);
        step["ratePerSender"] = json!(rate);
        step["sustained"] = json!(ok);
        steps.push(step);
        saturated = if ok { 0 } else { saturated + 1 };
        if saturated >= settings.stop_after {
            break;
        }
    }
    let _ = step_tx.send(None);
    while peers.join_next().await.is_some() {}
    Ok(json!({
        "rssKiB": { "connected": rss_start, "end": pid.and_then(rss_kib) },
        "kneePerSec": knee(&steps), "steps": steps,
    }))
}

/// The last rate sustained before the first one that was not.
pub fn knee(steps: &[Value]) -> Option<Value> {
    steps.iter().take_while(|s| s["sustained"] == json!(true)).map(|s| s["offeredPerSec"].clone()).last()
}

/// Runs one step at `rate` per sender for `secs`, waits for the relays in
/// flight (at most `drain`), and returns its figures.
async fn run_step(
    steps: &watch::Sender<Option<Step>>,
    counts: &[Arc<Counts>],
    index: u64,
    rate: f64,
    secs: f64,
    drain: Duration,
    pid: Option<u32>,
) -> Value {
    let me = Some(std::process::id());
    let (server_cpu, own_cpu) = (pid.and_then(cpu_time), me.and_then(cpu_time));
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(secs);
    let step = Step { index, rate, start, end };
    // Each peer zeroes its counts when it takes up the step.
    let _ = steps.send(Some(step));
    tokio::time::sleep_until(end.into()).await;
    // The load generator's share of its core while it was sending (not draining).
    let own_cpu = cpu_since(me, own_cpu).map(|c| round3(c / (secs + 0.05)));
    let sum = |f: fn(&Counts) -> &AtomicU64| counts.iter().map(|c| f(c).load(Ordering::Relaxed)).sum::<u64>();
    let deadline = Instant::now() + drain;
    // Every sender writes its last batch at its first tick past `end`: wait for those too.
    let n = counts.len();
    let due_total: u64 = (0..n).map(|i| due(&step, i as f64 / n as f64, end)).sum();
    let in_flight = || sum(|c| &c.sent) < due_total || sum(|c| &c.delivered) + sum(|c| &c.refused) < sum(|c| &c.sent);
    while in_flight() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    // The server's CPU over sending and draining: all the work of the step's relays.
    let server_cpu = cpu_since(pid, server_cpu);
    let (mut latency, mut lag) = (Samples::default(), Samples::default());
    for c in counts {
        latency.merge(&mut c.latency.lock().unwrap());
        lag.merge(&mut c.lag.lock().unwrap());
    }
    let (sent, delivered, refused) = (sum(|c| &c.sent), sum(|c| &c.delivered), sum(|c| &c.refused));
    let per_1000 =
        server_cpu.filter(|_| delivered > 0).map(|s| round3(s * 1000.0 / delivered as f64 * 1000.0) / 1000.0);
    json!({
        "sent": sent, "sentPerSec": round3(sent as f64 / secs),
        "delivered": delivered, "deliveredPerSec": round3(sum(|c| &c.in_window) as f64 / secs),
        "refused": refused, "lost": sent.saturating_sub(delivered + refused),
        "outOfOrder": sum(|c| &c.out_of_order), "stale": sum(|c| &c.stale),
        "latencyMs": latency.summary_ms(), "sendLagMs": lag.summary_ms(),
        "serverCpuSecs": server_cpu.map(round3), "serverCpuSecsPer1000": per_1000,
        "loadgenCpuShare": own_cpu, "wallSecs": round3(wall),
    })
}

/// The unsigned number after the last `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.rfind(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// The `k`, `s` and `t` of a relay's text, if it has all three.
pub fn relay_fields(text: &str) -> Seen {
    match (number_after(text, "\"k\":"), number_after(text, "\"s\":"), number_after(text, "\"t\":")) {
        (Some(k), Some(s), Some(t)) => Seen::Relay { k, s, t },
        _ => Seen::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_fields_are_read_from_the_relayed_text() {
        let text = r#"["ice-candidate",{"roomId":"p1","senderId":"a1","candidate":{"candidate":"x","k":3,"s":41,"t":123456}}]"#;
        assert!(matches!(relay_fields(text), Seen::Relay { k: 3, s: 41, t: 123456 }));
        assert_eq!(number_after(text, "\"z\":"), None);
        assert!(matches!(relay_fields(r#"{"k":3,"s":41}"#), Seen::Other));
    }

    #[test]
    fn the_knee_is_the_last_sustained_step_before_the_first_failure() {
        let step = |offered: u32, ok: bool| json!({ "offeredPerSec": offered, "sustained": ok });
        assert_eq!(knee(&[step(10, true), step(20, true), step(40, false), step(80, true)]), Some(json!(20)));
        assert_eq!(knee(&[step(10, false), step(20, true)]), None);
        assert_eq!(knee(&[]), None);
    }
}
