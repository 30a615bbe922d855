//! `bootstrap`: how fast `POST /bootstrap` answers (seed 002 claims a lookup
//! under 10 ms). `--workers` workers register on `/workers` (the server needs
//! `WORKER_KEY` = `--key`, a long `WORKER_HEALTH_TIMEOUT`, `TRUSTED_PROXIES`
//! = 127.0.0.1 and REST limits lifted), then `--requests` bootstraps go out
//! one after another on one keep-alive connection, each with another
//! `X-Forwarded-For` address, and every answer is checked. Prints requests per
//! second and the latency percentiles.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::args::Args;
use crate::sio::{Client, Error};
use crate::stats::{Samples, round3};

/// Runs the scenario; one JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let addr = args.addr();
    let workers: usize = args.get("workers", 10)?;
    let requests: usize = args.get("requests", 20_000)?;
    let key: String = args.get("key", "bench-key".to_owned())?;
    let mut held = Vec::with_capacity(workers);
    for i in 0..workers {
        let auth = format!(r#"{{"key":"{key}","workerId":"bench-{i}","region":"local","capacity":100}}"#);
        held.push(Client::connect_to(&addr, "/workers", Some(&auth)).await?);
    }
    let tcp = TcpStream::connect(&addr).await?;
    tcp.set_nodelay(true)?;
    let mut conn = BufReader::new(tcp);
    let mut latencies = Samples::default();
    let mut seen = HashSet::new();
    let started = Instant::now();
    for i in 0..requests {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let request =
            format!("POST /bootstrap HTTP/1.1\r\nHost: {addr}\r\nX-Forwarded-For: {ip}\r\nContent-Length: 0\r\n\r\n");
        let sent = Instant::now();
        conn.get_mut().write_all(request.as_bytes()).await?;
        let body = read_response(&mut conn).await?;
        latencies.push(sent.elapsed().as_micros() as u64);
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        let worker = answer["workerId"].as_str().ok_or_else(|| format!("no workerId in {answer}"))?;
        if answer["clientIp"] != ip.as_str() {
            return Err(format!("the answer for {ip} names {}", answer["clientIp"]).into());
        }
        seen.insert(worker.to_owned());
    }
    let secs = started.elapsed().as_secs_f64();
    for client in held {
        client.close().await;
    }
    Ok(serde_json::json!({
        "scenario": "bootstrap",
        "label": args.get("label", "switchboard".to_owned())?,
        "workers": workers,
        "requests": requests,
        "workersAssigned": seen.len(),
        "seconds": round3(secs),
        "perSecond": round3(requests as f64 / secs),
        "latencyMs": latencies.summary_ms(),
    })
    .to_string())
}

/// One HTTP/1.1 response with a `Content-Length` body; `Err` unless it is a 200.
async fn read_response(conn: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Error> {
    let mut status = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_line(&mut status))
        .await
        .map_err(|_| "no answer in 10 s")??;
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("{}: {}", status.trim(), String::from_utf8_lossy(&body)).into());
    }
    Ok(body)
}
