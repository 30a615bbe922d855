//! The canary pair: two clients on `/` (127.0.0.1, their own users), alone in
//! room `canary`, each relaying an `offer` to the other `rate` times a second
//! for the whole run. Each offer carries a sequence number and its send time;
//! at the end every one sent must have been delivered (or refused, counted
//! apart), and the latency of each is kept, overall and per attack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Ctx, loopback, number_after};
use crate::sio::{Client, Error, Packet, classify};
use crate::stats::Samples;

/// What one canary counted.
#[derive(Default)]
struct Counts {
    sent: u64,
    delivered: u64,
    refused: u64,
    out_of_order: u64,
    latency: Samples,
}

/// The running pair.
pub struct Canary {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<Counts, String>>>,
}

impl Canary {
    /// Connects both, joins them to the room and starts relaying.
    pub async fn start(ctx: Arc<Ctx>, rate: f64) -> Result<Self, Error> {
        let (stop, stop_rx) = watch::channel(false);
        let origin = Instant::now();
        let mut clients = Vec::new();
        for user in ["canary-a", "canary-b"] {
            let mut client = Client::connect_from(&ctx.addr, loopback(1), "/", Some(&ctx.auth(user, ""))).await?;
            client.join("canary", user).await?;
            clients.push(client);
        }
        let mut tasks = Vec::new();
        for (client, (me, other)) in clients.into_iter().zip([("canary-a", "canary-b"), ("canary-b", "canary-a")]) {
            let (ctx, stop_rx) = (ctx.clone(), stop_rx.clone());
            let prefix = format!(
                r#"42["offer",{{"roomId":"canary","targetId":"{other}","offer":{{"type":"offer","sdp":"v=0 canary from {me}","#
            );
            tasks.push(tokio::spawn(relay(ctx, client, prefix, rate, origin, stop_rx)));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops sending, waits up to 3 s for relays in flight, and sums up.
    pub async fn stop(self) -> Value {
        let _ = self.stop.send(true);
        let mut total = Counts::default();
        let mut errors = Vec::new();
        for task in self.tasks {
            match task.await {
                Ok(Ok(mut c)) => {
                    total.sent += c.sent;
                    total.delivered += c.delivered;
                    total.refused += c.refused;
                    total.out_of_order += c.out_of_order;
                    total.latency.merge(&mut c.latency);
                }
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        json!({
            "sent": total.sent, "delivered": total.delivered, "refused": total.refused,
            "missing": total.sent.saturating_sub(total.delivered + total.refused),
            "outOfOrder": total.out_of_order, "latencyMs": total.latency.summary_ms(), "errors": errors,
        })
    }
}

/// One canary: sends at `rate` until stopped and counts what its partner sent it.
async fn relay(
    ctx: Arc<Ctx>,
    mut client: Client,
    prefix: String,
    rate: f64,
    origin: Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drain = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(drain);
    let (mut stopping, mut expected) = (false, 0u64);
    loop {
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                let t = origin.elapsed().as_micros();
                let frame = format!("{prefix}\"s\":{},\"t\":{t}}}}}]", counts.sent);
                client.send(frame).await.map_err(|e| format!("canary send: {e}"))?;
                counts.sent += 1;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    drain.as_mut().reset((Instant::now() + Duration::from_secs(3)).into());
                }
            }
            () = &mut drain => break,
            frame = client.recv() => {
                let Some(text) = frame else { return Err("the canary's connection closed".into()) };
                let Packet::Event(body) = classify(text.as_str()) else { continue };
                if body.starts_with("[\"signaling-error\"") {
                    counts.refused += 1;
                } else if body.starts_with("[\"offer\"")
                    && let (Some(s), Some(t)) = (number_after(body, "\"s\":"), number_after(body, "\"t\":"))
                {
                    let micros = (origin.elapsed().as_micros() as u64).saturating_sub(t);
                    counts.delivered += 1;
                    counts.latency.push(micros);
                    ctx.monitor.canary_latency(micros);
                    if s < expected { counts.out_of_order += 1 } else { expected = s + 1 }
                }
            }
        }
    }
    client.close().await;
    Ok(counts)
}
