//! Scenario `relay`: P pairs of peers, each pair alone in its room, exchange
//! `ice-candidate` relays at R messages a second per sender, for a sweep of R.
//!
//! Each relay carries a realistic candidate plus the step (`k`), a per-sender
//! sequence number (`s`) and the send time (`t`, microseconds on this process's
//! clock, which both ends of a pair share). The receiver counts deliveries,
//! gaps and reorderings and records latency; relays the server refuses come
//! back as `signaling-error` and are counted apart from silent loss.
//!
//! Pacing: sender i of n sends its k-th relay of a step at
//! `start + (k + i / n) / rate`: the senders' phases are spread evenly over one
//! interval, so load arrives smoothly instead of in one burst per interval
//! (1,000 peers due at the same instant queue behind each other for
//! milliseconds on both sides). A sender wakes when its next relay is due, at
//! most once a millisecond, and writes what has fallen due. `t` is stamped when the batch is written; how far writing fell behind
//! the schedule is reported as `sendLagMs`, so a slow load generator (or a
//! server that stops reading) shows instead of hiding in the latency.
//!
//! The knee is the highest offered rate, below the first one that fails this
//! test, at which the server delivered at least
//! 95 % of it within the step, lost nothing, reordered nothing, and kept the
//! median latency under 5 ms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::procfs::{cpu_since, cpu_time, rss_kib};
use crate::sio::{Client, Error, Packet, classify};
use crate::stats::{Samples, round3};

/// A candidate line of typical size (a server-reflexive candidate).
const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 192.0.2.10 50123 typ srflx raddr 10.0.0.2 rport 50123 generation 0 ufrag EsAw network-id 1";

/// One step of the sweep, as every peer sees it.
#[derive(Clone, Copy)]
struct Step {
    index: u64,
    rate: f64,
    start: Instant,
    end: Instant,
}

/// What one peer counted in the current step.
#[derive(Default)]
struct Counts {
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

/// Runs the sweep and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let pairs: usize = args.get("pairs", 50)?;
    let rates: Vec<f64> = args.list("rates", &[100.0])?;
    let secs: f64 = args.get("secs", 5.0)?;
    let drain = Duration::from_secs_f64(args.get("drain-secs", 10.0)?);
    let warmup: f64 = args.get("warmup-secs", 2.0)?;
    let stop_after: usize = args.get("stop-after-saturated", 2)?;
    let pid = args.server_pid()?;
    let addr = args.addr();
    let origin = Instant::now();

    let (step_tx, step_rx) = watch::channel(None::<Step>);
    let counts: Vec<Arc<Counts>> = (0..pairs * 2).map(|_| Arc::default()).collect();
    let mut peers = JoinSet::new();
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, count) in counts.iter().enumerate() {
        let (me, partner) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        let pair = i / 2;
        let phase = i as f64 / (pairs * 2) as f64;
        let peer =
            Peer { room: format!("p{pair}"), user: format!("{me}{pair}"), target: format!("{partner}{pair}"), phase };
        let (addr, count, step_rx, gate, ready) =
            (addr.clone(), count.clone(), step_rx.clone(), gate.clone(), ready_tx.clone());
        peers.spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let joined = peer.join(&addr).await;
            drop(permit);
            match joined {
                Ok(client) => {
                    let _ = ready.send(Ok(()));
                    peer.relay(client, origin, step_rx, count).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        });
    }
    drop(ready_tx);
    for _ in 0..pairs * 2 {
        ready_rx.recv().await.ok_or("a peer task ended")??;
    }
    let rss_start = pid.and_then(rss_kib);

    if warmup > 0.0 {
        run_step(&step_tx, &counts, 0, rates[0], warmup, drain, pid).await;
    }
    let mut steps = Vec::new();
    let mut saturated = 0;
    for (i, &rate) in rates.iter().enumerate() {
        let mut step = run_step(&step_tx, &counts, i as u64 + 1, rate, secs, drain, pid).await;
        let offered = rate * (pairs * 2) as f64;
        let ok = sustained(&step, offered);
        step["offeredPerSec"] = json!(offered);
        step["ratePerSender"] = json!(rate);
        step["sustained"] = json!(ok);
        steps.push(step);
        saturated = if ok { 0 } else { saturated + 1 };
        if saturated >= stop_after {
            break;
        }
    }
    let _ = step_tx.send(None);
    while peers.join_next().await.is_some() {}
    // The knee: the last rate sustained before the first one that was not.
    let knee = steps.iter().take_while(|s| s["sustained"] == json!(true)).map(|s| s["offeredPerSec"].clone()).last();
    Ok(json!({
        "scenario": "relay", "label": args.label(), "pairs": pairs, "stepSecs": secs,
        "rssKiB": { "connected": rss_start, "end": pid.and_then(rss_kib) },
        "kneePerSec": knee, "steps": steps,
    })
    .to_string())
}

/// The knee rule (see the module documentation).
fn sustained(step: &Value, offered: f64) -> bool {
    let delivered = step["deliveredPerSec"].as_f64().unwrap_or(0.0);
    let p50 = step["latencyMs"]["p50"].as_f64().unwrap_or(f64::INFINITY);
    delivered >= 0.95 * offered && step["lost"] == json!(0) && step["outOfOrder"] == json!(0) && p50 < 5.0
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

struct Peer {
    room: String,
    user: String,
    target: String,
    /// Where in each interval this sender's relays fall, in [0, 1).
    phase: f64,
}

impl Peer {
    async fn join(&self, addr: &str) -> Result<Client, Error> {
        let mut client = Client::connect(addr).await?;
        client.join(&self.room, &self.user).await?;
        Ok(client)
    }

    /// Sends at each step's rate and counts what arrives, until the sweep ends.
    async fn relay(
        &self,
        mut client: Client,
        origin: Instant,
        mut steps: watch::Receiver<Option<Step>>,
        counts: Arc<Counts>,
    ) {
        let prefix = format!(
            r#"42["ice-candidate",{{"roomId":"{}","targetId":"{}","candidate":{{"candidate":"{CANDIDATE}","sdpMid":"0","sdpMLineIndex":0,"#,
            self.room, self.target
        );
        // Wakes when the next relay is due, but at most once a millisecond (then in batches).
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
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
                            wake.as_mut().reset((s.start + Duration::from_secs_f64(self.phase / s.rate)).into());
                        }
                    }
                }
                frame = client.recv() => match frame {
                    Some(text) => {
                        let now = origin.elapsed().as_micros() as u64;
                        receive(text.as_str(), step, &mut expected, now, end_micros(step, origin), &counts);
                    }
                    None => break,
                },
                _ = &mut wake, if step.is_some_and(|s| sent < due(&s, self.phase, s.end)) => {
                    let Some(s) = step else { continue };
                    let now = Instant::now();
                    let target = due(&s, self.phase, now);
                    let next = s.start + Duration::from_secs_f64((target.max(sent) as f64 + self.phase) / s.rate);
                    wake.as_mut().reset(next.max(now + Duration::from_millis(1)).into());
                    if target <= sent { continue; }
                    {
                        // How late each relay of the batch is written, one sample per relay.
                        let mut lag = counts.lag.lock().unwrap();
                        for k in sent..target {
                            let fell_due = s.start + Duration::from_secs_f64((k as f64 + self.phase) / s.rate);
                            lag.push(now.saturating_duration_since(fell_due).as_micros() as u64);
                        }
                    }
                    let t = origin.elapsed().as_micros();
                    let batch = target - sent;
                    for _ in 0..batch {
                        let frame = format!("{prefix}\"k\":{},\"s\":{sent},\"t\":{t}}}}}]", s.index);
                        sent += 1;
                        if client.feed(frame).await.is_err() { return; }
                    }
                    counts.sent.fetch_add(batch, Ordering::Relaxed);
                    if client.flush().await.is_err() { return; }
                }
            }
        }
        client.close().await;
    }
}

/// How many relays a sender of `phase` has due at `now` in step `s`: its k-th
/// (from 0) falls due at `start + (k + phase) / rate`, and none after `end`.
fn due(s: &Step, phase: f64, now: Instant) -> u64 {
    let intervals = now.min(s.end).saturating_duration_since(s.start).as_secs_f64() * s.rate - phase;
    if intervals < 0.0 { 0 } else { intervals as u64 + 1 }
}

fn end_micros(step: Option<Step>, origin: Instant) -> u64 {
    step.map_or(0, |s| s.end.saturating_duration_since(origin).as_micros() as u64)
}

/// Counts one incoming frame: a relay of this step, a refusal, or anything else.
fn receive(text: &str, step: Option<Step>, expected: &mut u64, now: u64, end: u64, counts: &Counts) {
    let Packet::Event(body) = classify(text) else { return };
    if body.starts_with("[\"signaling-error\"") {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if !body.starts_with("[\"ice-candidate\"") {
        return;
    }
    let (Some(k), Some(s), Some(t)) =
        (number_after(body, "\"k\":"), number_after(body, "\"s\":"), number_after(body, "\"t\":"))
    else {
        return;
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

/// The unsigned number after the last `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.rfind(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
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
    fn sequence_fields_are_read_from_the_relayed_candidate() {
        let text = r#"["ice-candidate",{"roomId":"p1","senderId":"a1","candidate":{"candidate":"x","k":3,"s":41,"t":123456}}]"#;
        assert_eq!(
            (number_after(text, "\"k\":"), number_after(text, "\"s\":"), number_after(text, "\"t\":")),
            (Some(3), Some(41), Some(123456))
        );
        assert_eq!(number_after(text, "\"z\":"), None);
    }

    #[test]
    fn a_late_relay_counts_as_out_of_order_and_a_refusal_apart() {
        let origin = Instant::now();
        let step = Some(Step { index: 1, rate: 1.0, start: origin, end: origin + Duration::from_secs(1) });
        let counts = Counts::default();
        let mut expected = 0;
        for s in [0, 2, 1, 3] {
            let text = format!(r#"42["ice-candidate",{{"candidate":{{"k":1,"s":{s},"t":10}}}}]"#);
            receive(&text, step, &mut expected, 20, 100, &counts);
        }
        receive(r#"42["signaling-error",{"code":"target-busy"}]"#, step, &mut expected, 20, 100, &counts);
        receive(r#"42["ice-candidate",{"candidate":{"k":0,"s":9,"t":1}}]"#, step, &mut expected, 20, 100, &counts);
        assert_eq!(counts.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(counts.out_of_order.load(Ordering::Relaxed), 1);
        assert_eq!(counts.refused.load(Ordering::Relaxed), 1);
        assert_eq!(counts.stale.load(Ordering::Relaxed), 1);
    }
}
