//! Configuration: the only place the environment is read.
//!
//! [`Config::from_lookup`] takes a lookup function so tests build configurations
//! without touching the process environment; [`Config::from_env`] is what `main`
//! uses after loading `.env`. Every value is validated here, once, at start-up:
//! a bad value becomes a [`ConfigError`] naming the variable, and `main` exits
//! with code 2.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderValue;

use crate::domain::ice::IceConfig;
use crate::domain::net::Cidr;

/// Typed, validated server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PORT`: TCP port to listen on (default 4000; 0 picks a free port).
    pub port: u16,
    /// `HOST`: address to bind (default `0.0.0.0`).
    pub host: IpAddr,
    /// `CLIENT_URL`: origins allowed by CORS and for websocket upgrades.
    pub allowed_origins: AllowedOrigins,
    /// `MAX_ROOM_SIZE`: participants per room before `room-full` (default 64).
    pub max_room_size: usize,
    /// `MAX_PAYLOAD_BYTES`: largest websocket message or polling request body
    /// (default 64 KiB); a larger one closes the connection.
    pub max_payload_bytes: usize,
    /// `PING_INTERVAL_MS`: engine.io heartbeat interval (default 25 000).
    pub ping_interval: Duration,
    /// `PING_TIMEOUT_MS`: how long a heartbeat may go unanswered (default 20 000).
    pub ping_timeout: Duration,
    /// `SOCKET_BUFFER_PACKETS`: packets queued towards one connection before a
    /// relay to it fails with `target-busy` (default 4096).
    pub socket_buffer_packets: usize,
    /// `MAX_PENDING_EVENTS`: events one connection may have waiting to be
    /// handled before further ones are refused with `rate-limited` (default 4096).
    pub max_pending_events: usize,
    /// `EVENTS_PER_SECOND`: sustained events one connection may send (default 100).
    pub events_per_second: u32,
    /// `EVENT_BURST`: events a connection may send at once (default 500).
    pub event_burst: u32,
    /// `RATE_LIMIT_DISCONNECT_AFTER`: refusals within 10 s after which a
    /// flooding connection is disconnected (default 1000).
    pub rate_limit_disconnect_after: u32,
    /// `MAX_ROOMS_PER_CONNECTION`: rooms one connection may be in (default 16).
    pub max_rooms_per_connection: usize,
    /// `MAX_CONNECTIONS_PER_IP`: socket.io connections from one client address (default 256).
    pub max_connections_per_ip: usize,
    /// `REST_REQUESTS_PER_SECOND` / `REST_BURST`: REST requests one address may make
    /// (defaults 20 and 100); `/health` is exempt.
    pub rest_rate: (u32, u32),
    /// `TRUSTED_PROXIES`: proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `JWT_SECRET` (+ `JWT_AUDIENCE`, `JWT_ISSUER`): unset, the server is open.
    pub jwt: Option<JwtConfig>,
    /// `REDIS_URL`: unset runs one instance in memory; set, rooms live in
    /// Redis and instances share them through the socket.io Redis adapter.
    pub redis_url: Option<String>,
    /// `REDIS_PREFIX`: prefix of every Redis key and channel (default `switchboard`).
    pub redis_prefix: String,
    /// `REDIS_TIMEOUT_MS`: longest wait for one Redis command before the event
    /// fails with `unavailable` (default 2000).
    pub redis_timeout: Duration,
    /// `INSTANCE_TTL_MS`: an instance that has not refreshed its heartbeat for
    /// this long is dead; survivors remove its participants (default 10 000).
    pub instance_ttl: Duration,
    /// `WEB_DIR`: the demo page and static files served at `/` (default `web`);
    /// the socket.io client bundle is served from its `node_modules`.
    pub web_dir: PathBuf,
    /// `STUN_URLS`, `TURN_URLS`, `TURN_SECRET`, `TURN_TTL_SECONDS`: the ICE
    /// servers handed to clients.
    pub ice: IceConfig,
    /// Device presence and store-and-forward signaling (seed 004).
    pub presence: PresenceConfig,
    /// Organization mesh coordination (seed 000).
    pub mesh: MeshConfig,
    /// Worker routing (seed 002).
    pub workers: WorkerConfig,
    /// `ROOM_LIST_INTERVAL_MS`: how often `/dashboard` subscribers get the
    /// room list while rooms exist, besides on every change (default 5 000).
    pub room_list_interval: Duration,
    /// `JOIN_REQUEST_TIMEOUT_MS`: how long a join request waits for the host
    /// before it counts as rejected (default 60 000).
    pub join_request_timeout: Duration,
    /// `RUST_LOG`: tracing filter directives (default `info`).
    pub log_filter: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
}

/// Presence and queued signaling, with seed 004's variable names.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceConfig {
    /// `DEVICE_TTL_MINUTES`: a device is online for this long after its last
    /// announcement (default 10; decimals allowed, 0.01 to 60).
    pub device_ttl: Duration,
    /// `MIN_COORDINATORS_PER_NETWORK`: online coordinators each network should
    /// have (default 2; 0 turns promotion off).
    pub min_coordinators: usize,
    /// `PRESENCE_CLEANUP_INTERVAL`: milliseconds between presence sweeps (default 300 000).
    pub cleanup_interval: Duration,
    /// `COORDINATOR_CHECK_INTERVAL`: milliseconds between promotion checks (default 600 000).
    pub coordinator_interval: Duration,
    /// `RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`: announcements one
    /// device may make (default 12 a minute); past it `429`.
    pub announce_limit: (u32, Duration),
    /// `SIGNALING_TTL_HOURS`: how long a signal waits for its device before it
    /// expires and its sender is told (default 1; decimals allowed, 0.0001 to 168).
    pub signal_ttl: Duration,
    /// `SIGNAL_EXPIRY_INTERVAL`: milliseconds between checks for expired signals (default 60 000).
    pub expiry_interval: Duration,
    /// `SIGNAL_ACK_TIMEOUT_MS`: how long a device has to ack a pushed signal
    /// before it is pushed again on the same connection (default 10 000).
    pub ack_timeout: Duration,
    /// `JOB_LEASE_MS`: in a cluster, the jobs run on the instance holding this
    /// lease; it passes to another within this long of its holder dying (default 30 000).
    pub job_lease: Duration,
}

/// Worker routing, with seed 002's variable names.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// `WORKER_KEY`: the key workers present; unset, no worker is admitted.
    pub key: Option<Secret>,
    /// `WORKER_HEALTH_TIMEOUT`: a worker silent this long (ms) leaves the ring (default 1 000).
    pub health_timeout: Duration,
    /// `WORKER_RETENTION_MS`: a worker silent this long (ms) is forgotten by
    /// the leader, no longer listed by `GET /workers`, as the records left by
    /// a front server that died (default 600 000, at least
    /// `WORKER_HEALTH_TIMEOUT`).
    pub retention: Duration,
    /// `CONSISTENT_HASH_REPLICAS`: virtual nodes per worker (default 150, 1 to 1 000).
    pub replicas: usize,
}

/// Mesh coordination, with seed 000's variable names (milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct MeshConfig {
    /// `HEARTBEAT_INTERVAL`: between `server-heartbeat`s and `admin-heartbeat`s (default 10 000).
    pub heartbeat_interval: Duration,
    /// `CLIENT_TIMEOUT`: a client silent this long is dropped (default 30 000).
    pub client_timeout: Duration,
    /// `ELECTION_DELAY`: an election runs this long after the admin seat
    /// empties; also the admin lease (default 2 000).
    pub election_delay: Duration,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `JWT_SECRET`, `JWT_AUDIENCE`, `JWT_ISSUER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    /// The HS256 key.
    pub secret: Secret,
    /// The required `aud`, if any.
    pub audience: Option<String>,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
}

/// Which origins may call the REST API, poll, or open a websocket.
#[derive(Clone, Debug, PartialEq)]
pub enum AllowedOrigins {
    /// `CLIENT_URL=*`: any origin (for development; logged as a warning).
    Any,
    /// Exact origins such as `https://app.example.com`.
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// Whether a browser `Origin` header value is allowed.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration variable with a bad value.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid {var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub var: &'static str,
    /// The value that was rejected.
    pub value: String,
    /// What a valid value looks like.
    pub reason: String,
}

impl Config {
    /// Reads the process environment (call `dotenvy::dotenv()` first to load `.env`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds a configuration from a lookup function; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let config = Config {
            port: env.parse("PORT", 4000, "an integer from 0 to 65535")?,
            host: env.parse("HOST", IpAddr::from([0, 0, 0, 0]), "an IP address")?,
            allowed_origins: env.origins("CLIENT_URL")?,
            max_room_size: env.ranged("MAX_ROOM_SIZE", 64, 1..=100_000)?,
            max_payload_bytes: env.ranged("MAX_PAYLOAD_BYTES", 64 * 1024, 1024..=16 << 20)?,
            ping_interval: env.millis("PING_INTERVAL_MS", 25_000)?,
            ping_timeout: env.millis("PING_TIMEOUT_MS", 20_000)?,
            socket_buffer_packets: env.ranged("SOCKET_BUFFER_PACKETS", 4096, 16..=1_000_000)?,
            max_pending_events: env.ranged("MAX_PENDING_EVENTS", 4096, 16..=1_000_000)?,
            events_per_second: env.ranged("EVENTS_PER_SECOND", 100, 1..=1_000_000)? as u32,
            event_burst: env.ranged("EVENT_BURST", 500, 1..=1_000_000)? as u32,
            rate_limit_disconnect_after: env.ranged("RATE_LIMIT_DISCONNECT_AFTER", 1000, 1..=1_000_000)? as u32,
            max_rooms_per_connection: env.ranged("MAX_ROOMS_PER_CONNECTION", 16, 1..=10_000)?,
            max_connections_per_ip: env.ranged("MAX_CONNECTIONS_PER_IP", 256, 1..=1_000_000)?,
            rest_rate: (
                env.ranged("REST_REQUESTS_PER_SECOND", 20, 1..=1_000_000)? as u32,
                env.ranged("REST_BURST", 100, 1..=1_000_000)? as u32,
            ),
            trusted_proxies: env.cidrs("TRUSTED_PROXIES")?,
            jwt: env.get("JWT_SECRET").map(|secret| JwtConfig {
                secret: Secret(secret),
                audience: env.get("JWT_AUDIENCE"),
                issuer: env.get("JWT_ISSUER"),
            }),
            redis_url: env.redis_url("REDIS_URL")?,
            redis_prefix: env.prefix("REDIS_PREFIX")?,
            redis_timeout: env.millis("REDIS_TIMEOUT_MS", 2_000)?,
            instance_ttl: env.millis("INSTANCE_TTL_MS", 10_000)?,
            web_dir: PathBuf::from(env.get("WEB_DIR").unwrap_or_else(|| "web".into())),
            ice: env.ice()?,
            presence: env.presence()?,
            workers: env.workers()?,
            mesh: MeshConfig {
                heartbeat_interval: env.millis("HEARTBEAT_INTERVAL", 10_000)?,
                client_timeout: env.millis("CLIENT_TIMEOUT", 30_000)?,
                election_delay: env.millis("ELECTION_DELAY", 2_000)?,
            },
            room_list_interval: env.millis("ROOM_LIST_INTERVAL_MS", 5_000)?,
            join_request_timeout: env.millis("JOIN_REQUEST_TIMEOUT_MS", 60_000)?,
            log_filter: env.log_filter("RUST_LOG")?,
            log_format: env.log_format("LOG_FORMAT")?,
        };
        Ok(config)
    }
}

impl Default for Config {
    /// The documented defaults (no variable set).
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("defaults are valid")
    }
}

/// The lookup plus the parsing helpers, so each field above is one line.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T, want: &str) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid(var, &v, format!("expected {want}"))),
        }
    }

    fn ranged(
        &self,
        var: &'static str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        let want = format!("an integer from {} to {}", range.start(), range.end());
        let value = self.parse(var, default, &want)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(var, &value.to_string(), format!("expected {want}")))
        }
    }

    /// A decimal number of `unit`s within `range` (in units), as a duration.
    fn decimal(
        &self,
        var: &'static str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
        unit: Duration,
    ) -> Result<Duration, ConfigError> {
        let want = format!("a number from {} to {}", range.start(), range.end());
        let value: f64 = self.parse(var, default, &want)?;
        if !range.contains(&value) {
            return Err(invalid(var, &value.to_string(), format!("expected {want}")));
        }
        Ok(unit.mul_f64(value))
    }

    fn workers(&self) -> Result<WorkerConfig, ConfigError> {
        let health_timeout = self.millis("WORKER_HEALTH_TIMEOUT", 1_000)?;
        let retention = Duration::from_millis(self.ranged("WORKER_RETENTION_MS", 600_000, 100..=86_400_000)? as u64);
        if retention < health_timeout {
            let value = retention.as_millis().to_string();
            return Err(invalid("WORKER_RETENTION_MS", &value, "expected at least WORKER_HEALTH_TIMEOUT".into()));
        }
        Ok(WorkerConfig {
            key: self.get("WORKER_KEY").map(Secret),
            health_timeout,
            retention,
            replicas: self.ranged("CONSISTENT_HASH_REPLICAS", 150, 1..=1000)?,
        })
    }

    fn presence(&self) -> Result<PresenceConfig, ConfigError> {
        let interval = |var, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(self.ranged(var, default, 100..=86_400_000)? as u64))
        };
        Ok(PresenceConfig {
            // At most the hour a record is kept (presence::RETENTION): a device is never deleted while online.
            device_ttl: self.decimal("DEVICE_TTL_MINUTES", 10.0, 0.01..=60.0, Duration::from_secs(60))?,
            min_coordinators: self.ranged("MIN_COORDINATORS_PER_NETWORK", 2, 0..=1000)?,
            cleanup_interval: interval("PRESENCE_CLEANUP_INTERVAL", 300_000)?,
            coordinator_interval: interval("COORDINATOR_CHECK_INTERVAL", 600_000)?,
            announce_limit: (
                self.ranged("RATE_LIMIT_MAX_REQUESTS", 12, 1..=1_000_000)? as u32,
                interval("RATE_LIMIT_WINDOW_MS", 60_000)?,
            ),
            signal_ttl: self.decimal("SIGNALING_TTL_HOURS", 1.0, 0.0001..=168.0, Duration::from_secs(3600))?,
            expiry_interval: interval("SIGNAL_EXPIRY_INTERVAL", 60_000)?,
            ack_timeout: self.millis("SIGNAL_ACK_TIMEOUT_MS", 10_000)?,
            job_lease: Duration::from_millis(self.ranged("JOB_LEASE_MS", 30_000, 300..=3_600_000)? as u64),
        })
    }

    fn millis(&self, var: &'static str, default: usize) -> Result<Duration, ConfigError> {
        let ms = self.ranged(var, default, 100..=600_000)?;
        Ok(Duration::from_millis(ms as u64))
    }

    fn origins(&self, var: &'static str) -> Result<AllowedOrigins, ConfigError> {
        let raw = self.get(var).unwrap_or_else(|| "http://localhost:3000".into());
        if raw == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let list = raw
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| parse_origin(o).map_err(|why| invalid(var, &raw, why)))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(invalid(var, &raw, "expected at least one origin".into()));
        }
        Ok(AllowedOrigins::List(list))
    }

    fn cidrs(&self, var: &'static str) -> Result<Vec<Cidr>, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(Vec::new()) };
        raw.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|why| invalid(var, &raw, why)))
            .collect()
    }

    fn redis_url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.get(var) else {
            return Ok(None);
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(var, &url, "expected redis://host:port[/db] or rediss://...".into()));
        }
        Ok(Some(url))
    }

    fn prefix(&self, var: &'static str) -> Result<String, ConfigError> {
        let prefix = self.get(var).unwrap_or_else(|| "switchboard".into());
        if prefix.len() > 64 || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(var, &prefix, "expected up to 64 of A-Z a-z 0-9 - _ .".into()));
        }
        Ok(prefix)
    }

    fn urls(&self, var: &'static str, schemes: &[&str]) -> Result<Vec<String>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| match schemes.iter().any(|s| u.starts_with(&format!("{s}:"))) {
                true if !u.chars().any(char::is_whitespace) => Ok(u.to_owned()),
                _ => Err(invalid(var, &raw, format!("each URL must start with {}", schemes.join(": or ") + ":"))),
            })
            .collect()
    }

    fn ice(&self) -> Result<IceConfig, ConfigError> {
        let turn = self.urls("TURN_URLS", &["turn", "turns"])?;
        let secret = self.get("TURN_SECRET");
        if !turn.is_empty() && secret.is_none() {
            return Err(invalid("TURN_SECRET", "", "TURN_URLS needs TURN_SECRET (coturn use-auth-secret)".into()));
        }
        let ttl = self.ranged("TURN_TTL_SECONDS", 3600, 60..=7 * 86_400)?;
        Ok(IceConfig {
            stun: self.urls("STUN_URLS", &["stun", "stuns"])?,
            turn,
            turn_secret: secret,
            turn_ttl: Duration::from_secs(ttl as u64),
        })
    }

    fn log_filter(&self, var: &'static str) -> Result<String, ConfigError> {
        let filter = self.get(var).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| invalid(var, &filter, format!("not a tracing filter: {e}")))?;
        Ok(filter)
    }

    fn log_format(&self, var: &'static str) -> Result<LogFormat, ConfigError> {
        match self.get(var).as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(invalid(var, other, "expected text or json".into())),
        }
    }
}

/// An origin is `scheme://host[:port]` with no path, as browsers send it.
fn parse_origin(origin: &str) -> Result<HeaderValue, String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("origin {origin:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(format!("origin {origin:?} must be scheme://host[:port] with no path"));
    }
    HeaderValue::from_str(origin).map_err(|_| format!("origin {origin:?} is not a valid header value"))
}

fn invalid(var: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError { var, value: value.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::default();
        assert_eq!(c.port, 4000);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.allowed_origins, AllowedOrigins::List(vec![HeaderValue::from_static("http://localhost:3000")]));
        assert_eq!(c.max_room_size, 64);
        assert_eq!(c.max_payload_bytes, 65536);
        assert_eq!(c.ping_interval, Duration::from_secs(25));
        assert_eq!(c.ping_timeout, Duration::from_secs(20));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.log_filter, "info");
        assert_eq!((c.redis_url, c.redis_prefix.as_str()), (None, "switchboard"));
        assert_eq!((c.redis_timeout, c.instance_ttl), (Duration::from_secs(2), Duration::from_secs(10)));
        assert_eq!((c.socket_buffer_packets, c.max_pending_events), (4096, 4096));
        assert_eq!((c.events_per_second, c.event_burst, c.rate_limit_disconnect_after), (100, 500, 1000));
        assert_eq!((c.max_rooms_per_connection, c.max_connections_per_ip), (16, 256));
        assert_eq!(c.rest_rate, (20, 100), "REST_REQUESTS_PER_SECOND, REST_BURST");
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.jwt, None);
        assert_eq!(c.web_dir, PathBuf::from("web"));
        let ice = &c.ice;
        assert!(ice.stun.is_empty() && ice.turn.is_empty() && ice.turn_secret.is_none());
        assert_eq!(ice.turn_ttl, Duration::from_secs(3600));
        let p = &c.presence;
        assert_eq!(p.device_ttl, Duration::from_secs(600));
        assert_eq!((p.min_coordinators, p.announce_limit), (2, (12, Duration::from_secs(60))));
        assert_eq!((p.cleanup_interval, p.coordinator_interval), (Duration::from_secs(300), Duration::from_secs(600)));
        assert_eq!((p.signal_ttl, p.expiry_interval), (Duration::from_secs(3600), Duration::from_secs(60)));
        assert_eq!((p.job_lease, p.ack_timeout), (Duration::from_secs(30), Duration::from_secs(10)));
        let w = &c.workers;
        assert_eq!(
            (w.health_timeout, w.retention, w.replicas),
            (Duration::from_secs(1), Duration::from_secs(600), 150)
        );
    }

    #[test]
    fn worker_retention_is_at_least_the_health_timeout() {
        let c = with(&[("WORKER_RETENTION_MS", "3600000")]).unwrap();
        assert_eq!(c.workers.retention, Duration::from_secs(3600));
        let err = with(&[("WORKER_HEALTH_TIMEOUT", "2000"), ("WORKER_RETENTION_MS", "1000")]).unwrap_err();
        assert_eq!(err.var, "WORKER_RETENTION_MS");
        assert!(err.to_string().contains("at least WORKER_HEALTH_TIMEOUT"), "{err}");
    }

    #[test]
    fn the_device_ttl_takes_decimals_so_tests_and_small_deployments_can_go_short() {
        let c = with(&[("DEVICE_TTL_MINUTES", "0.05")]).unwrap();
        assert_eq!(c.presence.device_ttl, Duration::from_secs(3));
        let c = with(&[("SIGNALING_TTL_HOURS", "0.001")]).unwrap();
        assert_eq!(c.presence.signal_ttl, Duration::from_millis(3600));
        for (var, bad) in [
            ("DEVICE_TTL_MINUTES", "0"),
            ("DEVICE_TTL_MINUTES", "soon"),
            ("DEVICE_TTL_MINUTES", "61"),
            ("RATE_LIMIT_MAX_REQUESTS", "0"),
            ("SIGNALING_TTL_HOURS", "200"),
            ("JOB_LEASE_MS", "10"),
        ] {
            assert_eq!(with(&[(var, bad)]).unwrap_err().var, var);
        }
        assert_eq!(with(&[("MIN_COORDINATORS_PER_NETWORK", "0")]).unwrap().presence.min_coordinators, 0);
    }

    #[test]
    fn jwt_secret_audience_and_issuer_are_read_together() {
        let c = with(&[("JWT_SECRET", "s"), ("JWT_AUDIENCE", "aud"), ("JWT_ISSUER", "https://idp.example")]).unwrap();
        let expected = JwtConfig {
            secret: Secret("s".into()),
            audience: Some("aud".into()),
            issuer: Some("https://idp.example".into()),
        };
        assert_eq!(c.jwt, Some(expected));
        let bare = with(&[("JWT_SECRET", "s")]).unwrap().jwt.unwrap();
        assert_eq!((bare.audience, bare.issuer), (None, None));
        // Without a secret, audience and issuer alone do not turn authentication on.
        assert_eq!(with(&[("JWT_ISSUER", "https://idp.example")]).unwrap().jwt, None);
    }

    #[test]
    fn a_bad_port_names_the_variable() {
        let err = with(&[("PORT", "forty")]).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert!(err.to_string().contains("PORT=\"forty\""), "{err}");
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        assert_eq!(with(&[("MAX_ROOM_SIZE", "0")]).unwrap_err().var, "MAX_ROOM_SIZE");
        assert_eq!(with(&[("MAX_PAYLOAD_BYTES", "10")]).unwrap_err().var, "MAX_PAYLOAD_BYTES");
        assert_eq!(with(&[("PING_INTERVAL_MS", "-5")]).unwrap_err().var, "PING_INTERVAL_MS");
        assert_eq!(with(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
        assert_eq!(with(&[("RUST_LOG", "info,[[[")]).unwrap_err().var, "RUST_LOG");
        assert_eq!(with(&[("HOST", "example")]).unwrap_err().var, "HOST");
        assert_eq!(with(&[("REDIS_URL", "localhost:6379")]).unwrap_err().var, "REDIS_URL");
        assert_eq!(with(&[("REDIS_PREFIX", "a b")]).unwrap_err().var, "REDIS_PREFIX");
        assert_eq!(with(&[("INSTANCE_TTL_MS", "5")]).unwrap_err().var, "INSTANCE_TTL_MS");
    }

    #[test]
    fn client_url_takes_a_comma_separated_list() {
        let c = with(&[("CLIENT_URL", "https://a.example, http://b.example:8080")]).unwrap();
        let AllowedOrigins::List(list) = c.allowed_origins else { panic!("expected a list") };
        assert_eq!(list, vec!["https://a.example", "http://b.example:8080"]);
    }

    #[test]
    fn client_url_with_a_path_or_no_scheme_is_rejected() {
        assert_eq!(with(&[("CLIENT_URL", "https://a.example/app")]).unwrap_err().var, "CLIENT_URL");
        assert_eq!(with(&[("CLIENT_URL", "a.example")]).unwrap_err().var, "CLIENT_URL");
    }

    #[test]
    fn a_star_allows_any_origin_and_empty_values_mean_default() {
        let c = with(&[("CLIENT_URL", "*"), ("PORT", "  ")]).unwrap();
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.port, 4000);
        assert!(c.allowed_origins.allows(&HeaderValue::from_static("http://evil.example")));
    }
}
