//! Scenario `churn`: C clients join and leave rooms in a loop, each operation
//! waiting for its ack; rooms hold up to K clients, so every join and leave
//! also notifies the others in the room. Reports operations a second (a join
//! or a leave is one operation), refusals, and the ack latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

use crate::args::Args;
use crate::procfs::{cpu_since, cpu_time};
use crate::sio::{Client, Error, ack_ok, join_body};
use crate::stats::{Samples, round3};

/// What one client did.
#[derive(Default)]
struct Tally {
    ops: u64,
    errors: u64,
    latency: Samples,
    failure: Option<String>,
}

/// Runs the scenario and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let clients: usize = args.get("clients", 200)?;
    let secs: f64 = args.get("secs", 10.0)?;
    let room_size: usize = args.get("room-size", 4)?;
    let pid = args.server_pid()?;
    let addr = args.addr();

    let gate = Arc::new(Semaphore::new(256));
    let ready = Arc::new(Barrier::new(clients + 1));
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let (addr, gate, ready, mut start_rx) = (addr.clone(), gate.clone(), ready.clone(), start_rx.clone());
        let (room, user) = (format!("ch{}", i / room_size.max(1)), format!("u{i}"));
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            let client = Client::connect(&addr).await;
            drop(permit);
            ready.wait().await;
            let mut client = match client {
                Ok(c) => c,
                Err(e) => return Tally { failure: Some(e.to_string()), ..Tally::default() },
            };
            let _ = start_rx.wait_for(Option::is_some).await;
            let end = start_rx.borrow().expect("start") + Duration::from_secs_f64(secs);
            let tally = churn(&mut client, &room, &user, end).await;
            client.close().await;
            tally
        });
    }
    ready.wait().await;
    let cpu = pid.and_then(cpu_time);
    let own_cpu = cpu_time(std::process::id());
    let started = Instant::now();
    let _ = start_tx.send(Some(started));
    let mut total = Tally::default();
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let mut t = done?;
        total.ops += t.ops;
        total.errors += t.errors;
        total.latency.merge(&mut t.latency);
        failures.extend(t.failure);
    }
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_since(pid, cpu).map(round3);
    let own = cpu_since(Some(std::process::id()), own_cpu).map(|c| round3(c / wall));
    let failed = failures.len();
    failures.truncate(5);
    Ok(json!({
        "scenario": "churn", "label": args.label(), "clients": clients, "roomSize": room_size, "secs": round3(wall),
        "ops": total.ops, "opsPerSec": round3(total.ops as f64 / wall), "refused": total.errors,
        "clientsFailed": failed, "failureSamples": failures, "ackMs": total.latency.summary_ms(),
        "serverCpuSecs": server_cpu, "loadgenCpuShare": own,
    })
    .to_string())
}

/// Joins and leaves `room` until `end`.
async fn churn(client: &mut Client, room: &str, user: &str, end: Instant) -> Tally {
    let join = join_body(room, user);
    let leave = format!(r#"{{"roomId":"{room}"}}"#);
    let mut tally = Tally::default();
    while Instant::now() < end {
        for (event, body) in [("join-room", &join), ("leave-room", &leave)] {
            let sent = Instant::now();
            let result = async {
                let id = client.emit_with_ack(event, body).await?;
                client.ack(id, |_| {}).await
            }
            .await;
            match result {
                Ok(ack) => {
                    tally.latency.push(sent.elapsed().as_micros() as u64);
                    tally.ops += 1;
                    if !ack_ok(&ack) {
                        tally.errors += 1;
                    }
                }
                Err(e) => {
                    tally.failure = Some(e.to_string());
                    return tally;
                }
            }
        }
    }
    tally
}
