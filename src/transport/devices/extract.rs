//! What the REST routes of [`super`] take from a request besides its path
//! and body: the device whose queue is read ([`OwnDevice`]) and the networks
//! the caller may use ([`Networks`]).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::domain::UserId;
use crate::domain::presence::{DeviceId, NetworkAccess};
use crate::state::AppState;
use crate::transport::conn::auth::Authenticated;
use crate::transport::wire::error::HttpError;

/// The `{deviceId}` of the path, if the caller may read its queue (with JWT
/// on, only a device announced by the token's user), and its owner, whose
/// signals alone are read (none without a record).
pub(super) struct OwnDevice(pub DeviceId, pub Option<UserId>);

impl FromRequestParts<AppState> for OwnDevice {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| HttpError::invalid("deviceId", e.body_text()))?;
        let device = DeviceId::parse(&raw).map_err(|e| HttpError::invalid("deviceId", e.to_string()))?;
        // `require_token` has put the token's user here when JWT is on.
        let user = parts.extensions.get::<Authenticated>().map(|Authenticated(sub)| sub);
        let owner = state.core.devices().reader(&device, user).await?;
        Ok(Self(device, owner))
    }
}

/// The device networks the caller may use: what `require_token` read from
/// its token (JWT on; with `DEVICE_NETWORK_CLAIM` set, only the networks the
/// claim names), else every network. With the claim set and no token read
/// (a route without the token check), none: it fails closed.
pub(super) struct Networks(pub NetworkAccess);

impl FromRequestParts<AppState> for Networks {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        Ok(Self(match parts.extensions.get::<NetworkAccess>() {
            Some(access) => access.clone(),
            None if state.config.presence.network_claim.is_some() => NetworkAccess::Only(Vec::new().into()),
            None => NetworkAccess::Any,
        }))
    }
}
