//! The `switchboard` binary: configuration, logging, bind, run until a signal.
//!
//! `switchboard` serves; `switchboard healthcheck` checks a running server.
//! A bad configuration value exits with code 2 and names the variable.

use std::net::SocketAddr;
use std::process::ExitCode;

use switchboard::config::Config;
use switchboard::{healthcheck, server, telemetry};
use tokio::net::TcpListener;
use tracing::{error, info};

/// jemalloc rather than glibc's malloc: the relay path allocates per message,
/// and glibc's free lists cost a fifth of the server's CPU at 10,000 relays a
/// second (measured: 0.0175 -> 0.0143 CPU seconds per 1,000 relays; one core
/// then carries about 150,000 relays a second instead of 100,000; memory per
/// idle peer unchanged, and more of it returned after peers leave).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`malloc_conf`; the
/// crate builds jemalloc with the `_rjem_` prefix). Freed pages go back to
/// the kernel after `dirty_decay_ms` (10 s, jemalloc's default), but without
/// a background thread decay only advances inside later allocations: after
/// 19,500 peers dropped at once, RSS stayed at 304 MB (memory mode) while the
/// server idled. With one it is back to about 30 MB within 10 s
/// (docs/PERFORMANCE.md, "Disconnect storms"); relay CPU unchanged within
/// noise. `muzzy_decay_ms:0` (also the default) skips the `MADV_FREE` stage,
/// whose pages would still count in RSS. `_RJEM_MALLOC_CONF` in the
/// environment overrides any of these at start-up.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &u8 = &b"background_thread:true,dirty_decay_ms:10000,muzzy_decay_ms:0\0"[0];

fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("switchboard: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck::run(&config);
    }
    telemetry::init(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    for krate in telemetry::uncapped_packet_loggers(&config.log_filter) {
        tracing::warn!(
            "RUST_LOG names {krate}: below info its lines carry raw packets (tokens, SDP); never in production"
        );
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match listen(addr) {
        Ok(listener) => listener,
        Err(e) => {
            error!(%addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = shutdown_signal();
    match listener.local_addr() {
        Ok(addr) => info!(%addr, version = env!("CARGO_PKG_VERSION"), "listening"),
        Err(e) => error!(error = %e, "cannot read the bound address"),
    }
    match server::run(listener, config, shutdown).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed now, before
/// "listening" is logged: a signal sent the moment it is must not kill the
/// process (the default action) instead of shutting it down.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt =
            signal(SignalKind::interrupt()).inspect_err(|e| error!(error = %e, "cannot listen for SIGINT")).ok();
        let mut terminate =
            signal(SignalKind::terminate()).inspect_err(|e| error!(error = %e, "cannot listen for SIGTERM")).ok();
        async move {
            tokio::select! {
                _ = recv(interrupt.as_mut()) => info!(signal = "SIGINT", "shutdown requested"),
                _ = recv(terminate.as_mut()) => info!(signal = "SIGTERM", "shutdown requested"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!(signal = "SIGINT", "shutdown requested");
        } else {
            std::future::pending::<()>().await
        }
    }
}

/// The next signal of `signal`; never, without a handler.
#[cfg(unix)]
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => drop(signal.recv().await),
        None => std::future::pending::<()>().await,
    }
}

/// Connections the kernel may hold for `accept` (the standard library's 128
/// drops SYNs when a few hundred clients connect at once, and they retry a
/// second later; Node listens with 511). The kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` and listens with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As the standard library's bind does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
