//! Scenario `connections`: N peers connect over websocket and each joins a room
//! of two; the server's RSS before, while holding them all, and after they
//! have all closed gives the memory each connected peer costs.
//!
//! Join latency is measured from the `join-room` frame to its ack; the time
//! from opening the TCP connection to that ack is reported beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::procfs::rss_kib;
use crate::sio::{Client, Error};
use crate::stats::{Samples, round3};

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let peers: usize = args.get("peers", 1000)?;
    let concurrency: usize = args.get("concurrency", 256)?;
    let hold = Duration::from_secs(args.get("hold-secs", 5)?);
    let pid = args.server_pid()?;
    let addr = args.addr();

    let rss_before = pid.and_then(rss_kib);
    let gate = Arc::new(Semaphore::new(concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = watch::channel(false);
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..peers {
        let peer = Peer { addr: addr.clone(), room: format!("c{}", i / 2), user: format!("u{i}") };
        tasks.spawn(peer.run(gate.clone(), done_tx.clone(), close_rx.clone(), dropped.clone()));
    }
    drop(done_tx);
    let (mut join, mut total, mut errors) = (Samples::default(), Samples::default(), Vec::new());
    for _ in 0..peers {
        // Each peer answers once, then holds its connection (and its sender).
        let Some(result) = done_rx.recv().await else { break };
        match result {
            Ok((whole, ack)) => {
                total.push(micros(whole));
                join.push(micros(ack));
            }
            Err(e) => errors.push(e),
        }
    }
    let setup = started.elapsed();
    tokio::time::sleep(hold).await;
    let rss_holding = pid.and_then(rss_kib);
    let held = crate::http::connections(&addr).await.ok();
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let drained = wait_until_empty(&addr).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.and_then(rss_kib);

    let joined = join.len();
    let per_peer = crate::procfs::bytes_per_peer(rss_before, rss_holding, joined);
    errors.truncate(5);
    Ok(json!({
        "scenario": "connections", "label": args.label(), "peers": peers, "joined": joined,
        "errors": peers - joined, "errorSamples": errors, "droppedWhileHolding": dropped.load(Ordering::Relaxed),
        "serverConnectionsHolding": held, "setupSecs": round3(setup.as_secs_f64()),
        "joinsPerSecond": round3(joined as f64 / setup.as_secs_f64()),
        "joinAckMs": join.summary_ms(), "connectAndJoinMs": total.summary_ms(),
        "rssKiB": { "before": rss_before, "holding": rss_holding, "after": rss_after },
        "bytesPerPeer": per_peer, "drained": drained,
    })
    .to_string())
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Waits (at most 30 s) until the server reports no connection.
async fn wait_until_empty(addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if crate::http::connections(addr).await.ok() == Some(0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

struct Peer {
    addr: String,
    room: String,
    user: String,
}

type Done = mpsc::UnboundedSender<Result<(Duration, Duration), String>>;

impl Peer {
    async fn run(self, gate: Arc<Semaphore>, done: Done, close: watch::Receiver<bool>, dropped: Arc<AtomicUsize>) {
        let permit = gate.acquire_owned().await.expect("semaphore");
        let result = self.connect_and_join().await;
        drop(permit);
        match result {
            Ok((client, whole, ack)) => {
                let _ = done.send(Ok((whole, ack)));
                if !hold(client, close).await {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                let _ = done.send(Err(e.to_string()));
            }
        }
    }

    async fn connect_and_join(&self) -> Result<(Client, Duration, Duration), Error> {
        let started = Instant::now();
        let mut client = Client::connect(&self.addr).await?;
        let sent = Instant::now();
        client.join(&self.room, &self.user).await?;
        Ok((client, started.elapsed(), sent.elapsed()))
    }
}

/// Keeps `client` connected (answering pings) until told to close; false if
/// the server closed it first.
async fn hold(mut client: Client, mut close: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            _ = close.changed() => break,
            frame = client.recv() => if frame.is_none() {
                return false;
            },
        }
    }
    client.close().await;
    true
}
