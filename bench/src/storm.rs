//! Scenario `storm`: N socket.io peers connect, each joins a room of two, and
//! then all of them drop at once, abruptly: each TCP socket is closed (or
//! reset) with no socket.io DISCONNECT and no websocket close, as when a load
//! balancer or a network drops every connection together. Repeated over
//! `--cycles` connect/drop cycles.
//!
//! The server's RSS (and, with `--redis`, the Redis server's used memory) is
//! read before any peer came; while the peers are held; once `/health`
//! counts no connection (`gone`); once `GET /api/rooms` lists no room
//! (`graceEnded`: a server holding seats for a grace empties its rooms when it
//! ends, one without grace at once); and `--settle-secs` after that, following
//! the first and the last cycle. `problems` lists every correctness failure (a
//! join not acked, a peer dropped by the server while held, connections or
//! rooms left at a deadline); memory is reported, never judged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::procfs::{rss_kib, status_kib};
use crate::sio::{Client, Error};
use crate::stats::{Samples, round3};

/// What the scenario was asked to do.
struct Plan {
    addr: String,
    pid: Option<u32>,
    redis: Option<String>,
    peers: usize,
    concurrency: usize,
    hold: Duration,
    reset: bool,
    settle: Vec<u64>,
    gone_timeout: Duration,
    grace_timeout: Duration,
}

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let cycles: usize = args.get("cycles", 3)?;
    let plan = Plan {
        addr: args.addr(),
        pid: args.server_pid()?,
        redis: Some(args.get("redis", String::new())?).filter(|a| !a.is_empty()),
        peers: args.get("peers", 1000)?,
        concurrency: args.get("concurrency", 256)?,
        hold: Duration::from_secs(args.get("hold-secs", 2)?),
        reset: match args.get("close", "fin".to_owned())?.as_str() {
            "fin" => false,
            "rst" => true,
            other => return Err(format!("--close: fin or rst, got {other:?}").into()),
        },
        settle: args.list("settle-secs", &[10, 40])?,
        gone_timeout: Duration::from_secs(args.get("gone-timeout-secs", 60)?),
        grace_timeout: Duration::from_secs(args.get("grace-timeout-secs", 120)?),
    };
    let mut problems = Vec::new();
    let before = plan.reading().await;
    let mut results = Vec::new();
    for cycle in 1..=cycles {
        let settle = cycle == 1 || cycle == cycles;
        results.push(plan.cycle(cycle, settle, &mut problems).await);
    }
    problems.truncate(20);
    Ok(json!({
        "scenario": "storm", "label": args.label(), "peers": plan.peers, "close": if plan.reset { "rst" } else { "fin" },
        "holdSecs": plan.hold.as_secs(), "settleSecs": plan.settle, "before": before, "cycles": results,
        "ok": problems.is_empty(), "problems": problems,
    })
    .to_string())
}

impl Plan {
    /// One cycle: connect and join every peer, hold, drop all, wait for the
    /// server to count them out and to empty its rooms, then settle if asked.
    async fn cycle(&self, cycle: usize, settle: bool, problems: &mut Vec<String>) -> Value {
        let mut fail = |what: String| problems.push(format!("cycle {cycle}: {what}"));
        let (drop_tx, drop_rx) = watch::channel(false);
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let (tasks, mut acks, mut errors) = self.connect_all(drop_rx, dropped.clone()).await;
        let setup = started.elapsed();
        let joined = acks.len();
        if joined != self.peers {
            fail(format!("{joined} of {} joins acked: {errors:?}", self.peers));
        }
        tokio::time::sleep(self.hold).await;
        let holding = self.reading().await;
        let rooms_holding = rooms(&self.addr).await.ok();
        let connections_holding = crate::http::connections(&self.addr).await.ok();
        if connections_holding != Some(self.peers as u64) {
            fail(format!("/health counted {connections_holding:?} connections while {} were held", self.peers));
        }
        if rooms_holding != Some(self.peers.div_ceil(2) as u64) {
            fail(format!("/api/rooms listed {rooms_holding:?} rooms while {} peers were held", self.peers));
        }
        let dropped_holding = dropped.load(Ordering::Relaxed);
        if dropped_holding > 0 {
            fail(format!("the server closed {dropped_holding} peers while they were held"));
        }

        // The storm: every peer closes its socket at once, no DISCONNECT.
        let storm = Instant::now();
        let _ = drop_tx.send(true);
        let mut tasks = tasks;
        while tasks.join_next().await.is_some() {}
        let dropped_in = storm.elapsed();
        let gone_ok =
            poll(self.gone_timeout, async || crate::http::connections(&self.addr).await.ok() == Some(0)).await;
        let mut gone = self.reading().await;
        gone["secs"] = json!(round3(storm.elapsed().as_secs_f64()));
        gone["rooms"] = json!(rooms(&self.addr).await.ok());
        if !gone_ok {
            fail(format!("connections left {} s after the storm", self.gone_timeout.as_secs()));
        }
        let empty_ok = poll(self.grace_timeout, async || rooms(&self.addr).await.ok() == Some(0)).await;
        let emptied = Instant::now();
        let mut grace_ended = self.reading().await;
        grace_ended["secs"] = json!(round3(storm.elapsed().as_secs_f64()));
        if !empty_ok {
            fail(format!("rooms left {} s after the storm", self.grace_timeout.as_secs()));
        }
        let mut settled = Vec::new();
        for &secs in if settle { &self.settle[..] } else { &[] } {
            tokio::time::sleep_until((emptied + Duration::from_secs(secs)).into()).await;
            let mut reading = self.reading().await;
            reading["afterSecs"] = json!(secs);
            settled.push(reading);
        }
        errors.truncate(5);
        json!({
            "cycle": cycle, "joined": joined, "errors": self.peers - joined, "errorSamples": errors,
            "droppedWhileHolding": dropped_holding, "setupSecs": round3(setup.as_secs_f64()),
            "joinAckMs": acks.summary_ms(), "holding": holding, "connectionsHolding": connections_holding,
            "roomsHolding": rooms_holding, "droppedInSecs": round3(dropped_in.as_secs_f64()), "gone": gone,
            "graceEnded": grace_ended, "settled": settled,
        })
    }

    /// Connects every peer (`concurrency` at a time) and waits until each
    /// joined or failed; each then holds its connection until `signal` fires.
    async fn connect_all(&self, signal: watch::Receiver<bool>, dropped: Arc<AtomicUsize>) -> Connected {
        let gate = Arc::new(Semaphore::new(self.concurrency));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        for i in 0..self.peers {
            let (addr, room, user) = (self.addr.clone(), format!("s{}", i / 2), format!("u{i}"));
            let (gate, done, signal, dropped, reset) =
                (gate.clone(), done_tx.clone(), signal.clone(), dropped.clone(), self.reset);
            tasks.spawn(async move {
                let permit = gate.acquire_owned().await.expect("semaphore");
                let joined = join(&addr, &room, &user).await;
                drop(permit);
                match joined {
                    Ok((client, ack)) => {
                        let _ = done.send(Ok(ack));
                        hold(client, signal, dropped, reset).await;
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.to_string()));
                    }
                }
            });
        }
        drop(done_tx);
        let (mut acks, mut errors) = (Samples::default(), Vec::new());
        for _ in 0..self.peers {
            // Each peer answers once, then holds its connection (and its sender).
            let Some(result) = done_rx.recv().await else { break };
            match result {
                Ok(ack) => acks.push(ack.as_micros() as u64),
                Err(e) => errors.push(e),
            }
        }
        (tasks, acks, errors)
    }

    /// The server's RSS and peak RSS, and Redis's used memory when given.
    async fn reading(&self) -> Value {
        let rss = self.pid.and_then(rss_kib);
        let peak = self.pid.and_then(|pid| status_kib(pid, "VmHWM:"));
        let redis = match &self.redis {
            Some(addr) => redis_memory(addr).await.ok(),
            None => None,
        };
        json!({ "rssKiB": rss, "peakRssKiB": peak, "redis": redis })
    }
}

type Connected = (JoinSet<()>, Samples, Vec<String>);

/// Connects and joins; the client and the time from `join-room` to its ack.
async fn join(addr: &str, room: &str, user: &str) -> Result<(Client, Duration), Error> {
    let mut client = Client::connect(addr).await?;
    let sent = Instant::now();
    client.join(room, user).await?;
    Ok((client, sent.elapsed()))
}

/// Holds `client` (answering pings) until `signal` fires, then closes its TCP
/// socket abruptly; counts it in `dropped` if the server closed it first.
async fn hold(mut client: Client, mut signal: watch::Receiver<bool>, dropped: Arc<AtomicUsize>, reset: bool) {
    loop {
        tokio::select! {
            _ = signal.changed() => break,
            frame = client.recv() => if frame.is_none() {
                dropped.fetch_add(1, Ordering::Relaxed);
                return;
            },
        }
    }
    client.abort(reset);
}

/// Polls `done` every 100 ms until it holds or `timeout` passed; whether it held.
async fn poll(timeout: Duration, done: impl AsyncFn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many rooms `GET /api/rooms` counts.
async fn rooms(addr: &str) -> Result<u64, Error> {
    crate::http::get_json(addr, "/api/rooms?limit=1").await?["total"]
        .as_u64()
        .ok_or_else(|| "no total in /api/rooms".into())
}

/// `INFO memory` of the Redis server at `addr`: `used_memory` and
/// `used_memory_rss` in bytes (an inline command; the answer is one bulk string).
async fn redis_memory(addr: &str) -> Result<Value, Error> {
    let mut tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
    tcp.write_all(b"INFO memory\r\nQUIT\r\n").await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    Ok(json!({ "usedMemory": field("used_memory"), "usedMemoryRss": field("used_memory_rss") }))
}
