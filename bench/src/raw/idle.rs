//! Scenario `raw-idle`: N raw peers open `/signaling/peer_bench_<i>` and
//! idle, answering the server's pings, for `--hold-secs` (a few ping
//! intervals); the server's RSS before, while holding them all and after
//! they closed gives the memory each idle raw peer costs, measured as
//! `connections` measures a socket.io peer. With `--announce true` each
//! device is announced first (before the baseline is read: a presence
//! record is not a connection's), so its delivery loop finds a record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::{Incoming, RawClient, announce};
use crate::args::Args;
use crate::procfs::rss_kib;
use crate::sio::Error;
use crate::stats::{Samples, round3};

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let peers: usize = args.get("peers", 1000)?;
    let concurrency: usize = args.get("concurrency", 256)?;
    let hold = Duration::from_secs(args.get("hold-secs", 16)?);
    let announced: bool = args.get("announce", false)?;
    let pid = args.server_pid()?;
    let addr = args.addr();

    let device = |i: usize| format!("peer_bench_{i}");
    if announced {
        for i in 0..peers {
            announce(&addr, "idle", &device(i)).await?;
        }
    }
    // Let the announcements' connections close before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = pid.and_then(rss_kib);
    let gate = Arc::new(Semaphore::new(concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = watch::channel(false);
    let (dropped, pings) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..peers {
        let (addr, name, gate, done) = (addr.clone(), device(i), gate.clone(), done_tx.clone());
        let (close, dropped, pings) = (close_rx.clone(), dropped.clone(), pings.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let opening = Instant::now();
            let result = RawClient::connect(&addr, &name).await;
            drop(permit);
            match result {
                Ok(client) => {
                    let _ = done.send(Ok(opening.elapsed()));
                    if !idle(client, close, &pings).await {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        });
    }
    drop(done_tx);
    let (mut open, mut errors) = (Samples::default(), Vec::new());
    for _ in 0..peers {
        let Some(result) = done_rx.recv().await else { break };
        match result {
            Ok(took) => open.push(took.as_micros() as u64),
            Err(e) => errors.push(e),
        }
    }
    let setup = started.elapsed();
    // Pings counted from here: every peer should see one per interval.
    let pings_before = pings.load(Ordering::Relaxed);
    tokio::time::sleep(hold).await;
    let rss_holding = pid.and_then(rss_kib);
    let held = crate::http::connected_clients(&addr).await.ok();
    let pings_held = pings.load(Ordering::Relaxed) - pings_before;
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // The server counts a raw peer out once its clean-up ran.
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::http::connected_clients(&addr).await.ok() != Some(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = crate::http::connected_clients(&addr).await.ok() == Some(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.and_then(rss_kib);

    let opened = open.len();
    let per_peer = crate::procfs::bytes_per_peer(rss_before, rss_holding, opened);
    errors.truncate(5);
    Ok(json!({
        "scenario": "raw-idle", "label": args.label(), "peers": peers, "announced": announced, "opened": opened,
        "errors": peers - opened, "errorSamples": errors, "droppedWhileHolding": dropped.load(Ordering::Relaxed),
        "healthConnectedClientsHolding": held, "holdSecs": hold.as_secs(), "pingsWhileHolding": pings_held,
        "setupSecs": round3(setup.as_secs_f64()), "openMs": open.summary_ms(),
        "rssKiB": { "before": rss_before, "holding": rss_holding, "after": rss_after },
        "bytesPerPeer": per_peer, "drained": drained,
    })
    .to_string())
}

/// Holds `client` open, counting pings, until told to close; false if the server closed it first.
async fn idle(mut client: RawClient, mut close: watch::Receiver<bool>, pings: &AtomicU64) -> bool {
    loop {
        tokio::select! {
            _ = close.changed() => break,
            frame = client.recv() => match frame {
                Some(Incoming::Ping) => { pings.fetch_add(1, Ordering::Relaxed); }
                Some(Incoming::Text(_)) => {}
                None => return false,
            },
        }
    }
    client.close().await;
    true
}
