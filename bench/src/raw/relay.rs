//! Scenario `device-relay`: K pairs of peers, both sides of each pair
//! sending `--signals` ice candidates to the other with at most `--window`
//! of its own undelivered at once, over one of three paths (`--via`):
//!
//! - `raw`: seed 004's `/signaling/{deviceId}`, announced devices; a
//!   delivery is confirmed by the client's pong to the ping after it;
//! - `devices`: the same feature over socket.io's `/devices` namespace,
//!   where the sender gets an ack and the receiver acks each `signal`;
//! - `room`: socket.io `/`, each pair alone in its room (`ice-candidate`
//!   relayed to `targetId`), as the `relay` scenario does.
//!
//! Each signal carries a sequence number (`s`) and its send time (`t`,
//! microseconds on this process's clock); latency is receive time minus `t`.
//! For the two device paths the run ends by reading every receiver's queue
//! (`GET /signaling/messages/{id}?peek=true`) until it is empty, which it
//! is only once every delivery was confirmed. Bounded: `--signals` per
//! sender, `--secs` for the whole exchange, 15 s for the confirmations.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{RawClient, announce, pending};
use crate::args::Args;
use crate::procfs::{cpu_since, cpu_time, rss_kib};
use crate::sio::{Client, Error, Packet, ack_ok, classify};
use crate::stats::{Samples, round3};
use crate::sweep::number_after;

/// The candidate line the `relay` scenario sends.
const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 192.0.2.10 50123 typ srflx raddr 10.0.0.2 rport 50123 generation 0 ufrag EsAw network-id 1";
const NETWORK: &str = "relay";

/// Which path the signals take.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Raw,
    Devices,
    Room,
}

/// One side of a pair.
enum End {
    Raw(RawClient),
    Sio(Client),
}

/// What one incoming frame was.
enum Got {
    /// A relayed signal: its sequence number and send time.
    Signal(u64, u64),
    /// The server refused one of this side's signals.
    Refused,
    Nothing,
}

/// What one pair counted.
#[derive(Default)]
struct Tally {
    sent: u64,
    delivered: u64,
    refused: u64,
    out_of_order: u64,
    latency: Samples,
    finished: Option<Instant>,
}

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let pairs: usize = args.get("pairs", 50)?;
    let signals: u64 = args.get("signals", 2000)?;
    let window: u64 = args.get("window", 8)?;
    let secs: f64 = args.get("secs", 60.0)?;
    let via = match args.get("via", "raw".to_owned())?.as_str() {
        "raw" => Via::Raw,
        "devices" => Via::Devices,
        "room" => Via::Room,
        other => return Err(format!("--via {other:?}: raw, devices or room").into()),
    };
    let pid = args.server_pid()?;
    let addr = args.addr();
    let names = |i: usize| (format!("peer_a_{i}"), format!("peer_b_{i}"));
    if via != Via::Room {
        for i in 0..pairs {
            let (a, b) = names(i);
            announce(&addr, NETWORK, &a).await?;
            announce(&addr, NETWORK, &b).await?;
        }
    }
    let origin = Instant::now();
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let (close_tx, close_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for i in 0..pairs {
        let (a, b) = names(i);
        let (addr, go, close, ready, done) =
            (addr.clone(), go_rx.clone(), close_rx.clone(), ready_tx.clone(), done_tx.clone());
        tasks.spawn(async move {
            let ends = match tokio::try_join!(open(&addr, via, i, &a, &b), open(&addr, via, i, &b, &a)) {
                Ok(ends) => ends,
                Err(e) => return drop(ready.send(Err(e.to_string()))),
            };
            let _ = ready.send(Ok(()));
            let pair = Pair { via, room: format!("p{i}"), names: [a, b], signals, window, origin };
            pair.exchange(ends, go, close, done).await;
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..pairs {
        ready_rx.recv().await.ok_or("a pair task ended")??;
    }
    let rss_connected = pid.and_then(rss_kib);
    let server_cpu = pid.and_then(cpu_time);
    let start = Instant::now();
    let _ = go_tx.send(Some(start + Duration::from_secs_f64(secs)));
    let mut total = Tally::default();
    for _ in 0..pairs {
        let Some(mut t) = done_rx.recv().await else { break };
        total.sent += t.sent;
        total.delivered += t.delivered;
        total.refused += t.refused;
        total.out_of_order += t.out_of_order;
        total.latency.merge(&mut t.latency);
        total.finished = total.finished.max(t.finished);
    }
    let took = total.finished.unwrap_or_else(Instant::now).saturating_duration_since(start).as_secs_f64();
    let server_cpu = cpu_since(pid, server_cpu);
    // Every queue empty: every delivery confirmed (the ends still answer pings and acks meanwhile).
    let confirmed = if via == Via::Room { None } else { Some(wait_confirmed(&addr, pairs, &names).await?) };
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let per_relay_us = server_cpu.filter(|_| total.delivered > 0).map(|s| round3(s * 1e6 / total.delivered as f64));
    Ok(json!({
        "scenario": "device-relay", "label": args.label(), "via": args.get("via", "raw".to_owned())?,
        "pairs": pairs, "signalsPerSender": signals, "window": window,
        "sent": total.sent, "delivered": total.delivered, "refused": total.refused,
        "lost": total.sent.saturating_sub(total.delivered + total.refused), "outOfOrder": total.out_of_order,
        "secs": round3(took), "relaysPerSec": round3(total.delivered as f64 / took.max(1e-9)),
        "latencyMs": total.latency.summary_ms(), "serverCpuSecs": server_cpu.map(round3),
        "serverCpuMicrosPerRelay": per_relay_us, "unconfirmedAfter": confirmed,
        "rssKiB": { "connected": rss_connected, "end": pid.and_then(rss_kib) },
    })
    .to_string())
}

/// Opens `me`'s end of pair `i` (joined to its room on `/`).
async fn open(addr: &str, via: Via, i: usize, me: &str, _partner: &str) -> Result<End, Error> {
    Ok(match via {
        Via::Raw => End::Raw(RawClient::connect(addr, me).await?),
        Via::Devices => {
            End::Sio(Client::connect_to(addr, "/devices", Some(&format!(r#"{{"deviceId":"{me}"}}"#))).await?)
        }
        Via::Room => {
            let mut client = Client::connect(addr).await?;
            client.join(&format!("p{i}"), me).await?;
            End::Sio(client)
        }
    })
}

/// Reads every receiver's queue until all are empty (at most 15 s); how many signals were left.
async fn wait_confirmed(addr: &str, pairs: usize, names: &impl Fn(usize) -> (String, String)) -> Result<usize, Error> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut left = 0;
        for i in 0..pairs {
            let (a, b) = names(i);
            left += pending(addr, &a).await? + pending(addr, &b).await?;
        }
        if left == 0 || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Pair {
    via: Via,
    room: String,
    names: [String; 2],
    signals: u64,
    window: u64,
    origin: Instant,
}

impl Pair {
    /// Both sides send and receive until each has delivered its signals (or
    /// the deadline), reports, then keeps answering until told to close.
    async fn exchange(
        &self,
        (mut a, mut b): (End, End),
        mut go: watch::Receiver<Option<Instant>>,
        mut close: watch::Receiver<bool>,
        done: mpsc::UnboundedSender<Tally>,
    ) {
        let Ok(deadline) = go.wait_for(Option::is_some).await.map(|d| d.expect("checked")) else { return };
        let mut t = Tally::default();
        // sent[x]: what side x sent; got[x]: what side x received (from the other); next[x]: expected `s`.
        let (mut sent, mut got, mut next) = ([0u64; 2], [0u64; 2], [0u64; 2]);
        let mut reported = false;
        loop {
            if !reported {
                for (x, end) in [(0, &mut a), (1, &mut b)] {
                    let room = self.signals - sent[x];
                    let open = self.window.saturating_sub(sent[x] - got[1 - x]);
                    let n = room.min(open);
                    if n > 0 && self.send(end, x, &mut sent[x], n).await.is_err() {
                        return;
                    }
                }
                t.sent = sent[0] + sent[1];
                if got[0] + got[1] + t.refused >= 2 * self.signals || Instant::now() >= deadline {
                    t.delivered = got[0] + got[1];
                    t.finished = Some(Instant::now());
                    let _ = done.send(std::mem::take(&mut t));
                    reported = true;
                }
            }
            let (x, frame) = tokio::select! {
                _ = close.changed() => break,
                () = tokio::time::sleep_until(deadline.into()), if !reported => continue,
                f = recv(&mut a) => (0, f),
                f = recv(&mut b) => (1, f),
            };
            let Some(frame) = frame else { return };
            match self.read(if x == 0 { &mut a } else { &mut b }, &frame).await {
                Got::Signal(s, at) if !reported => {
                    got[x] += 1;
                    if s < next[x] {
                        t.out_of_order += 1;
                    }
                    next[x] = next[x].max(s + 1);
                    t.latency.push((self.origin.elapsed().as_micros() as u64).saturating_sub(at));
                }
                Got::Refused if !reported => t.refused += 1,
                _ => {}
            }
        }
        for end in [a, b] {
            match end {
                End::Raw(c) => c.close().await,
                End::Sio(c) => c.close().await,
            }
        }
    }

    /// Sends `n` signals from side `x`, numbered from `*sent`.
    async fn send(&self, end: &mut End, x: usize, sent: &mut u64, n: u64) -> Result<(), Error> {
        let to = &self.names[1 - x];
        for _ in 0..n {
            let t = self.origin.elapsed().as_micros();
            let candidate =
                format!(r#"{{"candidate":"{CANDIDATE}","sdpMid":"0","sdpMLineIndex":0,"s":{sent},"t":{t}}}"#);
            match (self.via, &mut *end) {
                (Via::Raw, End::Raw(c)) => {
                    c.feed(format!(r#"{{"type":"ice-candidate","toPeerId":"{to}","data":{candidate}}}"#)).await?
                }
                (Via::Devices, End::Sio(c)) => {
                    let body = format!(r#"{{"type":"ice-candidate","toPeerId":"{to}","data":{candidate}}}"#);
                    let frame = c.event_frame(Some(*sent + 1), "signal", &body);
                    c.feed(frame).await?
                }
                (_, End::Sio(c)) => {
                    let body = format!(r#"{{"roomId":"{}","targetId":"{to}","candidate":{candidate}}}"#, self.room);
                    let frame = c.event_frame(None, "ice-candidate", &body);
                    c.feed(frame).await?
                }
                (_, End::Raw(_)) => return Err("a raw end on a socket.io path".into()),
            }
            *sent += 1;
        }
        match end {
            End::Raw(c) => c.flush().await,
            End::Sio(c) => c.flush().await,
        }
    }

    /// Classifies one frame, acking a `/devices` delivery.
    async fn read(&self, end: &mut End, text: &str) -> Got {
        match (self.via, end) {
            (Via::Raw, _) if text.starts_with("{\"error\"") => Got::Refused,
            (Via::Raw, _) => signal_fields(text),
            (Via::Devices, End::Sio(c)) => match classify(text) {
                Packet::Ack(_, body) if !ack_ok(body) => Got::Refused,
                Packet::Event(body) => {
                    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
                    let (id, rest) = body.split_at(digits);
                    if !id.is_empty() && c.send(format!("43/devices,{id}[]")).await.is_err() {
                        return Got::Nothing;
                    }
                    if rest.starts_with("[\"signal\"") { signal_fields(rest) } else { Got::Nothing }
                }
                _ => Got::Nothing,
            },
            (_, _) => match classify(text) {
                Packet::Event(body) if body.starts_with("[\"signaling-error\"") => Got::Refused,
                Packet::Event(body) if body.starts_with("[\"ice-candidate\"") => signal_fields(body),
                _ => Got::Nothing,
            },
        }
    }
}

/// The `s` and `t` a relayed candidate carries.
fn signal_fields(text: &str) -> Got {
    match (number_after(text, "\"s\":"), number_after(text, "\"t\":")) {
        (Some(s), Some(t)) => Got::Signal(s, t),
        _ => Got::Nothing,
    }
}

/// The next text frame of `end` (raw pings are answered by the next read); `None` once closed.
async fn recv(end: &mut End) -> Option<String> {
    match end {
        End::Raw(c) => c.text().await,
        End::Sio(c) => c.recv().await.map(|t| t.as_str().to_owned()),
    }
}
