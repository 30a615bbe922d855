//! Attack 4, connections outside the limits (issue 17, problem 5), in three
//! parts, each from its own address and measured on its own:
//!
//! - `handshakes`: `--handshakes` engine.io polling handshakes (64 at a time),
//!   none followed by a namespace CONNECT; counted by answer. Then, past
//!   `--connect-timeout-secs` plus one, one more handshake shows whether the
//!   address's slots came back.
//! - `big_heads`: `--big-heads` handshakes (16 at a time) each sending a head
//!   of `--head-bytes` (1 KB headers), the answer read while it is sent.
//! - `idle`: `--idle` TCP connections that send nothing and `--half-sent`
//!   that send half a request head; how many are still open
//!   `--header-timeout-secs` plus 2 s later, and when the others were closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Ctx, Tally, loopback};
use crate::http::{request, tcp_from};
use crate::sio::Error;
use crate::stats::{Samples, round3};

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

/// Engine.io handshakes without a CONNECT.
pub async fn handshakes(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let count: usize = ctx.args.get("handshakes", 2000)?;
    let connect_timeout: u64 = ctx.args.get("connect-timeout-secs", 10)?;
    let src = loopback(5);
    let mut answers = Tally::default();
    let mut pending = FuturesUnordered::new();
    let mut started = 0;
    while started < count || !pending.is_empty() {
        while started < count && pending.len() < 64 {
            pending.push(request(&ctx.addr, src, "GET", HANDSHAKE, &[], ""));
            started += 1;
        }
        match pending.next().await {
            Some(Ok(r)) => answers.add(r.status.to_string()),
            Some(Err(_)) => answers.add("error"),
            None => {}
        }
    }
    let took = Instant::now();
    tokio::time::sleep(Duration::from_secs(connect_timeout + 1)).await;
    let later = request(&ctx.addr, src, "GET", HANDSHAKE, &[], "").await.map(|r| r.status).ok();
    Ok(json!({
        "handshakes": count, "admitted": answers.get("200"), "answers": answers.json(),
        "handshakeAfterConnectTimeout": later, "waitedSecs": round3(took.elapsed().as_secs_f64()),
    }))
}

/// Handshakes with oversized heads.
pub async fn big_heads(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let count: usize = ctx.args.get("big-heads", 500)?;
    let bytes: usize = ctx.args.get("head-bytes", 390_000)?;
    let line = format!("X-Pad: {}\r\n", "p".repeat(1000 - 10));
    let mut head = format!("GET {HANDSHAKE} HTTP/1.1\r\nHost: {}\r\n", ctx.addr);
    while head.len() + line.len() <= bytes {
        head.push_str(&line);
    }
    head.push_str("\r\n");
    let head = Arc::new(head);
    let mut answers = Tally::default();
    let mut pending = FuturesUnordered::new();
    let mut started = 0;
    while started < count || !pending.is_empty() {
        while started < count && pending.len() < 16 {
            pending.push(big_head(ctx.addr.clone(), head.clone()));
            started += 1;
        }
        if let Some(outcome) = pending.next().await {
            answers.add(outcome);
        }
    }
    Ok(
        json!({ "requests": count, "headBytes": head.len(), "answers": answers.json(), "answered431": answers.get("431") }),
    )
}

/// Sends `head` while reading the answer; the status, or how the connection ended.
async fn big_head(addr: String, head: Arc<String>) -> String {
    let Ok(tcp) = tcp_from(&addr, loopback(6)).await else { return "connect-error".into() };
    let (mut rd, mut wr) = tcp.into_split();
    let write = async move {
        let ok = wr.write_all(head.as_bytes()).await.is_ok();
        (ok, wr)
    };
    let read = async move {
        let mut raw = Vec::new();
        let result = rd.read_to_end(&mut raw).await;
        (result, raw)
    };
    let read = tokio::time::timeout(Duration::from_secs(30), read);
    let ((_, _wr), answer) = tokio::join!(write, read);
    match answer {
        Err(_) => "no-answer-in-30s".into(),
        Ok((_, raw)) if raw.is_empty() => "closed-without-answer".into(),
        Ok((_, raw)) => crate::http::parse(&raw).map(|r| r.status.to_string()).unwrap_or_else(|_| "unreadable".into()),
    }
}

/// Idle and half-sent connections against the header read timeout.
pub async fn idle(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let idle: usize = ctx.args.get("idle", 300)?;
    let half: usize = ctx.args.get("half-sent", 50)?;
    let timeout: u64 = ctx.args.get("header-timeout-secs", 10)?;
    let check = Duration::from_secs(timeout + 2);
    let started = Instant::now();
    let mut conns = FuturesUnordered::new();
    for i in 0..idle + half {
        let addr = ctx.addr.clone();
        conns.push(async move {
            let half_sent = i >= idle;
            let Ok(mut tcp) = tcp_from(&addr, loopback(7)).await else { return (half_sent, None, false) };
            if half_sent && tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                return (half_sent, Some(started.elapsed()), false);
            }
            // Open until the server closes it (read ends) or the check time passes.
            let mut buf = [0u8; 512];
            let mut answered = false;
            loop {
                match tokio::time::timeout_at((started + check).into(), tcp.read(&mut buf)).await {
                    Err(_) => return (half_sent, None, answered),
                    Ok(Ok(0)) | Ok(Err(_)) => return (half_sent, Some(started.elapsed()), answered),
                    Ok(Ok(_)) => answered = true,
                }
            }
        });
    }
    let (mut open, mut closed, mut answered) = ([0u64; 2], [Samples::default(), Samples::default()], 0);
    while let Some((half_sent, closed_at, got)) = conns.next().await {
        let k = usize::from(half_sent);
        match closed_at {
            Some(at) => closed[k].push(at.as_micros() as u64),
            None => open[k] += 1,
        }
        answered += u64::from(got);
    }
    let [mut idle_closed, mut half_closed] = closed;
    Ok(json!({
        "idle": idle, "halfSent": half, "checkedAfterSecs": check.as_secs(),
        "idleOpenAtCheck": open[0], "halfSentOpenAtCheck": open[1],
        "idleClosedAtMs": idle_closed.summary_ms(), "halfSentClosedAtMs": half_closed.summary_ms(),
        "withAnAnswer": answered,
    }))
}
