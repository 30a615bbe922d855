//! Seed 000's own WebSocket at `/`: an upgrade whose query has an
//! `organizationId` parameter (`ws://host?organizationId=…&clientId=…&clientName=…&capabilities=a,b`)
//! is a mesh client, admitted as `/mesh`'s are ([`Identity`]: the query is
//! the whole handshake; with `JWT_SECRET` set the token comes from
//! `?token=` or `Authorization: Bearer`) and a member of the same
//! organization as `/mesh`'s socket.io clients: one client list, one
//! election, peer messages both ways, here and across instances.
//!
//! Every frame is `{type, data}` as seed 000 writes it (`server-heartbeat`
//! keeps `timestamp` and `clientCount` at the top level, as the seed does).
//! Seed 000 has no acks and no error frame: a success is silent, a refused
//! frame gets `{type: "error", data: {code, message, event}}` and the
//! connection stays open. The reference is `docs/protocol/seed-000.md`.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::response::Response;
use serde::Serialize;
use tracing::info;

use super::identity::Identity;
use super::wire::{self, Out};
use crate::core::event::Event;
use crate::core::mesh::Member;
use crate::domain::ConnId;
use crate::domain::mesh::MeshClient;
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::raw::{self, Data, Protocol, RawConn, Typed, Work};
use crate::transport::conn::sio::WireName;
use crate::transport::wire::error::{Refused, SignalError};
use crate::transport::wire::query;

/// The frame type of an error (not in seed 000).
pub const ERROR: &str = "error";

/// Whether an upgrade at `/` with this query is seed 000's: it names an `organizationId`.
pub fn claims(query: Option<&str>) -> bool {
    query::decoded(query, "organizationId").is_some()
}

/// A WebSocket upgrade at `/` that [`claims`] took.
pub fn upgrade(state: &AppState, request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    raw::upgrade::<MeshSocket>(state, request, Ok(query))
}

/// One raw mesh connection: its member record, and the client's older
/// connection it turns out once it is up.
pub struct MeshSocket {
    member: Arc<Member>,
    replaced: Mutex<Option<MeshClient>>,
}

/// The error frame's `data`: the code and message of every protocol, and the
/// type of the frame refused (`null` when it had none, or was not read).
#[derive(Serialize)]
struct ErrorData<'a> {
    code: &'static str,
    message: String,
    event: Option<&'a str>,
}

/// `{type, data}`: every frame of seed 000 but `server-heartbeat`.
fn frame<T: Serialize>(kind: &str, data: T) -> Typed<'_, Data<T>> {
    Typed { kind, body: Data { data } }
}

fn error_frame<'a>(event: Option<&'a str>, e: &SignalError) -> Typed<'static, Data<ErrorData<'a>>> {
    frame(ERROR, ErrorData { code: e.code(), message: e.to_string(), event })
}

impl Protocol for MeshSocket {
    const NAME: &'static str = "seed-000";
    type Ask = String;

    async fn open(state: &AppState, admitted: &Admitted, query: String, id: &ConnId) -> Result<Self, Refused> {
        let field = |name: &str| query::decoded(Some(&query), name);
        let identity = Identity::read(field, admitted, state.config.mesh.open_with_jwt).inspect_err(|why| {
            info!(conn_id = %id, reason = %why, "mesh connection refused (raw)");
        })?;
        let (member, replaced) = identity.join(state, id.clone()).await?;
        Ok(Self { member, replaced: Mutex::new(replaced) })
    }

    fn start(conn: &Arc<RawConn<Self>>) -> Option<Work> {
        let member = &conn.ns.member;
        let _ = conn.send(&frame(wire::WELCOME, wire::welcome(&conn.core.instance, &member.org)));
        let conn = conn.clone();
        Some(Box::pin(async move {
            let replaced = conn.ns.replaced.lock().unwrap_or_else(|p| p.into_inner()).take();
            conn.core.mesh().connected(&conn.ns.member, replaced).await;
        }))
    }

    async fn handle(&self, conn: &RawConn<Self>, text: &str) {
        let (event, data) = match super::payload::frame(text) {
            Ok(frame) => frame,
            Err(e) => return self.refused(conn, &e.into()),
        };
        if let Err(e) = super::act(&conn.core, &self.member, &event, data).await {
            let _ = conn.send(&error_frame(Some(event.name()), &e));
        }
    }

    fn refused(&self, conn: &RawConn<Self>, why: &SignalError) {
        let _ = conn.send(&error_frame(None, why));
    }

    async fn closed(&self, conn: &RawConn<Self>) {
        let member = &self.member;
        conn.core.mesh().leave(member).await;
        info!(conn_id = %conn.id(), org_id = %member.org, client_id = %member.client.id, "mesh client disconnected (raw)");
    }

    fn render(event: &Event) -> Option<String> {
        match wire::shape(event)? {
            // `{type, ...fields}`, as seed 000 writes it.
            (kind, Out::ServerHeartbeat(fields)) => serde_json::to_string(&Typed { kind, body: fields }),
            (kind, data) => serde_json::to_string(&frame(kind, data)),
        }
        .ok()
    }
}

/// The frames a raw mesh client gets, as seed 000 writes them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mesh::{ClientId, OrgId};
    use serde_json::{Value, json};

    fn rendered(event: Event) -> Value {
        serde_json::from_str(&MeshSocket::render(&event).unwrap()).unwrap()
    }

    #[test]
    fn server_heartbeat_has_its_fields_at_the_top_level_and_the_others_in_data() {
        let beat = rendered(Event::ServerHeartbeat { timestamp: 5, client_count: 2 });
        assert_eq!(beat, json!({"type": "server-heartbeat", "timestamp": 5, "clientCount": 2}));
        let admin = ClientId::parse("ann").unwrap();
        let beat = rendered(Event::AdminHeartbeat { admin: admin.clone(), timestamp: 7 });
        assert_eq!(beat, json!({"type": "admin-heartbeat", "data": {"deviceId": "ann", "timestamp": 7}}));
        let org = OrgId::parse("acme").unwrap();
        let elected = rendered(Event::AdminElected { org, admin, priority: 11, temporary: true, timestamp: 9 });
        assert_eq!(
            elected,
            json!({"type": "admin-elected", "data": {"organizationId": "acme", "deviceId": "ann", "adminId": "ann",
                "priority": 11, "temporary": true, "timestamp": 9}})
        );
    }

    #[test]
    fn an_error_names_its_code_message_and_the_frame_type() {
        let e = SignalError::UnknownEvent("dance".into());
        let frame = serde_json::to_value(error_frame(Some("dance"), &e)).unwrap();
        assert_eq!(
            frame,
            json!({"type": "error", "data": {"code": "invalid-payload", "message": "unknown event \"dance\"", "event": "dance"}})
        );
    }
}
