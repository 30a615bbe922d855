//! Attack 1, the device-queue flood (issue 17, problem 1): the attacker
//! announces a sending device and `--receivers` offline receivers in one
//! network, then signals `--signals` bodies of `--signal-bytes` over
//! `/devices` (at most 32 unacked), round-robin over the receivers, whatever
//! the answers. Meanwhile, and for `--read-secs` after, it reads three
//! queues at once with `GET /signaling/messages/{id}?peek=true`, every 250 ms
//! (within the REST limit). Refusals are counted by code, with the budgets they name; the RSS
//! with the queues still full is read 3 s after the sender left, then the
//! queues are removed so the next attack starts from empty ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Ctx, Tally, loopback, outcome};
use crate::http::request;
use crate::procfs::rss_kib;
use crate::sio::{Client, Error, Packet, classify};
use crate::stats::Samples;

const NETWORK: &str = "flood";
const IN_FLIGHT: u64 = 32;

/// Runs the flood; its figures.
pub async fn run(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let signals: u64 = ctx.args.get("signals", 1024)?;
    let size: usize = ctx.args.get("signal-bytes", 63_000)?;
    let receivers: usize = ctx.args.get("receivers", 8)?;
    let read_secs: u64 = ctx.args.get("read-secs", 3)?;
    let src = loopback(2);
    let sender = "peer_flood_sender".to_owned();
    let targets: Vec<String> = (0..receivers).map(|i| format!("peer_flood_r{i}")).collect();
    for device in std::iter::once(&sender).chain(&targets) {
        announce(ctx, device).await?;
    }
    let mut client = Client::connect_from(
        &ctx.addr,
        src,
        "/devices",
        Some(&ctx.auth("attacker", &format!("\"deviceId\":\"{sender}\""))),
    )
    .await?;

    let reading = Arc::new(AtomicBool::new(true));
    let reads = tokio::spawn(read_queues(ctx.clone(), targets.clone(), reading.clone()));
    let sdp = "a".repeat(size.saturating_sub(40));
    let (mut sent, mut answered, mut tally) = (0u64, 0u64, Tally::default());
    let mut budgets = BTreeSet::new();
    let started = Instant::now();
    while answered < signals {
        while sent < signals && sent - answered < IN_FLIGHT {
            let to = &targets[sent as usize % receivers];
            let body = format!(r#"{{"type":"offer","toPeerId":"{to}","data":{{"type":"offer","sdp":"{sdp}"}}}}"#);
            client.emit_with_ack("signal", &body).await?;
            sent += 1;
        }
        let text = client.next_text().await?;
        if let Packet::Ack(_, ack) = classify(&text) {
            answered += 1;
            let code = outcome(ack);
            if code != "ok"
                && let Some(message) = serde_json::from_str::<Value>(ack)
                    .ok()
                    .and_then(|v| v[0]["error"]["message"].as_str().map(str::to_owned))
            {
                budgets.insert(message);
            }
            tally.add(code);
        }
    }
    let flood_secs = started.elapsed().as_secs_f64();
    // The reads go on a while with the queues full.
    tokio::time::sleep(Duration::from_secs(read_secs)).await;
    reading.store(false, Ordering::Relaxed);
    let reads = reads.await?;
    client.close().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = ctx.pid.and_then(rss_kib);
    let mut removed = 0;
    for target in &targets {
        let path = format!("/signaling/messages/{target}?upTo={}", u64::MAX);
        let r = request(&ctx.addr, src, "DELETE", &path, &ctx.bearer("attacker"), "").await?;
        removed += serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["removed"].as_u64()).unwrap_or(0);
    }
    let accepted = tally.get("ok");
    Ok(json!({
        "signals": signals, "signalBytes": size, "receivers": receivers,
        "bytesAttempted": signals * size as u64, "accepted": accepted, "bytesAccepted": accepted * size as u64,
        "answers": tally.json(), "refusalMessages": budgets.into_iter().take(5).collect::<Vec<_>>(),
        "floodSecs": crate::stats::round3(flood_secs), "peekReads": reads,
        "rssQueuesHeldKiB": held, "removedAfter": removed,
    }))
}

/// `POST /network/flood/announce` for `device`, as the attacker.
async fn announce(ctx: &Ctx, device: &str) -> Result<(), Error> {
    let user = if ctx.token("attacker").is_some() { String::new() } else { r#","userId":"attacker""#.into() };
    let body = format!(
        r#"{{"peerId":"{device}","signalAddress":"ws://127.0.0.1:9/{device}","capabilities":["relay"]{user}}}"#
    );
    let mut headers = ctx.bearer("attacker");
    headers.push("Content-Type: application/json".into());
    let r = request(&ctx.addr, loopback(2), "POST", &format!("/network/{NETWORK}/announce"), &headers, &body).await?;
    if r.status != 200 {
        return Err(format!("announce {device}: {} {:.200}", r.status, r.body).into());
    }
    Ok(())
}

/// Three concurrent peek reads of three queues, every 250 ms, until told to stop.
async fn read_queues(ctx: Arc<Ctx>, targets: Vec<String>, reading: Arc<AtomicBool>) -> Value {
    let (mut latency, mut statuses, mut most) = (Samples::default(), Tally::default(), 0usize);
    let mut round = 0usize;
    while reading.load(Ordering::Relaxed) {
        let reads = (0..3).map(|i| {
            let path = format!("/signaling/messages/{}?peek=true", targets[(round + i) % targets.len()]);
            let (ctx, headers) = (ctx.clone(), ctx.bearer("attacker"));
            async move {
                let sent = Instant::now();
                let r = request(&ctx.addr, loopback(2), "GET", &path, &headers, "").await;
                (sent.elapsed(), r)
            }
        });
        for (took, r) in futures_util::future::join_all(reads).await {
            latency.push(took.as_micros() as u64);
            match r {
                Ok(r) => {
                    statuses.add(r.status.to_string());
                    most = most.max(r.body.len());
                }
                Err(_) => statuses.add("error"),
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    json!({ "reads": latency.len(), "statuses": statuses.json(), "latencyMs": latency.summary_ms(), "largestBodyBytes": most })
}
