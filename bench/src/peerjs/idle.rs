//! Scenario `peerjs-idle`: N PeerJS peers open `{path}/peerjs?key=&id=&token=`
//! (`--concurrency` at a time), each waits for `OPEN`, then idles as the
//! client library does, sending `HEARTBEAT` every 5 s (peer i of N first at
//! i/N of a period, so the beats are spread), for `--hold-secs`. The
//! server's RSS before, while holding them all and after they closed gives
//! the memory each connected peer costs ([`crate::hold`]). A peer the server
//! closes while held (for a missed heartbeat, say) counts as dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::watch;

use super::{Endpoint, HEARTBEAT, HEARTBEAT_EVERY, peer_id, token};
use crate::args::Args;
use crate::raw::{Incoming, RawClient};
use crate::sio::Error;

/// Tells this scenario's peer ids apart from `peerjs-relay`'s.
const TAG: u32 = 0x1d1e;

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let peers: usize = args.get("peers", 1000)?;
    let concurrency: usize = args.get("concurrency", 256)?;
    let hold = Duration::from_secs(args.get("hold-secs", 20)?);
    let endpoint = Endpoint::from_args(args)?;

    let connect = |i: usize| {
        let endpoint = endpoint.clone();
        let phase = i as f64 / peers as f64;
        async move { Ok((endpoint.open(&peer_id(TAG, i), &token(i)).await?, phase)) }.boxed()
    };
    let count = async || endpoint.listed().await;
    let held = crate::hold::hold(peers, concurrency, hold, args.server_pid()?, connect, idle, count).await;
    let mut out = held.figures;
    out["scenario"] = json!("peerjs-idle");
    out["label"] = json!(args.label());
    out["listedHolding"] = json!(held.held);
    out["heartbeatsWhileHolding"] = json!(held.events);
    Ok(out.to_string())
}

/// Sends a heartbeat every 5 s (the first at `phase` of a period) until told
/// to close; false if the server closed the peer first.
fn idle(
    (mut client, phase): (RawClient, f64),
    mut close: watch::Receiver<bool>,
    beats: Arc<AtomicU64>,
) -> BoxFuture<'static, bool> {
    async move {
        let first = Instant::now() + HEARTBEAT_EVERY.mul_f64(phase);
        let mut beat = tokio::time::interval_at(first.into(), HEARTBEAT_EVERY);
        loop {
            tokio::select! {
                _ = close.changed() => break,
                _ = beat.tick() => {
                    if client.feed(HEARTBEAT.to_owned()).await.is_err() || client.flush().await.is_err() {
                        return false;
                    }
                    beats.fetch_add(1, Ordering::Relaxed);
                }
                frame = client.recv() => match frame {
                    Some(Incoming::Ping | Incoming::Text(_)) => {}
                    None => return false,
                },
            }
        }
        client.close().await;
        true
    }
    .boxed()
}
