//! Reading and validating each kind of value, so each field of
//! [`Config::from_lookup`](super::Config::from_lookup) is one line; a bad
//! value is a [`ConfigError`] naming its variable.

use std::str::FromStr;
use std::time::Duration;

use http::HeaderValue;

use super::*;
use crate::domain::ice::IceConfig;
use crate::domain::net::Cidr;
use crate::domain::queue::QueueBudget;

/// The lookup plus the parsing helpers, so each field above is one line.
pub(super) struct Env<'a, F: Fn(&str) -> Option<String>>(pub(super) &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub(super) fn parse<T: FromStr>(&self, var: &'static str, default: T, want: &str) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid(var, &v, format!("expected {want}"))),
        }
    }

    pub(super) fn ranged(
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
    pub(super) fn decimal(
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

    pub(super) fn workers(&self) -> Result<WorkerConfig, ConfigError> {
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

    pub(super) fn presence(&self) -> Result<PresenceConfig, ConfigError> {
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
            queue_budget: self.queue_budget()?,
            network_claim: self.network_claim("DEVICE_NETWORK_CLAIM")?,
        })
    }

    /// A claim name, usable only with `JWT_SECRET` (there is no token to read it from otherwise).
    fn network_claim(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(name) = self.get(var) else { return Ok(None) };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
        if name.len() > 64 || !name.chars().all(allowed) {
            return Err(invalid(var, &name, "expected a claim name: 1 to 64 of A-Z a-z 0-9 _ - . :".into()));
        }
        if ["sub", "exp", "nbf", "iat", "aud", "iss", "jti"].contains(&name.as_str()) {
            return Err(invalid(var, &name, "expected a claim of its own, not a registered JWT claim".into()));
        }
        if self.get("JWT_SECRET").is_none() {
            return Err(invalid(var, &name, "needs JWT_SECRET: the networks are read from the token".into()));
        }
        Ok(Some(name))
    }

    /// The byte budgets of device queues, each from 1 KiB to 1 TiB.
    fn queue_budget(&self) -> Result<QueueBudget, ConfigError> {
        let d = QueueBudget::default();
        let bytes = |var, default| self.ranged(var, default, 1024..=1 << 40);
        Ok(QueueBudget {
            signals: d.signals,
            queue_bytes: bytes("DEVICE_QUEUE_MAX_BYTES", d.queue_bytes)?,
            sender_bytes: bytes("DEVICE_SENDER_MAX_BYTES", d.sender_bytes)?,
            total_bytes: bytes("DEVICE_QUEUES_MAX_BYTES", d.total_bytes)?,
        })
    }

    pub(super) fn connections(&self) -> Result<ConnectionConfig, ConfigError> {
        let max = connections::default_max_connections();
        Ok(ConnectionConfig {
            max_connections: self.ranged("MAX_CONNECTIONS", max, 1..=1_000_000)?,
            header_read_timeout: self.millis("HEADER_READ_TIMEOUT_MS", 10_000)?,
            max_header_bytes: self.ranged("MAX_HEADER_BYTES", 16 * 1024, 8 * 1024..=1 << 20)?,
            connect_timeout: self.millis("CONNECT_TIMEOUT_MS", 10_000)?,
        })
    }

    pub(super) fn millis(&self, var: &'static str, default: usize) -> Result<Duration, ConfigError> {
        let ms = self.ranged(var, default, 100..=600_000)?;
        Ok(Duration::from_millis(ms as u64))
    }

    pub(super) fn origins(&self, var: &'static str) -> Result<AllowedOrigins, ConfigError> {
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

    pub(super) fn cidrs(&self, var: &'static str) -> Result<Vec<Cidr>, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(Vec::new()) };
        raw.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|why| invalid(var, &raw, why)))
            .collect()
    }

    pub(super) fn redis_url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.get(var) else {
            return Ok(None);
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(var, &url, "expected redis://host:port[/db] or rediss://...".into()));
        }
        Ok(Some(url))
    }

    pub(super) fn prefix(&self, var: &'static str) -> Result<String, ConfigError> {
        let prefix = self.get(var).unwrap_or_else(|| "switchboard".into());
        if prefix.len() > 64 || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(var, &prefix, "expected up to 64 of A-Z a-z 0-9 - _ .".into()));
        }
        Ok(prefix)
    }

    pub(super) fn urls(&self, var: &'static str, schemes: &[&str]) -> Result<Vec<String>, ConfigError> {
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

    pub(super) fn ice(&self) -> Result<IceConfig, ConfigError> {
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

    pub(super) fn log_filter(&self, var: &'static str) -> Result<String, ConfigError> {
        let filter = self.get(var).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| invalid(var, &filter, format!("not a tracing filter: {e}")))?;
        Ok(filter)
    }

    pub(super) fn log_format(&self, var: &'static str) -> Result<LogFormat, ConfigError> {
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

pub(super) fn invalid(var: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError { var, value: value.to_owned(), reason }
}
