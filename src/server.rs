//! The only wiring file: picks the store, builds the state, the socket.io
//! layer, the routes and the layers around them, and runs until shutdown.
//!
//! Without `REDIS_URL`: the memory store and socketioxide's local adapter.
//! With it: the Redis store and the socket.io Redis adapter (fred driver), so
//! every instance sees the same rooms and reaches every connection; device
//! presence, queues and the jobs lease live in Redis too.
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
use axum::serve::ListenerExt;
use socketioxide::adapter::Adapter;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo, SocketIoBuilder};
use socketioxide_redis::{FredAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::cluster::lease::RedisLease;
use crate::config::{AllowedOrigins, Config};
use crate::state::AppState;
use crate::store::devices::Devices;
use crate::store::mesh::redis::RedisMesh;
use crate::store::rooms::memory::MemoryStore;
use crate::store::rooms::redis::RedisStore;
use crate::store::workers::redis::RedisWorkers;
use crate::transport::{
    dashboard, device_socket, head, http, mesh, origin, presence_jobs, serial, socket, static_files, upkeep, workers,
};

/// How long connections get to close after a shutdown signal before the
/// server stops regardless (the process must exit within 10 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves on `listener` until `shutdown` completes, then closes every
/// connection and returns. Fails early only if Redis cannot be reached at start.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.allowed_origins == AllowedOrigins::Any {
        warn!("CLIENT_URL=* lets any website use this server with its visitors' credentials");
    }
    let Some(url) = config.redis_url.clone() else {
        return run_with_store(listener, config, Arc::new(MemoryStore::new()), shutdown).await;
    };
    let redis = crate::cluster::redis::connect(&url, &config).await.map_err(std::io::Error::other)?;
    let instance = uuid::Uuid::new_v4().simple().to_string();
    info!(%instance, "cluster mode: rooms in Redis");
    let store = RedisStore::new(redis.data.clone(), &config.redis_prefix, &instance, config.instance_ttl);
    let mut adapter_config = RedisAdapterConfig::new()
        .with_request_timeout(config.redis_timeout)
        .with_prefix(format!("{}-sio", config.redis_prefix));
    // Requests past this buffer would be dropped by the driver: size it for relay bursts.
    adapter_config.stream_buffer = 16_384;
    let connecting = RedisAdapterCtr::new_with_fred_config(redis.subscriber.clone(), adapter_config);
    let adapter = tokio::time::timeout(state_wait(&config), connecting)
        .await
        .map_err(|_| std::io::Error::other("no answer from Redis for the socket.io adapter"))?
        .map_err(std::io::Error::other)?;
    // The adapter has connected the subscriber; room changes and device
    // wake-ups come in on it too, and it is kept subscribed through outages.
    let (devices, endpoints) = Devices::redis(redis.data.clone(), &config.redis_prefix, &instance);
    let own = vec![store.changes_channel(), endpoints.wake_channel()];
    let subscriptions = crate::cluster::redis::keep_subscriptions(redis.subscriber.clone(), own);
    store.watch_changes(redis.subscriber.clone(), subscriptions.watch());
    endpoints.watch_wakes(redis.subscriber.clone(), subscriptions.watch());
    let lease = RedisLease::new(redis.data.clone(), &config.redis_prefix);
    let mesh = RedisMesh::new(redis.data.clone(), &config.redis_prefix, &instance);
    let workers = RedisWorkers::new(redis.data.clone(), &config.redis_prefix);
    let state = AppState::new(config, Arc::new(store)).with_stores(
        devices,
        Arc::new(lease),
        Arc::new(mesh),
        Arc::new(workers),
        &instance,
    );
    let builder = SocketIo::builder().with_adapter::<FredAdapter<_>>(adapter);
    let (layer, io) = configure(builder, &state).build_layer();
    io.ns("/", socket::on_connect.with(socket::attach).with(socket::authenticate))
        .await
        .map_err(std::io::Error::other)?;
    io.ns(device_socket::NAMESPACE, device_socket::on_connect.with(device_socket::admit))
        .await
        .map_err(std::io::Error::other)?;
    io.ns(dashboard::NAMESPACE, dashboard::on_connect.with(dashboard::attach).with(socket::authenticate))
        .await
        .map_err(std::io::Error::other)?;
    io.ns(mesh::NAMESPACE, mesh::on_connect.with(mesh::admit).with(socket::authenticate))
        .await
        .map_err(std::io::Error::other)?;
    io.ns(workers::WORKERS, workers::worker_connected.with(workers::admit_worker))
        .await
        .map_err(std::io::Error::other)?;
    io.ns(workers::EDGE, workers::welcome_client.with(workers::admit_client).with(socket::authenticate))
        .await
        .map_err(std::io::Error::other)?;
    tokio::time::timeout(state_wait(&state.config), subscriptions.until_ready())
        .await
        .map_err(|_| std::io::Error::other("Redis did not accept this instance's subscriptions"))?;
    state.store.maintain().await.map_err(std::io::Error::other)?;
    let upkeep = tokio::spawn(upkeep::run(io.clone(), state.clone(), subscriptions));
    let served = serve(listener, state, layer, io, shutdown).await;
    upkeep.abort();
    served
}

/// One instance over a given store (the memory store, or one a test wraps).
pub async fn run_with_store(
    listener: TcpListener,
    config: Config,
    store: Arc<dyn crate::store::rooms::RoomStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(config, store);
    let (layer, io) = configure(SocketIo::builder(), &state).build_layer();
    io.ns("/", socket::on_connect.with(socket::attach).with(socket::authenticate));
    io.ns(device_socket::NAMESPACE, device_socket::on_connect.with(device_socket::admit));
    io.ns(dashboard::NAMESPACE, dashboard::on_connect.with(dashboard::attach).with(socket::authenticate));
    io.ns(mesh::NAMESPACE, mesh::on_connect.with(mesh::admit).with(socket::authenticate));
    io.ns(workers::WORKERS, workers::worker_connected.with(workers::admit_worker));
    io.ns(workers::EDGE, workers::welcome_client.with(workers::admit_client).with(socket::authenticate));
    serve(listener, state, layer, io, shutdown).await
}

async fn serve<A: Adapter>(
    listener: TcpListener,
    state: AppState,
    sio_layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _jobs = AbortOnDrop(tokio::spawn(presence_jobs::run(state.clone())));
    let _wakes = AbortOnDrop(tokio::spawn(device_socket::dispatch_wakes(state.clone())));
    let _lists = AbortOnDrop(tokio::spawn(dashboard::keep_lists(io.clone(), state.clone())));
    let _mesh = AbortOnDrop(tokio::spawn(mesh::run(io.clone(), state.clone())));
    let counting = io.clone();
    state.metrics.count_sockets_with(move || {
        let namespaces =
            ["/", device_socket::NAMESPACE, dashboard::NAMESPACE, mesh::NAMESPACE, workers::WORKERS, workers::EDGE]
                .map(|ns| counting.of(ns).map(|ns| ns.sockets()));
        let sockets: Vec<_> = namespaces.into_iter().flatten().flatten().collect();
        let websocket = sockets.iter().filter(|s| s.transport_type() == socketioxide::TransportType::Websocket).count();
        crate::metrics::SocketCount { all: sockets.len(), websocket }
    });
    let origins = Arc::new(state.config.allowed_origins.clone());
    let bundle = Arc::new(static_files::bundle_dir(&state.config.web_dir));
    let app = http::routes(state.clone()).layer(
        ServiceBuilder::new()
            // Path only: a query string may carry a token.
            .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                tracing::debug_span!("http", method = %request.method(), path = %request.uri().path())
            }))
            .layer(origin::cors(&origins))
            .layer(from_fn_with_state(origins, origin::guard_websocket_origin))
            .layer(from_fn_with_state(bundle, static_files::serve_client_bundle))
            .layer(axum::middleware::from_fn(head::detach))
            .layer(sio_layer),
    );

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let stats = state.stats.clone();
    let signal = async move {
        shutdown.await;
        let _ = started_tx.send(());
        info!(connections = stats.connections(), "shutting down: disconnecting clients");
        // Clear rooms and tell peers first, then close the transports: clients
        // see a transport close (not a server disconnect) and reconnect.
        socket::disconnect_all(&io).await;
        serial::disconnect_all::<_, device_socket::DeviceConn<_>>(&io, device_socket::NAMESPACE).await;
        serial::disconnect_all::<_, dashboard::DashConn<_>>(&io, dashboard::NAMESPACE).await;
        serial::disconnect_all::<_, mesh::MeshConn<_>>(&io, mesh::NAMESPACE).await;
        serial::disconnect_all::<_, workers::WorkerConn<_>>(&io, workers::WORKERS).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, stats.all_disconnected()).await.is_err() {
            warn!(left = stats.connections(), "some connections were not cleaned up in time");
        }
        io.close().await;
    };
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Signaling messages are small and latency-bound: without TCP_NODELAY, Nagle's
    // algorithm meets the client's delayed ACK and holds a reply for ~40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let serve = axum::serve(listener, app).with_graceful_shutdown(signal).into_future();
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

/// Each websocket's read buffer (socketioxide's default: 4 KiB). Every idle
/// peer holds one; signaling frames are small, and a larger one grows the
/// buffer for as long as it is being read. Measured: 3 KiB less per peer.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// A background task that ends with the server, however `serve` returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long start-up waits for Redis before giving up.
fn state_wait(config: &Config) -> Duration {
    config.redis_timeout * 5
}

/// The socket.io settings both modes share.
fn configure<A: Adapter>(builder: SocketIoBuilder<A>, state: &AppState) -> SocketIoBuilder<A> {
    let config = &state.config;
    let parser =
        ParserConfig::common().max_incoming_binaries(16).max_incoming_binary_buf_size(config.max_payload_bytes);
    builder
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        .max_buffer_size(config.socket_buffer_packets)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .with_parser(parser)
        .with_state(state.clone())
}
