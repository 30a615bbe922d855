//! `GET /metrics`: Prometheus text of this instance's counters and the
//! stores' figures; behind the token with `JWT_SECRET` set (it names networks).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::metrics::{Snapshot, render};
use crate::state::AppState;
use crate::transport::wire::error::HttpError;

pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let core = &state.core;
    let failed = |e| HttpError::from(core.reported(e, "metrics"));
    let rooms = core.stores.rooms.count().await.map_err(failed)?;
    let presence = core.stores.devices.presence.stats().await.map_err(failed)?;
    let queued = core.stores.devices.queues.queued().await.map_err(failed)?;
    let ring = core.workers().figures().await?;
    let snapshot = Snapshot {
        metrics: &core.metrics,
        connections: state.stats.connections(),
        rooms,
        presence: &presence,
        queued,
        leader: core.leader.holds(),
        workers: (ring.workers, ring.healthy, ring.virtual_nodes),
        bootstraps: core.workers().bootstraps(),
    };
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    Ok((content_type, render(&snapshot)).into_response())
}
