//! What keeps the route cache honest: the announcements of room changes,
//! and the stall ticker with its sync tokens (see [`RouteCache`]).

use std::sync::Arc;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::domain::RoomId;
use crate::store::rooms::route_cache::{self, RouteCache};

/// Ticks the route cache's stall detector; after a stall, publishes its sync
/// token on `channel` (again every 40 ticks, a second, until heard).
pub(super) async fn watch_stalls(cache: Arc<RouteCache>, client: Client, channel: String) {
    let mut tick = tokio::time::interval(route_cache::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if let Some(token) = cache.tick(n.is_multiple_of(40)) {
            let published: Result<(), _> = client.publish(&channel, token.to_string()).await;
            if let Err(e) = published {
                tracing::debug!(error = %e, "route cache sync not published; retrying");
            }
        }
    }
}

/// Drops cached rooms as their changes are announced on `channel`, and
/// follows the subscription's health (see [`RouteCache`]).
pub(super) async fn watch_changes(
    cache: Arc<RouteCache>,
    changed: Arc<tokio::sync::Notify>,
    subscriber: SubscriberClient,
    channel: String,
    sync: String,
    mut ready: watch::Receiver<bool>,
) {
    let mut messages = subscriber.message_rx();
    cache.set_subscribed(*ready.borrow_and_update());
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(m) if &*m.channel == channel.as_str() => {
                    if let Some(id) = m.value.as_str().and_then(|id| RoomId::parse(&id).ok()) {
                        cache.invalidate(&id);
                    }
                    changed.notify_one();
                }
                Ok(m) if &*m.channel == sync.as_str() => {
                    cache.heard(m.value.as_u64().unwrap_or(0));
                }
                Ok(_) => {}
                // Announcements were dropped: any copy may be stale.
                Err(RecvError::Lagged(_)) => cache.clear(),
                Err(RecvError::Closed) => return,
            },
            // Down: announcements may be missed; up again: some may have been.
            // Either way the cache is emptied.
            change = ready.changed() => match change {
                Ok(()) => cache.set_subscribed(*ready.borrow_and_update()),
                Err(_) => return cache.set_subscribed(false),
            },
        }
    }
}
