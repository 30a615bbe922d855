//! Shutdown: every connection's clean-up run now, not left to disconnect
//! handlers that `SocketIo::close` never calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use socketioxide::SocketIo;
use socketioxide::socket::DisconnectReason;

use super::{Conn, Namespace};

/// Runs a connection's clean-up now, for shutdown (`SocketIo::close` runs
/// no disconnect handler).
pub trait Retire: Send + Sync {
    /// Queues the clean-up and completes once it ran or is queued behind a running drainer.
    fn retire(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<N: Namespace> Retire for Conn<N> {
    fn retire(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { self.close(DisconnectReason::ClosingServer).await })
    }
}

/// Shutdown: runs the clean-up of every local connection of the namespaces
/// at `paths` now (seats given up, peers told), so other instances see them
/// gone at once.
pub async fn retire_all(io: &SocketIo, paths: &[&str]) {
    let sockets = paths.iter().filter_map(|path| io.of(*path)).flat_map(|ns| ns.sockets());
    let conns: Vec<_> = sockets.filter_map(|s| s.extensions.get::<Arc<dyn Retire>>()).collect();
    futures_util::future::join_all(conns.into_iter().map(Retire::retire)).await;
}
