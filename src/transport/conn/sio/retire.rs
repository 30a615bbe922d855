//! Shutdown: every connection's clean-up run now, not left to disconnect
//! handlers that `SocketIo::close` never calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use socketioxide::SocketIo;
use socketioxide::socket::DisconnectReason;

use super::{Conn, Namespace};

/// Shutdown: runs the clean-up of every local connection of namespace `N`
/// now (seats given up, peers told), so other instances see them gone at
/// once. Completes once each ran or is queued behind a running drainer.
pub fn retire<N: Namespace>(io: &SocketIo) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let sockets = io.of(N::PATH).map(|ns| ns.sockets()).unwrap_or_default();
    let closing: Vec<_> = sockets
        .iter()
        .filter_map(|s| s.extensions.get::<Arc<Conn<N>>>())
        .map(|conn| conn.close(DisconnectReason::ClosingServer))
        .collect();
    Box::pin(async move {
        futures_util::future::join_all(closing).await;
    })
}
