//! What stands in front of REST routes: the token check (with `JWT_SECRET`
//! set, routes that reveal rooms or users need a valid token) and the
//! per-address request limit.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::transport::conn::address;
use crate::transport::conn::auth::{self, Authenticated};
use crate::transport::wire::error::AuthError;
use crate::transport::wire::error::HttpError;

/// With `JWT_SECRET` set, a valid token is needed: `Authorization: Bearer`
/// or `?token=`. The user it names ([`Authenticated`]) and the device
/// networks it may use ([`NetworkAccess`](crate::domain::presence::NetworkAccess), from `DEVICE_NETWORK_CLAIM`) go on
/// in the request's extensions; the token is verified once. Routes put it on
/// with `route_layer(from_fn_with_state(state, require_token))`.
pub async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(jwt) = &state.config.jwt {
        let token = auth::token_from(None, request.headers(), request.uri().query()).ok_or(AuthError::Missing);
        let claim = state.config.presence.network_claim.as_deref();
        match token.and_then(|t| auth::verify_scoped(&t, jwt, claim)) {
            Ok(verified) => {
                request.extensions_mut().insert(Authenticated(verified.user));
                request.extensions_mut().insert(verified.networks);
            }
            Err(e) => return HttpError::from(e).into_response(),
        }
    }
    next.run(request).await
}

/// REST requests per client address (`REST_REQUESTS_PER_SECOND`, `REST_BURST`);
/// `/health` is exempt, since load balancers poll it. The WebSocket
/// endpoints' routes are outside it ([`super::router`]).
pub async fn limit_per_address(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = address::of(request.extensions(), request.headers(), &state.config.trusted_proxies);
    if let Some(ip) = ip.filter(|_| request.uri().path() != "/health")
        && let Err(wait) = state.limits.rest_request(ip, std::time::Instant::now(), state.config.rest_rate)
    {
        return HttpError::RateLimited(wait).into_response();
    }
    next.run(request).await
}
