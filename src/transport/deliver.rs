//! Handing an event to one connection, wherever it is.
//!
//! On this instance: socketioxide's synchronous `emit`, whose result is the
//! truth (a full queue is `target-busy`, a closed one `target-not-found`).
//! In cluster mode, a connection that is not here is reached through the
//! socket.io Redis adapter: every connection sits in a socket.io room named
//! after its own id. There `ok` means the message was published to the
//! cluster in order; the target's instance delivers it (its own queue limits
//! apply and a failure there is logged by that instance).

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError, SocketIo};
use tracing::{debug, warn};

use super::error::SignalError;
use crate::domain::ConnId;

/// Where connections can be: this instance only, or a cluster reached through
/// Redis with a bound on each publish.
#[derive(Clone, Copy, Debug)]
pub enum Reach {
    /// One instance, in memory.
    Local,
    /// A cluster; publishing waits at most this long.
    Cluster(Duration),
}

/// Hands `event` to the connection `conn` of the default namespace.
pub async fn deliver<A: Adapter>(
    io: &SocketIo<A>,
    reach: Reach,
    conn: &ConnId,
    event: &str,
    data: &(impl Serialize + ?Sized),
) -> Result<(), SignalError> {
    deliver_to(io, &["/"], reach, conn, event, data).await
}

/// Hands `event` to a connection of either namespace that holds room seats
/// (`/` or `/dashboard`): a seat's connection id does not say which.
pub async fn deliver_any<A: Adapter>(
    io: &SocketIo<A>,
    reach: Reach,
    conn: &ConnId,
    event: &str,
    data: &(impl Serialize + ?Sized),
) -> Result<(), SignalError> {
    deliver_to(io, &["/", super::dashboard::NAMESPACE], reach, conn, event, data).await
}

/// Hands `event` to `conn`, a connection of one of `namespaces`: at once if
/// it is on this instance, else published to the cluster in each namespace
/// (every connection is in a room named after it there: [`reachable`]).
pub async fn deliver_to<A: Adapter>(
    io: &SocketIo<A>,
    namespaces: &[&str],
    reach: Reach,
    conn: &ConnId,
    event: &str,
    data: &(impl Serialize + ?Sized),
) -> Result<(), SignalError> {
    let sid = Sid::from_str(conn.as_str()).map_err(|_| SignalError::TargetGone)?;
    let local = |ns: &str| if ns == "/" { io.get_socket(sid) } else { io.of(ns)?.get_socket(sid) };
    if let Some(socket) = namespaces.iter().find_map(|ns| local(ns)) {
        return socket.emit(event, data).map_err(|e| match e {
            SendError::Socket(SocketError::InternalChannelFull) => SignalError::TargetBusy,
            _ => SignalError::TargetGone,
        });
    }
    let Reach::Cluster(timeout) = reach else {
        return Err(SignalError::TargetGone);
    };
    for ns in namespaces {
        let Some(ops) = io.of(*ns) else { continue };
        match tokio::time::timeout(timeout, ops.to(sid).emit(event, data)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(conn_id = %conn, event, error = %e, "publishing to another instance failed");
                return Err(SignalError::Unavailable);
            }
            Err(_) => return Err(SignalError::Unavailable),
        }
    }
    Ok(())
}

/// In a cluster, puts `socket` in a room named after its id, through which
/// other instances reach it ([`deliver_to`], [`turn_out`]).
pub fn reachable<A: Adapter>(socket: &SocketRef<A>, reach: Reach) {
    if matches!(reach, Reach::Cluster(_)) {
        socket.join(socket.id);
    }
}

/// Disconnects `conn`, a connection of namespace `ns`, here or on another
/// instance: a client that connected again turns its older connection out.
pub async fn turn_out<A: Adapter>(io: &SocketIo<A>, ns: &str, reach: Reach, conn: &str) {
    let (Some(ops), Ok(sid)) = (io.of(ns), Sid::from_str(conn)) else { return };
    if let Some(socket) = ops.get_socket(sid) {
        let _ = socket.disconnect();
        return;
    }
    if let Reach::Cluster(timeout) = reach
        && !matches!(tokio::time::timeout(timeout, ops.to(sid).disconnect()).await, Ok(Ok(())))
    {
        // Whoever holds it now decides alone; the old one finds out on its own.
        debug!(ns, conn_id = conn, "could not reach an older connection to close it");
    }
}

/// Sends `event` to each peer; a peer that cannot take it is logged, not fatal.
pub async fn notify<A: Adapter>(
    io: &SocketIo<A>,
    reach: Reach,
    peers: &[ConnId],
    event: &str,
    data: &(impl Serialize + ?Sized),
) {
    for peer in peers {
        match deliver(io, reach, peer, event, data).await {
            Ok(()) => {}
            // A Redis outage is logged once by the upkeep task, not once per message;
            // a peer that has just gone is ordinary churn (its own leave is announced).
            Err(err @ (SignalError::Unavailable | SignalError::TargetGone)) => {
                debug!(conn_id = %peer, event, code = err.code(), "notification not delivered")
            }
            Err(err) => {
                warn!(conn_id = %peer, event, code = err.code(), "notification not delivered")
            }
        }
    }
}
