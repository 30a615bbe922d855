//! The tables every protocol is wired from: the socket.io namespaces
//! ([`PROTOCOLS`]: registration, REST routes, metrics and shutdown) and the
//! raw WebSocket protocols served at `/` ([`ROOT_PROTOCOLS`], chosen by the
//! upgrade's query; the other raw endpoints are routes of their feature).

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use socketioxide::SocketIo;

use crate::state::AppState;
use crate::transport::conn::{raw, sio};
use crate::transport::wire::error::HttpError;
use crate::transport::{dashboard, devices, mesh, peerjs, rooms, workers, ywebrtc};

/// One namespace or protocol: where it is served, how it is registered,
/// and its REST routes.
pub struct Protocol {
    /// The socket.io namespace.
    pub path: &'static str,
    /// Registers its connect middleware and handler.
    pub register: fn(&SocketIo),
    /// Shutdown: runs its local connections' clean-up now.
    pub retire: fn(&SocketIo) -> Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Its REST routes, if any.
    pub routes: Option<Routes>,
}

/// The REST routes of the protocols that are no socket.io namespace, by
/// protocol name: merged only while `PROTOCOLS` serves the protocol.
pub const RAW_ROUTES: [(&str, Routes); 1] = [("peerjs", peerjs::rest::routes)];

/// The raw WebSocket endpoints (those at `/` are [`ROOT_PROTOCOLS`]'s):
/// outside the REST limit; one a `PROTOCOLS` leaves out answers 404 ([`raw::upgrade`]).
pub const SOCKETS: [Routes; 4] =
    [devices::raw::routes, dashboard::raw::routes, peerjs::rest::socket_routes, ywebrtc::routes];

/// A feature's REST routes.
pub type Routes = fn(&AppState) -> Router<AppState>;

/// A raw WebSocket protocol served at `/`, chosen by the upgrade's query.
pub struct RootProtocol {
    /// Whether an upgrade with this query is this protocol's (the first that claims it wins).
    pub claims: fn(Option<&str>) -> bool,
    /// Answers the upgrade.
    pub upgrade: fn(&AppState, Request) -> Response,
}

/// The raw protocols at `/`, in the order they are asked; a plain `GET /`
/// is the demo page. Seed 000 first (its query names an `organizationId`),
/// then seed 001, which claims every other query.
pub const ROOT_PROTOCOLS: [RootProtocol; 2] = [
    RootProtocol { claims: mesh::raw::claims, upgrade: mesh::raw::upgrade },
    RootProtocol { claims: dashboard::raw::claims, upgrade: dashboard::raw::at_root },
];

/// Middleware: a WebSocket upgrade at `/` goes to the first protocol of
/// [`ROOT_PROTOCOLS`] that claims its query.
pub(super) async fn root_upgrade(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/" && raw::websocket_key(request.method(), request.headers()).is_some() {
        let query = request.uri().query();
        if let Some(protocol) = ROOT_PROTOCOLS.iter().find(|p| (p.claims)(query)) {
            return (protocol.upgrade)(&state, request);
        }
    }
    next.run(request).await
}

/// Middleware: with `PROTOCOLS` leaving socket.io out, its path is an
/// unknown route (404 JSON) before the socket.io layer sees it.
pub(super) async fn socketio_switch(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !state.config.protocols.serves("socket.io") && (path == "/socket.io" || path.starts_with("/socket.io/")) {
        return HttpError::NoRoute(path.to_owned()).into_response();
    }
    next.run(request).await
}

/// Every namespace: registration, REST routes, metrics and shutdown all follow this table.
pub const PROTOCOLS: [Protocol; 6] = [
    Protocol {
        path: rooms::PATH,
        register: rooms::register,
        retire: sio::retire::<rooms::Rooms>,
        routes: Some(rooms::rest::routes),
    },
    Protocol {
        path: devices::PATH,
        register: devices::register,
        retire: sio::retire::<devices::Devices>,
        routes: Some(devices::rest::routes),
    },
    Protocol {
        path: dashboard::PATH,
        register: dashboard::register,
        retire: sio::retire::<dashboard::Dashboard>,
        routes: Some(dashboard::rest::routes),
    },
    Protocol { path: mesh::PATH, register: mesh::register, retire: sio::retire::<mesh::MeshConn>, routes: None },
    Protocol {
        path: workers::PATH,
        register: workers::register,
        retire: sio::retire::<workers::WorkerConn>,
        routes: Some(workers::rest::routes),
    },
    Protocol {
        path: workers::edge::PATH,
        register: workers::edge::register,
        retire: sio::retire::<workers::edge::Edge>,
        routes: None,
    },
];
