//! The only wiring file: picks the store, builds the state, the socket.io
//! layer, the routes and the layers around them, and runs until shutdown.
//!
//! Layer order matters: CORS is outermost so polling preflights get CORS
//! headers before the socket.io layer (which rejects `OPTIONS`) sees them.
//! Shutdown runs every connection's clean-up, then closes socket.io, then
//! lets axum finish: upgraded websockets would otherwise outlive axum's
//! graceful shutdown, and `SocketIo::close` alone runs no disconnect handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::config::{AllowedOrigins, Config};
use crate::state::AppState;
use crate::store::memory::MemoryStore;
use crate::transport::{http, origin, socket};

/// How long connections get to close after a shutdown signal before the
/// server stops regardless (the process must exit within 10 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves on `listener` until `shutdown` completes, then closes every
/// connection and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.allowed_origins == AllowedOrigins::Any {
        warn!("CLIENT_URL=* lets any website use this server with its visitors' credentials");
    }
    let state = AppState::new(config, Arc::new(MemoryStore::new()));
    let (sio_layer, io) = socket_io(&state);
    io.ns("/", socket::on_connect.with(socket::attach));

    let origins = Arc::new(state.config.allowed_origins.clone());
    let app = http::routes(state.clone()).layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(origin::cors(&origins))
            .layer(from_fn_with_state(origins, origin::guard_websocket_origin))
            .layer(sio_layer),
    );

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let stats = state.stats.clone();
    let signal = async move {
        shutdown.await;
        let _ = started_tx.send(());
        info!(
            connections = stats.connections(),
            "shutting down: disconnecting clients"
        );
        // Clear rooms and tell peers first, then close the transports: clients
        // see a transport close (not a server disconnect) and reconnect.
        socket::disconnect_all(&io).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, stats.all_disconnected())
            .await
            .is_err()
        {
            warn!(
                left = stats.connections(),
                "some connections were not cleaned up in time"
            );
        }
        io.close().await;
    };
    let serve = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => return result,
        _ = started_rx => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, serve).await {
        Ok(result) => result,
        Err(_) => {
            warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; stopping anyway");
            Ok(())
        }
    }
}

fn socket_io(state: &AppState) -> (SocketIoLayer, SocketIo) {
    let config = &state.config;
    let parser = ParserConfig::common()
        .max_incoming_binaries(16)
        .max_incoming_binary_buf_size(config.max_payload_bytes);
    SocketIo::builder()
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        .max_buffer_size(config.socket_buffer_packets)
        .with_parser(parser)
        .with_state(state.clone())
        .build_layer()
}
