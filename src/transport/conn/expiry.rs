//! A connection outlives no token: one admitted with a token is closed when
//! the token expires (its `exp`, plus the [`LEEWAY_SECONDS`] a token is
//! accepted with), and its clean-up runs as for any disconnect. The client
//! sees a server-side disconnect and reconnects with a fresh token.

use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::AbortHandle;
use tracing::info;

use super::auth::LEEWAY_SECONDS;
use crate::core::link::Link;

/// The timer that closes a connection at its token's expiry; stopped when dropped.
pub struct Expiry(Option<AbortHandle>);

impl Expiry {
    /// Closes `link` when a token with `exp` (Unix seconds) expires; nothing without one.
    pub fn at(exp: Option<u64>, link: Weak<dyn Link>) -> Self {
        let Some(exp) = exp else { return Self(None) };
        let deadline = UNIX_EPOCH + Duration::from_secs(exp.saturating_add(LEEWAY_SECONDS));
        let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(link) = link.upgrade() {
                info!(conn_id = %link.id(), "token expired: disconnected");
                link.close();
            }
        });
        Self(Some(task.abort_handle()))
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
