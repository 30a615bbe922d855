//! `/edge`: where a client signals its worker. The client's id is its
//! connection id, told in `welcome { clientId }`; `signal { to, type, data }`
//! goes to a healthy worker, which gets `signal { from, type, data }`.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::State;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::wire::{self, Answer, Welcome, WorkerEvent};
use crate::core::event::Event;
use crate::core::link::Undelivered;
use crate::state::AppState;
use crate::transport::conn::sio::{self, Conn, Handle, Namespace, WireName};
use crate::transport::wire::error::{Refused, SignalError};

/// Where clients connect to signal their worker.
pub const PATH: &str = "/edge";

/// Registers the namespace.
pub fn register(io: &SocketIo) {
    io.ns(PATH, connected.with(admission));
}

/// A client's `/edge` connection.
pub struct Edge;

async fn admission(
    Handle(socket): Handle,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    sio::admit_with_token(&socket, &state, auth.ok(), |_| Edge)
}

/// Connect handler: tells the client its id.
async fn connected(socket: SocketRef) {
    let _ = socket.emit(wire::WELCOME, &Welcome { client_id: socket.id.as_str() });
}

impl Namespace for Edge {
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
