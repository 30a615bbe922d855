//! Scenario `raw-idle`: N raw peers open `/signaling/peer_bench_<i>` and
//! idle, answering the server's pings, for `--hold-secs` (a few ping
//! intervals); the server's RSS before, while holding them all and after
//! they closed gives the memory each idle raw peer costs, measured as
//! `connections` measures a socket.io peer ([`crate::hold`]). With
//! `--announce true` each device is announced first (before the baseline is
//! read: a presence record is not a connection's), so its delivery loop
//! finds a record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::watch;

use super::{Incoming, RawClient, announce};
use crate::args::Args;
use crate::sio::Error;

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let peers: usize = args.get("peers", 1000)?;
    let concurrency: usize = args.get("concurrency", 256)?;
    let hold = Duration::from_secs(args.get("hold-secs", 16)?);
    let announced: bool = args.get("announce", false)?;
    let addr = args.addr();

    let device = |i: usize| format!("peer_bench_{i}");
    if announced {
        for i in 0..peers {
            announce(&addr, "idle", &device(i)).await?;
        }
    }
    // Let the announcements' connections close before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connect = |i: usize| {
        let (addr, name) = (addr.clone(), device(i));
        async move { RawClient::connect(&addr, &name).await }.boxed()
    };
    let count = async || crate::http::connected_clients(&addr).await.ok();
    let held = crate::hold::hold(peers, concurrency, hold, args.server_pid()?, connect, idle, count).await;
    let mut out = held.figures;
    out["scenario"] = json!("raw-idle");
    out["label"] = json!(args.label());
    out["announced"] = json!(announced);
    out["healthConnectedClientsHolding"] = json!(held.held);
    out["pingsWhileHolding"] = json!(held.events);
    Ok(out.to_string())
}

/// Holds `client` open, counting pings, until told to close; false if the server closed it first.
fn idle(mut client: RawClient, mut close: watch::Receiver<bool>, pings: Arc<AtomicU64>) -> BoxFuture<'static, bool> {
    async move {
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
    .boxed()
}
