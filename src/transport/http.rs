//! REST routes: `/health`, `/api/rooms`, `/api/rooms/{roomId}`, the device
//! routes of [`super::devices`],
//! `/api/ice-servers`, the static files of `WEB_DIR`, and JSON for every miss
//! (unknown route 404, wrong method 405).

use std::time::SystemTime;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_http::services::ServeDir;

use super::address;
use super::auth::{self, AuthError, Authenticated};
use super::error::HttpError;
use crate::domain::ice::IceServers;
use crate::domain::{RoomId, UserId};
use crate::state::AppState;
use crate::store::rooms::RoomSnapshot;

/// Default page size of `/api/rooms`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size of `/api/rooms`.
pub const MAX_LIMIT: usize = 1000;

/// The REST router (the socket.io layer and CORS are added by the server).
pub fn routes(state: AppState) -> Router {
    let token = || axum::middleware::from_fn_with_state(state.clone(), require_token);
    Router::new()
        .route("/health", get(health))
        .route("/dashboard/health", get(dashboard_health).route_layer(token()))
        .route("/api/rooms", get(list_rooms).route_layer(token()))
        .route("/api/rooms/{room_id}", get(get_room).route_layer(token()))
        .route("/api/ice-servers", get(ice_servers).route_layer(token()))
        .route("/metrics", get(metrics).route_layer(token()))
        .route("/bootstrap", axum::routing::post(super::workers::bootstrap))
        .route("/workers", get(super::workers::list).route_layer(token()))
        .merge(super::devices::routes(&state))
        .fallback_service(ServeDir::new(&state.config.web_dir).fallback(no_route.into_service()))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit_per_address))
        .with_state(state)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    connections: usize,
    /// `null` while the store cannot be asked.
    rooms: Option<usize>,
    uptime_seconds: u64,
    version: &'static str,
    adapter: &'static str,
    /// In cluster mode: `up` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
    /// Seed 001's name: socket.io connections of this instance, every namespace.
    #[serde(rename = "connected_clients")]
    connected_clients: usize,
    /// Whether this instance is the cluster's leader (always, alone).
    leader: bool,
    /// The worker ring: healthy workers and virtual nodes (`null` while the store cannot be asked).
    ring: Option<serde_json::Value>,
}

/// 200 while the server can do its work; 503 while Redis is down (cluster mode).
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let redis_up = state.redis_up();
    let down = redis_up == Some(false);
    let rooms = if down { None } else { state.store.count().await.ok() };
    let health = Health {
        status: if down { "degraded" } else { "ok" },
        connections: state.stats.connections(),
        rooms,
        uptime_seconds: state.stats.uptime_seconds(),
        version: env!("CARGO_PKG_VERSION"),
        adapter: state.store.kind(),
        redis: redis_up.map(|up| if up { "up" } else { "down" }),
        connected_clients: state.metrics.sockets().all,
        leader: state.leader.load(std::sync::atomic::Ordering::Relaxed),
        ring: if down { None } else { super::workers::ring_figures(&state).await.ok() },
    };
    let status = if down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(health))
}

/// Seed 001's health: `{ status, connected_clients, rooms: { total, list } }`
/// (under its own path: the contract's `/health` has `rooms` as a number).
async fn dashboard_health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, HttpError> {
    let (total, list) = super::dashboard::room_list(&state).await.map_err(|e| state.reported(e, "dashboard health"))?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "connected_clients": state.metrics.sockets().all,
        "rooms": { "total": total, "list": list },
    })))
}

/// Prometheus text: this instance's counters and the store's figures.
/// Behind the token with JWT on (it names networks).
async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let rooms = state.store.count().await.map_err(|e| state.reported(e, "metrics"))?;
    let presence = state.devices.presence.stats().await.map_err(|e| state.reported(e, "metrics"))?;
    let queued = state.devices.queues.queued().await.map_err(|e| state.reported(e, "metrics"))?;
    let ring = super::workers::ring_figures(&state).await?;
    let figure = |name: &str| ring[name].as_u64().unwrap_or(0) as usize;
    let snapshot = crate::metrics::Snapshot {
        metrics: &state.metrics,
        connections: state.stats.connections(),
        rooms,
        presence: &presence,
        queued,
        leader: state.leader.load(std::sync::atomic::Ordering::Relaxed),
        workers: (figure("workers"), figure("healthy"), figure("virtualNodes")),
        bootstraps: state.ring.bootstraps.load(std::sync::atomic::Ordering::Relaxed),
    };
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    Ok((content_type, crate::metrics::render(&snapshot)).into_response())
}

/// `Room` of the contract.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomDto {
    id: RoomId,
    participant_count: usize,
    participants: Vec<UserId>,
    created_at: String,
    /// Metadata, for rooms that have it (made on `/dashboard`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    meta: Option<RoomMetaDto>,
}

/// A room's metadata in `Room`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomMetaDto {
    name: String,
    description: String,
    host: String,
    host_id: UserId,
    requires_approval: bool,
}

impl From<RoomSnapshot> for RoomDto {
    fn from(room: RoomSnapshot) -> Self {
        Self {
            id: room.id,
            participant_count: room.participants.len(),
            participants: room.participants,
            created_at: rfc3339(room.created_at),
            meta: room.meta.map(|m| RoomMetaDto {
                name: m.name,
                description: m.description,
                host: m.host,
                host_id: m.host_id,
                requires_approval: m.requires_approval,
            }),
        }
    }
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

#[derive(Serialize)]
struct RoomList {
    rooms: Vec<RoomDto>,
    total: usize,
}

async fn list_rooms(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<RoomList>, HttpError> {
    let (offset, limit) = paging(query.as_deref().unwrap_or(""))?;
    let page = state.store.list(offset, limit).await.map_err(|e| state.reported(e, "GET /api/rooms"))?;
    Ok(Json(RoomList { rooms: page.rooms.into_iter().map(RoomDto::from).collect(), total: page.total }))
}

/// `offset` and `limit` from a query string; other parameters are ignored.
fn paging(query: &str) -> Result<(usize, usize), HttpError> {
    let (mut offset, mut limit) = (0, DEFAULT_LIMIT);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => limit = number(key, value, 1, MAX_LIMIT)?,
            "offset" => offset = number(key, value, 0, usize::MAX)?,
            _ => {}
        }
    }
    Ok((offset, limit))
}

fn number(key: &str, value: &str, min: usize, max: usize) -> Result<usize, HttpError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| HttpError::BadQuery(format!("{key} must be an integer from {min} to {max}, got {value:?}")))
}

async fn get_room(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<RoomDto>, HttpError> {
    let id = RoomId::parse(&raw).map_err(HttpError::BadRoomId)?;
    let room = state.store.room(&id).await.map_err(|e| state.reported(e, "GET /api/rooms/{roomId}"))?;
    let room = room.ok_or(HttpError::RoomNotFound)?;
    Ok(Json(room.into()))
}

#[derive(serde::Deserialize)]
struct IceQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
}

/// `GET /api/ice-servers?userId=`: STUN and TURN servers, TURN with fresh
/// credentials. With `JWT_SECRET` set they name the token's `sub`, and `userId`
/// is ignored: a client must not get credentials in another user's name.
async fn ice_servers(
    State(state): State<AppState>,
    authenticated: Option<Extension<Authenticated>>,
    query: Result<Query<IceQuery>, QueryRejection>,
) -> Result<Json<IceServers>, HttpError> {
    let user = match (&state.config.jwt, authenticated) {
        // `require_token` has put the token's user here.
        (Some(_), authenticated) => authenticated.map(|Extension(Authenticated(sub))| sub),
        (None, _) => {
            let Query(query) = query.map_err(|e| HttpError::BadQuery(e.body_text()))?;
            match query.user_id.as_deref() {
                Some(raw) => Some(UserId::parse(raw).map_err(|e| HttpError::BadQuery(format!("userId {e}")))?),
                None => None,
            }
        }
    };
    Ok(Json(state.config.ice.servers_for(user.as_ref(), SystemTime::now())))
}

/// With `JWT_SECRET` set, the routes that reveal rooms and users need a valid
/// token: `Authorization: Bearer` or `?token=`. The user it names goes on in the
/// request's extensions.
pub(super) async fn require_token(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(jwt) = &state.config.jwt {
        let token = auth::token_from(None, request.headers(), request.uri().query()).ok_or(AuthError::Missing);
        match token.and_then(|t| auth::verify(&t, jwt)) {
            Ok(user) => drop(request.extensions_mut().insert(Authenticated(user))),
            Err(e) => return HttpError::from(e).into_response(),
        }
    }
    next.run(request).await
}

/// REST requests per client address (`REST_REQUESTS_PER_SECOND`, `REST_BURST`);
/// `/health` is exempt, since load balancers poll it.
async fn limit_per_address(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ip = address::of(request.extensions(), request.headers(), &state.config.trusted_proxies);
    if let Some(ip) = ip.filter(|_| request.uri().path() != "/health")
        && let Err(wait) = state.limits.rest_request(ip, std::time::Instant::now(), state.config.rest_rate)
    {
        return HttpError::RateLimited(wait).into_response();
    }
    next.run(request).await
}

async fn no_route(uri: axum::http::Uri) -> HttpError {
    HttpError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed() -> HttpError {
    HttpError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(paging("").unwrap(), (0, 100));
        assert_eq!(paging("limit=1000&offset=5&x=y").unwrap(), (5, 1000));
        for bad in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "limit=", "offset"] {
            assert!(matches!(paging(bad), Err(HttpError::BadQuery(_))), "{bad}");
        }
    }

    #[test]
    fn created_at_is_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
