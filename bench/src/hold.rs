//! N idle connections opened, held a while and closed, with the server's RSS
//! read before, while holding and after: memory per idle peer, shared by
//! `raw-idle` and `peerjs-idle` (each brings how a peer opens, how it idles,
//! and how the server is asked how many it holds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::procfs::{bytes_per_peer, rss_kib};
use crate::sio::Error;
use crate::stats::{Samples, round3};

/// What holding the peers showed.
pub struct Held {
    /// What the idle peers counted while held (pings seen, heartbeats sent).
    pub events: u64,
    /// What the server said it held while the peers were held.
    pub held: Option<u64>,
    /// The figures every idle scenario reports (opened, errors, dropped,
    /// RSS, bytes per peer, drained), as JSON.
    pub figures: Value,
}

/// Opens `peers` connections with `connect` (`concurrency` at a time), keeps
/// each in `idle` for `hold` once all opened, then closes them; `count` asks
/// the server how many peers it holds (`None` if it cannot say).
pub async fn hold<C: Send + 'static>(
    peers: usize,
    concurrency: usize,
    hold: Duration,
    pid: Option<u32>,
    connect: impl Fn(usize) -> BoxFuture<'static, Result<C, Error>>,
    idle: fn(C, watch::Receiver<bool>, Arc<AtomicU64>) -> BoxFuture<'static, bool>,
    count: impl AsyncFn() -> Option<u64>,
) -> Held {
    let rss_before = pid.and_then(rss_kib);
    let gate = Arc::new(Semaphore::new(concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = watch::channel(false);
    let (dropped, events) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..peers {
        let (opening, gate, done) = (connect(i), gate.clone(), done_tx.clone());
        let (close, dropped, events) = (close_rx.clone(), dropped.clone(), events.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let began = Instant::now();
            let result = opening.await;
            drop(permit);
            match result {
                Ok(client) => {
                    let _ = done.send(Ok(began.elapsed()));
                    if !idle(client, close, events).await {
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
    // Events counted from here: every peer is open and idling.
    let events_before = events.load(Ordering::Relaxed);
    tokio::time::sleep(hold).await;
    let rss_holding = pid.and_then(rss_kib);
    let held = count().await;
    let events = events.load(Ordering::Relaxed) - events_before;
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // The server counts a peer out once its clean-up ran.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count().await != Some(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = count().await == Some(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.and_then(rss_kib);

    let opened = open.len();
    errors.truncate(5);
    let figures = json!({
        "peers": peers, "opened": opened, "errors": peers - opened, "errorSamples": errors,
        "droppedWhileHolding": dropped.load(Ordering::Relaxed), "holdSecs": hold.as_secs(),
        "setupSecs": round3(setup.as_secs_f64()), "openMs": open.summary_ms(),
        "rssKiB": { "before": rss_before, "holding": rss_holding, "after": rss_after },
        "bytesPerPeer": bytes_per_peer(rss_before, rss_holding, opened), "drained": drained,
    });
    Held { events, held, figures }
}
