//! Connection bounds (issue 17, problem 5): how many connections, how long
//! a request head may take, how large it may be, and how long a session may
//! wait before its namespace CONNECT. Read, like every variable, in `env.rs`.

use std::time::Duration;

/// The bounds every TCP connection and engine.io session is held to.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionConfig {
    /// `MAX_CONNECTIONS`: open TCP connections (HTTP and websockets) this
    /// instance holds; one more is closed right after accept (default
    /// [`default_max_connections`]: below the process's file limit).
    pub max_connections: usize,
    /// `HEADER_READ_TIMEOUT_MS`: how long a connection may take to send a
    /// request's whole head; hyper also runs this timer while a keep-alive
    /// connection waits for its next request, so it is the idle timeout too
    /// (default 10 000).
    pub header_read_timeout: Duration,
    /// `MAX_HEADER_BYTES`: the largest request head (request line and
    /// headers); a larger one gets `431` (default 16 KiB, as Node's).
    pub max_header_bytes: usize,
    /// `CONNECT_TIMEOUT_MS`: an engine.io session that sends no namespace
    /// CONNECT within this long is closed (default 10 000). socketioxide
    /// keeps such a session, with its address slot, until then even if it
    /// closed sooner.
    pub connect_timeout: Duration,
}

/// Descriptors kept for everything but connections (the listener, Redis,
/// the runtime, files served): at most this many, at most half the limit.
pub const FD_HEADROOM: u64 = 128;

/// `MAX_CONNECTIONS` when unset: the soft `RLIMIT_NOFILE` less
/// [`FD_HEADROOM`] (or half of it, if smaller); 1 000 000 with no limit
/// (or none readable).
pub fn default_max_connections() -> usize {
    max_for(file_limit())
}

/// [`default_max_connections`] under a file limit of `limit`.
pub fn max_for(limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => limit.saturating_sub(FD_HEADROOM.min(limit / 2)).clamp(1, 1_000_000) as usize,
        None => 1_000_000,
    }
}

/// The process's soft limit on open files, if it has one.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every Unix.
pub fn file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// The process's soft limit on open files (none known off Unix).
#[cfg(not(unix))]
pub fn file_limit() -> Option<u64> {
    None
}
