//! `/edge`: where a client signals its worker. The client's id is its
//! connection id, told in `welcome { clientId }`; `signal { to, type, data }`
//! goes to a healthy worker, which gets `signal { from, type, data }`.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::wire::{self, Answer, Welcome, WorkerEvent};
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::sio::{self, Conn, Namespace, WireName, public_id};
use crate::transport::wire::error::SignalError;

/// Where clients connect to signal their worker.
pub const PATH: &str = "/edge";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(sio::token_admission::<Edge>));
}

/// A client's `/edge` connection.
pub struct Edge;

impl From<&Admitted> for Edge {
    fn from(_: &Admitted) -> Self {
        Edge
    }
}

/// Connect handler: tells the client its id.
async fn connected(socket: SocketRef) {
    let _ = socket.emit(wire::WELCOME, &Welcome { client_id: public_id(socket.ns(), socket.id.as_str()).as_str() });
}

impl Namespace for Edge {
    const PATH: &'static str = PATH;
    type Event = WorkerEvent;
    type Answer = Answer;

    async fn handle(&self, conn: &Conn<Self>, event: &WorkerEvent, data: Option<Value>) -> Result<Answer, SignalError> {
        // Only workers heartbeat: anything but a signal is unknown here.
        let WorkerEvent::Signal = event else { return Err(SignalError::UnknownEvent(event.name().to_owned())) };
        let req = wire::signal_request(data)?;
        conn.core.workers().to_worker(conn.id(), &req.to, req.kind, req.data).await?;
        Ok(Answer { ok: true })
    }

    async fn closed(&self, _conn: &Conn<Self>, _reason: DisconnectReason) {}

    fn emit(socket: &SocketRef, event: &Event) -> Result<(), Undelivered> {
        wire::emit(socket, event)
    }
}
