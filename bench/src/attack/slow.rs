//! Attack 2, the non-reading target (issue 17, problem 2): a victim joins
//! room `slow` on `/` over engine.io polling and never polls again (no
//! `GET`: nothing queued for it ever leaves the server), posting a pong every
//! 500 ms unprompted as a client trying to stay connected would. The attacker
//! (another address, in the room over websocket) relays `--offers` offers of
//! `--offer-bytes` to it, at most 32 unacked and 500 a second, until the
//! victim is gone; then waits (at most 30 s) for it to be disconnected. The
//! victim's polling session ending (its `POST` refused) and the attacker's
//! `user-left` both date the disconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{Ctx, Tally, loopback, outcome};
use crate::http::request;
use crate::sio::{Client, Error, Packet, classify};
use crate::stats::round3;

const IN_FLIGHT: u64 = 32;

/// Runs the attack; its figures.
pub async fn run(ctx: &Arc<Ctx>) -> Result<Value, Error> {
    let offers: u64 = ctx.args.get("offers", 4096)?;
    let size: usize = ctx.args.get("offer-bytes", 60_000)?;
    let mut attacker = Client::connect_from(&ctx.addr, loopback(3), "/", Some(&ctx.auth("attacker", ""))).await?;
    attacker.join("slow", "attacker").await?;
    let victim = Victim::join(ctx).await?;
    // The attacker sees the victim arrive before it starts.
    loop {
        let text = attacker.next_text().await?;
        if text.contains("\"user-joined\"") && text.contains("\"victim\"") {
            break;
        }
    }
    let started = Instant::now();
    let (gone_tx, mut gone_rx) = oneshot::channel();
    let pongs = tokio::spawn(victim.pong_until_refused(ctx.clone(), started, gone_tx));

    let sdp = "v".repeat(size.saturating_sub(60));
    let (mut sent, mut answered, mut tally) = (0u64, 0u64, Tally::default());
    let (mut first_busy, mut user_left) = (None, None);
    let pace = Duration::from_millis(2);
    // Until the attacker sees the victim leave, or 2 s after its session ended (at most 60 s).
    let (deadline, mut victim_gone) = (Instant::now() + Duration::from_secs(60), None);
    while user_left.is_none()
        && victim_gone.is_none_or(|at: Duration| started.elapsed() < at + Duration::from_secs(2))
        && Instant::now() < deadline
    {
        if victim_gone.is_none()
            && let Ok(at) = gone_rx.try_recv()
        {
            victim_gone = Some(at);
        }
        if sent < offers && sent - answered < IN_FLIGHT {
            let body = format!(r#"{{"roomId":"slow","targetId":"victim","offer":{{"type":"offer","sdp":"{sdp}"}}}}"#);
            attacker.emit_with_ack("offer", &body).await?;
            sent += 1;
            tokio::time::sleep(pace).await;
        }
        // Read what has come (acks, the victim leaving) without stopping the sending.
        let wait =
            if sent < offers && sent - answered < IN_FLIGHT { Duration::ZERO } else { Duration::from_millis(500) };
        while let Ok(text) = tokio::time::timeout(wait, attacker.next_text()).await {
            let text = text?;
            match classify(&text) {
                Packet::Ack(_, ack) => {
                    answered += 1;
                    let code = outcome(ack);
                    if code == "target-busy" && first_busy.is_none() {
                        first_busy = Some(started.elapsed());
                    }
                    tally.add(code);
                }
                Packet::Event(body) if body.starts_with("[\"user-left\"") && body.contains("\"victim\"") => {
                    user_left = Some(started.elapsed());
                    break;
                }
                _ => {}
            }
            if wait.is_zero() {
                break;
            }
        }
    }
    // The victim's own view: its session ends (at most 30 s more).
    if victim_gone.is_none() {
        victim_gone = tokio::time::timeout(Duration::from_secs(30), &mut gone_rx).await.ok().and_then(Result::ok);
    }
    pongs.abort();
    attacker.close().await;
    let secs = |d: Option<Duration>| d.map(|d| round3(d.as_secs_f64()));
    let accepted = tally.get("ok");
    Ok(json!({
        "offers": sent, "offerBytes": size, "accepted": accepted, "bytesAccepted": accepted * size as u64,
        "answers": tally.json(), "firstBusyAfterSecs": secs(first_busy),
        "victimLeftRoomAfterSecs": secs(user_left), "victimSessionEndedAfterSecs": secs(victim_gone),
    }))
}

/// The victim's engine.io polling session.
struct Victim {
    sid: String,
}

impl Victim {
    /// Handshakes, connects to `/` and joins room `slow`; reads only the open packet.
    async fn join(ctx: &Ctx) -> Result<Self, Error> {
        let token = ctx.token("victim").map(|t| format!("&token={t}")).unwrap_or_default();
        let open =
            request(&ctx.addr, loopback(8), "GET", &format!("/socket.io/?EIO=4&transport=polling{token}"), &[], "")
                .await?;
        let sid = open
            .body
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| format!("no sid in the open packet: {} {:.200}", open.status, open.body))?
            .to_owned();
        let victim = Self { sid };
        victim.post(ctx, &format!("40{}", ctx.auth("victim", ""))).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        victim.post(ctx, r#"421["join-room",{"roomId":"slow","userId":"victim"}]"#).await?;
        Ok(victim)
    }

    /// Posts one engine.io payload; `Err` unless the server took it.
    async fn post(&self, ctx: &Ctx, body: &str) -> Result<(), Error> {
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid);
        let headers = ["Content-Type: text/plain;charset=UTF-8".to_owned()];
        let r = request(&ctx.addr, loopback(8), "POST", &path, &headers, body).await?;
        if r.status != 200 {
            return Err(format!("POST: {} {:.100}", r.status, r.body).into());
        }
        Ok(())
    }

    /// Posts a pong every 500 ms until the server refuses one; says when.
    async fn pong_until_refused(self, ctx: Arc<Ctx>, started: Instant, gone: oneshot::Sender<Duration>) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if self.post(&ctx, "3").await.is_err() {
                let _ = gone.send(started.elapsed());
                return;
            }
        }
    }
}
