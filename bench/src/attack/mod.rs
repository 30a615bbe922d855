//! Scenario `attacks`: what one attacker (one token, one client address) can
//! make the server hold, measured from outside (issue 17). Four attacks run
//! one after another, each bounded in count and seconds, while a canary pair
//! relays offers to each other at a steady rate throughout:
//!
//! 1. `devices`: a device-queue flood (64 KB signals to offline receivers)
//!    with concurrent `?peek=true` reads of the queues;
//! 2. `slow`: relays of 60 KB offers to a room member that never reads;
//! 3. `lists`: `room-list-request`s with 1,000 rooms listed, from a
//!    `/dashboard` client that never reads;
//! 4. `sessions`: engine.io handshakes that never CONNECT, handshakes with
//!    huge heads, and idle TCP connections.
//!
//! For each: the server's RSS before, its peak (sampled every 10 ms) and
//! after (the attacker gone and the server's socket count back to the
//! canary's, within a bound), `/health` latency and the canary's latency
//! during it, and what the server refused. Each attacker uses its own
//! loopback address (127.0.0.2 to 127.0.0.8), the canary 127.0.0.1, so
//! per-address limits are the attacker's alone. `bench/attack` starts the
//! server, mints the tokens and writes the results.

mod canary;
mod devices;
mod lists;
mod sessions;
mod slow;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::args::Args;
use crate::procfs::rss_kib;
use crate::sio::Error;
use crate::stats::{Samples, round3};
pub use crate::sweep::number_after;

/// What every attack needs: where the server is and who the attacker is.
pub struct Ctx {
    pub addr: String,
    pub pid: Option<u32>,
    pub args: Args,
    /// JWTs by user (`attacker`, `victim`, `canary-a`, `canary-b`); `None` for an open server.
    tokens: Option<[String; 4]>,
    monitor: Arc<Monitor>,
}

impl Ctx {
    /// The token of `user` (one of the four above), if the server wants tokens.
    pub fn token(&self, user: &str) -> Option<&str> {
        let i = ["attacker", "victim", "canary-a", "canary-b"].iter().position(|u| *u == user)?;
        self.tokens.as_ref().map(|t| t[i].as_str())
    }

    /// The `Authorization` header line for `user`'s REST requests (none on an open server).
    pub fn bearer(&self, user: &str) -> Vec<String> {
        self.token(user).map(|t| vec![format!("Authorization: Bearer {t}")]).unwrap_or_default()
    }

    /// A socket.io handshake `auth` object for `user`, with `extra` fields (`"k":"v",...`) first.
    pub fn auth(&self, user: &str, extra: &str) -> String {
        let token = self.token(user).map(|t| format!("\"token\":\"{t}\"")).unwrap_or_default();
        let sep = if extra.is_empty() || token.is_empty() { "" } else { "," };
        format!("{{{extra}{sep}{token}}}")
    }
}

/// The loopback address 127.0.0.`n`: each attack's client address.
pub fn loopback(n: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

/// Samples kept while an attack runs: the server's peak RSS, `/health`
/// latency, and the canary's relay latency.
#[derive(Default)]
pub struct Monitor {
    peak_kib: AtomicU64,
    health: Mutex<Samples>,
    health_failures: AtomicU64,
    canary: Mutex<Samples>,
    stop: AtomicBool,
}

impl Monitor {
    /// Starts a new attack's samples from `rss` KiB.
    fn reset(&self, rss: u64) {
        self.peak_kib.store(rss, Ordering::Relaxed);
        *self.health.lock().unwrap() = Samples::default();
        *self.canary.lock().unwrap() = Samples::default();
        self.health_failures.store(0, Ordering::Relaxed);
    }

    /// Records a canary relay's latency in the current attack.
    pub fn canary_latency(&self, micros: u64) {
        self.canary.lock().unwrap().push(micros);
    }
}

/// Runs every attack (or those of `--only`) and returns the JSON line.
pub async fn run(args: Args) -> Result<String, Error> {
    let tokens = match args.get("tokens", String::new())? {
        t if t.is_empty() => None,
        t => {
            let parts: Vec<String> = t.split(',').map(str::to_owned).collect();
            Some(<[String; 4]>::try_from(parts).map_err(|_| "--tokens: attacker,victim,canary-a,canary-b")?)
        }
    };
    let only: Vec<String> = args.list("only", &["devices", "slow", "lists", "sessions"].map(String::from))?;
    let canary_rate: f64 = args.get("canary-rate", 10.0)?;
    let ctx = Arc::new(Ctx { addr: args.addr(), pid: args.server_pid()?, tokens, monitor: Arc::default(), args });
    let sampler = tokio::spawn(sample(ctx.clone()));
    let canary = canary::Canary::start(ctx.clone(), canary_rate).await?;
    let baseline = sockets(&ctx.addr).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut results = Vec::new();
    for name in &only {
        let c = ctx.clone();
        let result = match name.as_str() {
            "devices" => measured(&ctx, "devices", baseline, devices::run(&c)).await,
            "slow" => measured(&ctx, "slow", baseline, slow::run(&c)).await,
            "lists" => measured(&ctx, "lists", baseline, lists::run(&c)).await,
            "sessions" => {
                for (part, result) in [
                    (
                        "sessions-handshakes",
                        measured(&ctx, "sessions-handshakes", baseline, sessions::handshakes(&c)).await,
                    ),
                    (
                        "sessions-big-heads",
                        measured(&ctx, "sessions-big-heads", baseline, sessions::big_heads(&c)).await,
                    ),
                    ("sessions-idle", measured(&ctx, "sessions-idle", baseline, sessions::idle(&c)).await),
                ] {
                    results.push(result.unwrap_or_else(|e| json!({ "attack": part, "error": e.to_string() })));
                }
                continue;
            }
            other => return Err(format!("--only: unknown attack {other:?}").into()),
        };
        results.push(result.unwrap_or_else(|e| json!({ "attack": name, "error": e.to_string() })));
    }
    let canary = canary.stop().await;
    ctx.monitor.stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    Ok(json!({
        "scenario": "attacks", "label": ctx.args.label(), "secs": round3(started.elapsed().as_secs_f64()),
        "attacks": results, "canary": canary,
    })
    .to_string())
}

/// Runs one attack between RSS readings: before, the peak while it runs and
/// settles, and after (its sockets gone, at most `--settle-secs`, then 2 s).
async fn measured(
    ctx: &Ctx,
    name: &str,
    baseline: u64,
    attack: impl Future<Output = Result<Value, Error>>,
) -> Result<Value, Error> {
    let before = ctx.pid.and_then(rss_kib);
    ctx.monitor.reset(before.unwrap_or(0));
    let started = Instant::now();
    eprintln!("attacks: {name}");
    let mut figures = attack.await?;
    let attack_secs = started.elapsed().as_secs_f64();
    let settle = Duration::from_secs(ctx.args.get("settle-secs", 20)?);
    let deadline = Instant::now() + settle;
    let mut settled = false;
    while Instant::now() < deadline {
        if sockets(&ctx.addr).await.is_ok_and(|n| n <= baseline) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = ctx.pid.and_then(rss_kib);
    let m = &ctx.monitor;
    figures["attack"] = json!(name);
    figures["secs"] = json!(round3(attack_secs));
    figures["rssKiB"] = json!({ "before": before, "peak": m.peak_kib.load(Ordering::Relaxed), "after": after });
    figures["settled"] = json!(settled);
    figures["healthMs"] = m.health.lock().unwrap().summary_ms();
    figures["healthFailures"] = json!(m.health_failures.load(Ordering::Relaxed));
    figures["canaryLatencyMs"] = m.canary.lock().unwrap().summary_ms();
    Ok(figures)
}

/// Socket.io connections of the server, every namespace (`/health`'s `connected_clients`).
pub async fn sockets(addr: &str) -> Result<u64, Error> {
    crate::http::get_json(addr, "/health").await?["connected_clients"]
        .as_u64()
        .ok_or_else(|| "no connected_clients in /health".into())
}

/// Until told to stop: the server's RSS every 10 ms (the peak kept), and
/// `/health` timed every 100 ms.
async fn sample(ctx: Arc<Ctx>) {
    let m = ctx.monitor.clone();
    let rss = async {
        while !m.stop.load(Ordering::Relaxed) {
            if let Some(kib) = ctx.pid.and_then(rss_kib) {
                m.peak_kib.fetch_max(kib, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let health = async {
        while !m.stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            match tokio::time::timeout(Duration::from_secs(30), crate::http::get_json(&ctx.addr, "/health")).await {
                Ok(Ok(_)) => m.health.lock().unwrap().push(sent.elapsed().as_micros() as u64),
                _ => drop(m.health_failures.fetch_add(1, Ordering::Relaxed)),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::join!(rss, health);
}

/// Counts of outcomes by name (ack codes, statuses), as a JSON object.
#[derive(Default)]
pub struct Tally(std::collections::BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, outcome: impl Into<String>) {
        *self.0.entry(outcome.into()).or_default() += 1;
    }

    pub fn get(&self, outcome: &str) -> u64 {
        self.0.get(outcome).copied().unwrap_or(0)
    }

    pub fn json(&self) -> Value {
        json!(self.0)
    }
}

/// The outcome an ack's JSON array text reports: `ok`, or the error's `code`.
pub fn outcome(ack: &str) -> String {
    if crate::sio::ack_ok(ack) {
        return "ok".into();
    }
    let code = serde_json::from_str::<Value>(ack).ok().and_then(|v| v[0]["error"]["code"].as_str().map(str::to_owned));
    code.unwrap_or_else(|| "unreadable".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_read_as_ok_or_their_code() {
        assert_eq!(outcome(r#"[{"ok":true,"status":"queued","id":3}]"#), "ok");
        assert_eq!(outcome(r#"[{"ok":false,"error":{"code":"target-busy","message":"m"}}]"#), "target-busy");
        assert_eq!(outcome("[]"), "unreadable");
        assert_eq!(number_after(r#"{"s":41,"t":1234}"#, "\"t\":"), Some(1234));
    }
}
