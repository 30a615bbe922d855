//! Configuration: the only place the environment is read.
//!
//! [`Config::from_lookup`] takes a lookup function so tests build configurations
//! without touching the process environment; [`Config::from_env`] is what `main`
//! uses after loading `.env`. Every value is validated here, once, at start-up:
//! a bad value becomes a [`ConfigError`] naming the variable, and `main` exits
//! with code 2.
//!
//! Must not import anything of the crate but `domain` (the ICE and address types it builds).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
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
    /// `SOCKET_BUFFER_BYTES`: bytes queued towards one connection before a
    /// relay to it fails with `target-busy` (default 1 MiB).
    pub socket_buffer_bytes: usize,
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
    /// `RESUME_GRACE_MS`, `RESUME_BUFFER_EVENTS`: seat grace.
    pub grace: GraceConfig,
    /// `MAX_CONNECTIONS_PER_IP`: engine.io sessions from one client address,
    /// counted from their handshake (default 256).
    pub max_connections_per_ip: usize,
    /// `MAX_CONNECTIONS`, `HEADER_READ_TIMEOUT_MS`, `MAX_HEADER_BYTES`, `CONNECT_TIMEOUT_MS`.
    pub connections: ConnectionConfig,
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
    /// `PROTOCOLS`: the protocols served (default all).
    pub protocols: Protocols,
    /// PeerJS (`PEERJS_*`).
    pub peerjs: PeerJsConfig,
    /// The y-webrtc signaling endpoint.
    pub ywebrtc: YWebrtcConfig,
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
            socket_buffer_bytes: env.ranged("SOCKET_BUFFER_BYTES", 1 << 20, 16 << 10..=1 << 30)?,
            max_pending_events: env.ranged("MAX_PENDING_EVENTS", 4096, 16..=1_000_000)?,
            events_per_second: env.ranged("EVENTS_PER_SECOND", 100, 1..=1_000_000)? as u32,
            event_burst: env.ranged("EVENT_BURST", 500, 1..=1_000_000)? as u32,
            rate_limit_disconnect_after: env.ranged("RATE_LIMIT_DISCONNECT_AFTER", 1000, 1..=1_000_000)? as u32,
            max_rooms_per_connection: env.ranged("MAX_ROOMS_PER_CONNECTION", 16, 1..=10_000)?,
            max_connections_per_ip: env.ranged("MAX_CONNECTIONS_PER_IP", 256, 1..=1_000_000)?,
            grace: GraceConfig {
                resume_grace: Duration::from_millis(env.ranged("RESUME_GRACE_MS", 10_000, 0..=3_600_000)? as u64),
                resume_buffer_events: env.ranged("RESUME_BUFFER_EVENTS", 256, 1..=100_000)?,
            },
            connections: env.connections()?,
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
                open_with_jwt: env.parse("MESH_OPEN_WITH_JWT", false, "true or false")?,
            },
            room_list_interval: env.millis("ROOM_LIST_INTERVAL_MS", 5_000)?,
            join_request_timeout: env.millis("JOIN_REQUEST_TIMEOUT_MS", 60_000)?,
            log_filter: env.log_filter("RUST_LOG")?,
            log_format: env.log_format("LOG_FORMAT")?,
            protocols: env.protocols("PROTOCOLS")?,
            peerjs: env.peerjs()?,
            ywebrtc: env.ywebrtc()?,
        };
        protocols::check_mounts(&config.peerjs, &config.ywebrtc)?;
        Ok(config)
    }
}

impl Default for Config {
    /// The documented defaults (no variable set).
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("defaults are valid")
    }
}

pub mod connections;
mod env;
mod features;
pub mod grace;
mod protocols;
#[cfg(test)]
mod tests;
mod warnings;
pub mod ywebrtc;

pub use connections::ConnectionConfig;
pub use features::{MeshConfig, PresenceConfig, WorkerConfig};
pub use grace::GraceConfig;
pub use protocols::{PROTOCOL_NAMES, PeerJsConfig, Protocols};
pub use warnings::{MIN_JWT_SECRET_BYTES, MIN_WORKER_KEY_BYTES};
pub use ywebrtc::YWebrtcConfig;

use env::Env;
