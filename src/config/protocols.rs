//! Which protocols this instance serves (`PROTOCOLS`), and PeerJS's
//! settings, under the names peerjs-server's options have (`PEERJS_` and
//! the option's name). Read by [`super::Config::from_lookup`].

use std::time::Duration;

use super::ConfigError;
use super::env::{Env, invalid};

/// Every protocol's name, as `PROTOCOLS`, `/health` and `/metrics` write it.
pub const PROTOCOL_NAMES: [&str; 6] = ["socket.io", "seed-000", "seed-001", "seed-004", "peerjs", "y-webrtc"];

/// `PROTOCOLS`: the protocols served (default all of [`PROTOCOL_NAMES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocols(Vec<&'static str>);

impl Protocols {
    /// Whether `name` (one of [`PROTOCOL_NAMES`]) is served.
    pub fn serves(&self, name: &str) -> bool {
        self.0.contains(&name)
    }

    /// The names served, in [`PROTOCOL_NAMES`]'s order.
    pub fn names(&self) -> &[&'static str] {
        &self.0
    }
}

/// PeerJS (peerjs-server's options, as `PEERJS_<OPTION>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerJsConfig {
    /// `PEERJS_PATH`: where the REST API and `{path}/peerjs` are (default `/peerjs`).
    pub path: String,
    /// `PEERJS_KEY`: the key clients connect with (default `peerjs`).
    pub key: String,
    /// `PEERJS_EXPIRE_TIMEOUT_MS`: how long a message waits for its
    /// destination before its sender gets `EXPIRE` (default 5 000).
    pub expire_timeout: Duration,
    /// `PEERJS_ALIVE_TIMEOUT_MS`: a client that sends no `HEARTBEAT` for this
    /// long is closed (default 60 000).
    pub alive_timeout: Duration,
    /// `PEERJS_CONCURRENT_LIMIT`: ids registered at once, cluster-wide (default 5 000).
    pub concurrent_limit: usize,
    /// `PEERJS_ALLOW_DISCOVERY`: whether `GET {path}/{key}/peers` lists the ids (default `false`).
    pub allow_discovery: bool,
    /// `PEERJS_QUEUE_MAX`: messages that may wait for one id (default 256);
    /// past it the sender gets `EXPIRE` at once.
    pub queue_max: usize,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// `PROTOCOLS`: a comma list of [`PROTOCOL_NAMES`], or `all`.
    pub(super) fn protocols(&self, var: &'static str) -> Result<Protocols, ConfigError> {
        let Some(raw) = self.get(var).filter(|raw| raw != "all") else {
            return Ok(Protocols(PROTOCOL_NAMES.to_vec()));
        };
        let mut named = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(known) = PROTOCOL_NAMES.iter().find(|n| **n == name) else {
                return Err(invalid(
                    var,
                    &raw,
                    format!("expected `all` or a comma list of {}", PROTOCOL_NAMES.join(", ")),
                ));
            };
            named.push(*known);
        }
        if named.is_empty() {
            return Err(invalid(var, &raw, "expected at least one protocol".into()));
        }
        Ok(Protocols(PROTOCOL_NAMES.iter().copied().filter(|n| named.contains(n)).collect()))
    }

    /// PeerJS's settings.
    pub(super) fn peerjs(&self) -> Result<PeerJsConfig, ConfigError> {
        Ok(PeerJsConfig {
            path: self.mount_path("PEERJS_PATH", "/peerjs")?,
            key: self.peerjs_key("PEERJS_KEY")?,
            expire_timeout: self.millis("PEERJS_EXPIRE_TIMEOUT_MS", 5_000)?,
            alive_timeout: self.millis("PEERJS_ALIVE_TIMEOUT_MS", 60_000)?,
            concurrent_limit: self.ranged("PEERJS_CONCURRENT_LIMIT", 5_000, 1..=10_000_000)?,
            allow_discovery: self.parse("PEERJS_ALLOW_DISCOVERY", false, "true or false")?,
            queue_max: self.ranged("PEERJS_QUEUE_MAX", 256, 1..=100_000)?,
        })
    }

    /// A path to mount a protocol at: `/` and up to 64 of `A-Z a-z 0-9 - _ . /`,
    /// not `/` alone, no trailing `/`, and clear of switchboard's own routes.
    pub(super) fn mount_path(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let path = self.get(var).unwrap_or_else(|| default.into());
        let charset = path.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        let shape = path.starts_with('/') && path.len() > 1 && !path.ends_with('/') && !path.contains("//");
        if !(charset && shape && path.len() <= 64) {
            return Err(invalid(
                var,
                &path,
                "expected a path such as /peerjs: `/` then up to 63 of A-Z a-z 0-9 - _ . /, no trailing `/`".into(),
            ));
        }
        const TAKEN: [&str; 9] = [
            "/socket.io",
            "/health",
            "/metrics",
            "/signaling",
            "/network",
            "/dashboard",
            "/workers",
            "/api",
            "/bootstrap",
        ];
        if TAKEN.iter().any(|t| path == *t || path.starts_with(&format!("{t}/"))) {
            return Err(invalid(
                var,
                &path,
                format!("expected a path clear of switchboard's own routes ({})", TAKEN.join(", ")),
            ));
        }
        Ok(path)
    }

    fn peerjs_key(&self, var: &'static str) -> Result<String, ConfigError> {
        let key = self.get(var).unwrap_or_else(|| "peerjs".into());
        if key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(var, &key, "expected up to 64 of A-Z a-z 0-9 - _ .".into()));
        }
        Ok(key)
    }
}
