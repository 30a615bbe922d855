//! The accept loop: every TCP connection is counted and timed (issue 17,
//! problem 5), which `axum::serve` does not do.
//!
//! - At most `MAX_CONNECTIONS` open connections: each holds a permit inside
//!   its stream ([`Counted`]), so an upgraded websocket keeps it until the
//!   socket closes. One more is closed right after accept, with a warning
//!   logged at most once a second.
//! - HTTP/1.1 (with upgrades) through hyper, with a timer: a request head
//!   must arrive whole within `HEADER_READ_TIMEOUT_MS`. hyper starts that
//!   timer whenever it waits for a head, on a new connection and between
//!   keep-alive requests alike, so an idle connection is closed after it too.
//!   A head over `MAX_HEADER_BYTES` gets `431`. HTTP/2 is not served (browsers
//!   speak it only over TLS, which a proxy in front terminates).
//! - The peer address reaches handlers as axum's `ConnectInfo<SocketAddr>`.
//!
//! Shutdown is axum's graceful one: when `signal` completes, no connection
//! is accepted any more, every open one is asked to finish its request and
//! close, and [`serve`] returns once all have.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;
use tracing::{debug, error, warn};

use crate::config::ConnectionConfig;

/// Serves `app` on `listener` within `bounds` until `signal` completes, then
/// shuts down gracefully (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: &ConnectionConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(bounds.max_connections));
    let http = http1(bounds);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(peer, bounds.max_connections);
            continue;
        };
        // Signaling messages are small and latency-bound: without TCP_NODELAY, Nagle's
        // algorithm meets the client's delayed ACK and holds a reply for ~40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection =
            http.serve_connection(TokioIo::new(Counted { tcp, _permit: permit }), TowerToHyperService::new(service));
        let (signal_tx, close_rx) = (signal_tx.clone(), close_rx.clone());
        tokio::spawn(async move {
            let connection = connection.with_upgrades();
            tokio::pin!(connection);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            debug!(error = %e, "connection closed with an error");
                        }
                        break;
                    }
                    _ = signal_tx.closed(), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop((close_rx, listener));
    close_tx.closed().await;
    Ok(())
}

/// The HTTP/1 settings of every connection.
fn http1(bounds: &ConnectionConfig) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout)
        .max_header_size(bounds.max_header_bytes)
        .max_buf_size(bounds.max_header_bytes)
        .keep_alive(true);
    http
}

/// A connection past `MAX_CONNECTIONS`: closed at once (the stream is
/// dropped by the caller), logged at most once a second.
fn refuse(peer: SocketAddr, max: usize) {
    static WARNING: crate::domain::rate::OncePerSecond = crate::domain::rate::OncePerSecond::new();
    if WARNING.ready(crate::domain::now_ms()) {
        warn!(%peer, max, "connection refused: MAX_CONNECTIONS are open (logged at most once a second)");
    }
}

/// An accept error: a connection that failed before it was accepted is
/// skipped; anything else (out of descriptors) is logged, and accepting
/// pauses a little so the loop does not spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    error!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// A TCP stream holding its place under `MAX_CONNECTIONS` until dropped
/// (after an upgrade, with the websocket).
struct Counted {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
