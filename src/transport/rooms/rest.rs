//! The default namespace's REST routes: `GET /api/rooms` (paged),
//! `GET /api/rooms/{roomId}` and `GET /api/ice-servers`, the first two
//! behind the token with `JWT_SECRET` set.

use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::domain::ice::IceServers;
use crate::domain::{RoomId, UserId};
use crate::state::AppState;
use crate::store::rooms::RoomSnapshot;
use crate::transport::conn::auth::Authenticated;
use crate::transport::http::guard::require_token;
use crate::transport::wire::error::HttpError;
use crate::transport::wire::rfc3339;

/// Default page size of `/api/rooms`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size of `/api/rooms`.
pub const MAX_LIMIT: usize = 1000;

/// The routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let token = || from_fn_with_state(state.clone(), require_token);
    Router::new()
        .route("/api/rooms", get(list_rooms).route_layer(token()))
        .route("/api/rooms/{room_id}", get(get_room).route_layer(token()))
        .route("/api/ice-servers", get(ice_servers).route_layer(token()))
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

#[derive(Serialize)]
struct RoomList {
    rooms: Vec<RoomDto>,
    total: usize,
}

async fn list_rooms(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<RoomList>, HttpError> {
    let (offset, limit) = paging(query.as_deref().unwrap_or(""))?;
    let page = state.core.rooms().page(offset, limit).await?;
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
    let room = state.core.rooms().get(&id).await?;
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
}
