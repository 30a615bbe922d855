//! The only wiring file: picks the stores, builds the core and the state,
//! registers every namespace from one table ([`PROTOCOLS`]), and runs until
//! shutdown.
//!
//! Without `REDIS_URL`: the memory stores, one instance. With it: the Redis
//! stores and the cluster bus, so every instance sees the same rooms,
//! devices, organizations and workers, and reaches every connection.
//!
//! Layer order matters: CORS is outermost so polling preflights get CORS
//! headers before the socket.io layer (which rejects `OPTIONS`) sees them.
//! Shutdown runs every connection's clean-up, then closes socket.io, then
//! lets the accept loop finish ([`accept::serve`], graceful as axum's):
//! upgraded websockets would otherwise outlive the graceful shutdown, and
//! `SocketIo::close` alone runs no disconnect handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use socketioxide::{ParserConfig, SocketIo, TransportType};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::cluster::bus::Bus;
use crate::cluster::lease::RedisLease;
use crate::cluster::redis::Subscriptions;
use crate::config::{AllowedOrigins, Config};
use crate::core::{Core, Stores};
use crate::metrics::SocketCount;
use crate::state::AppState;
use crate::store::devices::Devices;
use crate::store::mesh::redis::RedisMesh;
use crate::store::peerjs::redis::RedisPeers;
use crate::store::redis::clock::RedisClock;
use crate::store::rooms::RoomStore;
use crate::store::rooms::redis::RedisStore;
use crate::store::workers::redis::RedisWorkers;

mod protocols;
use crate::transport::http::{self, accept, head, origin, sessions, static_files};
use protocols::root_upgrade;
pub use protocols::{PROTOCOLS, Protocol, RAW_ROUTES, ROOT_PROTOCOLS, RootProtocol, SOCKETS};

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
    if config.redis_url.is_none() {
        return run_with_store(listener, config, Stores::memory().rooms, shutdown).await;
    }
    let (core, subscriptions) = cluster(Arc::new(config)).await?;
    run_core(listener, core, Some(subscriptions), shutdown).await
}

/// One instance over the memory stores, its rooms in `rooms` (the memory
/// store, or one a test wraps).
pub async fn run_with_store(
    listener: TcpListener,
    config: Config,
    rooms: Arc<dyn RoomStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stores = Stores { rooms, ..Stores::memory() };
    let core = Arc::new(Core::new(Arc::new(config), stores, "local", None));
    run_core(listener, core, None, shutdown).await
}

/// Serves every protocol of the table over `core` (with `subscriptions` in
/// a cluster, whose upkeep runs meanwhile). Whoever holds `core` can attach
/// connections of its own (any [`Link`](crate::core::link::Link)) beside
/// the server's.
pub async fn run_core(
    listener: TcpListener,
    core: Arc<Core>,
    subscriptions: Option<Subscriptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = subscriptions.map(|s| AbortOnDrop(tokio::spawn(crate::core::upkeep::run(core.clone(), s))));
    let served = serve(listener, AppState::new(core), shutdown).await;
    drop(upkeep);
    served
}

/// The core of one instance of a cluster (`REDIS_URL` set): the Redis
/// stores, the bus, and the subscriptions kept through outages.
pub async fn cluster(config: Arc<Config>) -> std::io::Result<(Arc<Core>, Subscriptions)> {
    let url = config.redis_url.clone().unwrap_or_default();
    let redis = crate::cluster::redis::connect(&url, &config).await.map_err(std::io::Error::other)?;
    let instance = uuid::Uuid::new_v4().simple().to_string();
    info!(%instance, "cluster mode: state in Redis");
    let (prefix, data) = (&config.redis_prefix, &redis.data);
    let clock = Arc::new(RedisClock::new(config.redis_timeout));
    let rooms = RedisStore::new(data.clone(), prefix, &instance, config.instance_ttl, clock.clone());
    let (devices, endpoints) = Devices::redis(data.clone(), prefix, &instance, clock.clone());
    let bus = Bus::new(data.clone(), prefix, config.redis_timeout, clock);
    let own = vec![rooms.changes_channel(), rooms.sync_channel(), endpoints.wake_channel(), bus.channel()];
    let subscriptions = crate::cluster::redis::keep_subscriptions(redis.subscriber.clone(), own);
    rooms.watch_changes(redis.subscriber.clone(), subscriptions.watch());
    endpoints.watch_wakes(redis.subscriber.clone(), subscriptions.watch());
    let heard = bus.listen(&redis.subscriber);
    let stores = Stores {
        rooms: Arc::new(rooms),
        devices,
        mesh: Arc::new(RedisMesh::new(data.clone(), prefix, &instance)),
        workers: Arc::new(RedisWorkers::new(data.clone(), prefix)),
        peers: Arc::new(RedisPeers::new(data.clone(), prefix, &instance)),
        lease: Arc::new(RedisLease::new(data.clone(), prefix)),
    };
    let core = Arc::new(Core::new(config.clone(), stores, &instance, Some(bus)));
    let listener = core.clone();
    tokio::spawn(async move { listener.courier.listen(heard).await });
    tokio::time::timeout(state_wait(&config), subscriptions.until_ready())
        .await
        .map_err(|_| std::io::Error::other("Redis did not accept this instance's subscriptions"))?;
    core.stores.rooms.maintain().await.map_err(std::io::Error::other)?;
    Ok((core, subscriptions))
}

async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if state.config.allowed_origins == AllowedOrigins::Any {
        warn!("CLIENT_URL=* lets any website use this server with its visitors' credentials");
    }
    let core = state.core.clone();
    let _jobs = AbortOnDrop(tokio::spawn(crate::core::jobs::run(core.clone())));
    let _wakes = AbortOnDrop(tokio::spawn(crate::core::devices::mailbox::dispatch_wakes(core.clone())));
    let directory = core.clone();
    let _lists = AbortOnDrop(tokio::spawn(async move { directory.directory().keep_current().await }));
    let _mesh = AbortOnDrop(tokio::spawn(crate::core::mesh::election::run(core.clone())));
    let _graces = AbortOnDrop(tokio::spawn(crate::core::rooms::grace::run(core.clone())));
    let _orphans = AbortOnDrop(tokio::spawn(crate::core::rooms::grace::adopt_orphans(core.clone())));
    let _peerjs = (state.config.protocols.serves("peerjs"))
        .then(|| AbortOnDrop(tokio::spawn(crate::core::peerjs::run(core.clone()))));
    let (sio_layer, io) = configure(&state).build_layer();
    for protocol in &PROTOCOLS {
        (protocol.register)(&io);
    }
    count_sockets(&state, io.clone());
    let served = RAW_ROUTES.iter().filter(|(name, _)| state.config.protocols.serves(name)).map(|(_, routes)| *routes);
    let features = PROTOCOLS.iter().filter_map(|p| p.routes).chain(served);
    let features = features.fold(Router::new(), |r, routes| r.merge(routes(&state)));
    let sockets = SOCKETS.iter().fold(Router::new(), |r, routes| r.merge(routes(&state)));
    let origins = Arc::new(origin::Policy::new(&state.config));
    let app = http::router(state.clone(), features, sockets).layer(
        ServiceBuilder::new()
            // Path only: a query string may carry a token.
            .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                tracing::debug_span!("http", method = %request.method(), path = %request.uri().path())
            }))
            .layer(origin::cors(&origins.allowed))
            .layer(from_fn_with_state(origins, origin::guard_websocket_origin))
            .layer(axum::middleware::from_fn(static_files::serve_client_bundle))
            .layer(from_fn_with_state(state.clone(), sessions::count))
            .layer(from_fn_with_state(state.clone(), root_upgrade))
            .layer(axum::middleware::from_fn(head::detach))
            .layer(from_fn_with_state(state.clone(), protocols::socketio_switch))
            .layer(sio_layer),
    );

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let stats = state.stats.clone();
    let shutdown_core = state.core.clone();
    let signal = async move {
        shutdown.await;
        let _ = started_tx.send(());
        info!(connections = stats.all(), "shutting down: disconnecting clients");
        stats.shut_down();
        shutdown_core.courier.shut_down_local();
        // Clear rooms and tell peers first, then close the transports: clients
        // see a transport close (not a server disconnect) and reconnect.
        futures_util::future::join_all(PROTOCOLS.map(|p| (p.retire)(&io))).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, stats.all_disconnected()).await.is_err() {
            warn!(left = stats.all(), "some connections were not cleaned up in time");
        }
        io.close().await;
    };
    let serve = accept::serve(listener, app, &state.config.connections, signal);
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

/// `/metrics` and `/health` count the sockets of every namespace in the table.
fn count_sockets(state: &AppState, io: SocketIo) {
    state.core.metrics.count_sockets_with(move || {
        let sockets: Vec<_> = PROTOCOLS.iter().filter_map(|p| io.of(p.path)).flat_map(|ns| ns.sockets()).collect();
        let websocket = sockets.iter().filter(|s| s.transport_type() == TransportType::Websocket).count();
        SocketCount { all: sockets.len(), websocket }
    });
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

/// The socket.io settings.
fn configure(state: &AppState) -> socketioxide::SocketIoBuilder {
    let config = &state.config;
    // One budget per process: socketioxide's builder cannot pass it per server.
    engineioxide::outbox::set_max_buffer_bytes(config.socket_buffer_bytes);
    let parser =
        ParserConfig::common().max_incoming_binaries(16).max_incoming_binary_buf_size(config.max_payload_bytes);
    SocketIo::builder()
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .connect_timeout(config.connections.connect_timeout)
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        .max_buffer_size(config.socket_buffer_packets)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .with_parser(parser)
        .with_state(state.clone())
}
