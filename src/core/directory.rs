//! The live room directory (seed 001): the room list pushed to the
//! subscribers of [`ROOMS_CHANNEL`] on every change (any instance's) and
//! every `ROOM_LIST_INTERVAL_MS` while rooms exist, and the count of
//! directory clients, cluster-wide, pushed to each of them when it changes:
//! at most once per [`COUNT_EVERY`], however fast clients come and go (each
//! push goes to every directory client, so one client connecting and
//! disconnecting in a loop must not make the server send a count per change
//! to everyone).

use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use super::event::{Event, ParticipantView, RoomMetaView, RoomView};
use super::groups::Group;
use super::{Core, CoreError};
use serde_json::Value;

use crate::domain::{ConnId, RoomError, UserId, now_ms, unix_ms};
use crate::store::StoreError;
use crate::store::rooms::RoomSnapshot;

/// The channel whose subscribers get the room list.
pub const ROOMS_CHANNEL: &str = "webrtc-dashboard-rooms";
/// Rooms in one list at most.
pub const MAX_LISTED: usize = 1000;
/// Channels one connection may subscribe to.
pub const MAX_CHANNELS: usize = 32;
/// Changes that come in a burst go out as one list.
const COALESCE: Duration = Duration::from_millis(20);
/// Client counts go out at most this often.
pub const COUNT_EVERY: Duration = Duration::from_millis(250);

/// A room as the directory lists it.
pub fn room_view(room: &RoomSnapshot) -> RoomView {
    let name_of = |u: &UserId| room.meta.as_ref().map_or_else(|| u.as_str().to_owned(), |m| m.name_of(u));
    let participants = room.participants.iter().map(|u| ParticipantView { id: u.clone(), name: name_of(u) }).collect();
    RoomView {
        id: room.id.clone(),
        created_at: unix_ms(room.created_at),
        participants,
        participant_count: room.participants.len(),
        meta: room.meta.as_ref().map(|m| RoomMetaView {
            name: m.name.clone(),
            description: m.description.clone(),
            host: m.host.clone(),
            host_id: m.host_id.clone(),
            requires_approval: m.requires_approval,
        }),
    }
}

/// The directory (a view over [`Core`]).
pub struct Directory<'a>(pub(super) &'a Arc<Core>);

impl Directory<'_> {
    /// How many rooms exist, and the first [`MAX_LISTED`] as listed.
    pub async fn rooms(&self) -> Result<(usize, Vec<RoomView>), StoreError> {
        let page = self.0.stores.rooms.list(0, MAX_LISTED).await?;
        Ok((page.total, page.rooms.iter().map(room_view).collect()))
    }

    /// The room list as a subscriber gets it, or the store's failure.
    pub async fn list(&self, during: &'static str) -> Result<(usize, Event), CoreError> {
        let (total, rooms) = self.rooms().await.map_err(|e| self.0.reported(e, during))?;
        Ok((total, Event::RoomList { rooms, timestamp: now_ms() }))
    }

    /// Subscribes `conn` to `channel`; subscribers of [`ROOMS_CHANNEL`] get the list at once.
    pub async fn subscribe(&self, conn: &ConnId, channel: &str) -> Result<(), CoreError> {
        let courier = &self.0.courier;
        let group = Group::Channel(channel.to_owned());
        let subscribed = courier.groups.count_of(conn, |g| matches!(g, Group::Channel(_)));
        if !courier.groups.contains(&group, conn) && subscribed >= MAX_CHANNELS {
            return Err(CoreError::TooManyChannels(MAX_CHANNELS));
        }
        courier.groups.join(&group, conn);
        if channel == ROOMS_CHANNEL {
            // The list at once, not at the next change or tick.
            let (_, list) = self.list("subscribe").await?;
            let _ = courier.send(conn, &list).await;
        }
        Ok(())
    }

    /// Ends `conn`'s subscription to `channel`.
    pub fn unsubscribe(&self, conn: &ConnId, channel: &str) {
        self.0.courier.groups.leave(&Group::Channel(channel.to_owned()), conn);
    }

    /// A subscriber's event, relayed as sent to the channel's other subscribers, on every instance.
    pub async fn relay(&self, conn: &ConnId, channel: &str, event: String, payload: Value) -> Result<(), CoreError> {
        let courier = &self.0.courier;
        let group = Group::Channel(channel.to_owned());
        if !courier.groups.contains(&group, conn) {
            return Err(RoomError::NotInRoom.into());
        }
        Ok(courier.broadcast(&group, &Event::ChannelMessage { event, payload }, Some(conn)).await?)
    }

    /// A directory client connected: counted; everyone is told the new count
    /// with the next push.
    pub fn joined(&self, conn: &ConnId) {
        self.0.courier.groups.join(&Group::Directory, conn);
        self.0.directory_changed.notify_one();
    }

    /// A directory client is leaving: no longer counted; everyone is told with the next push.
    pub fn left(&self, conn: &ConnId) {
        self.0.courier.groups.leave(&Group::Directory, conn);
        self.0.directory_changed.notify_one();
    }

    /// Directory clients, cluster-wide.
    pub fn client_count(&self) -> usize {
        let courier = &self.0.courier;
        let here = courier.groups.len(&Group::Directory);
        courier.tally.total(&Group::Directory, here, self.0.config.instance_ttl)
    }

    /// Keeps subscribers' room lists and client counts current. Runs until aborted.
    pub async fn keep_current(&self) {
        tokio::join!(self.keep_lists_current(), self.keep_count_current());
    }

    /// Pushes the client count when it changed, here or on another instance,
    /// at most once per [`COUNT_EVERY`]. Runs until aborted.
    async fn keep_count_current(&self) {
        let core = self.0;
        loop {
            tokio::select! {
                _ = core.directory_changed.notified() => {
                    core.courier.publish_count(&Group::Directory).await;
                    self.push_count(self.client_count());
                }
                // Another instance's count changed: this instance's clients hear it too.
                _ = core.courier.tally.changed.notified() => self.push_count(self.client_count()),
            }
            tokio::time::sleep(COUNT_EVERY).await;
        }
    }

    async fn keep_lists_current(&self) {
        let core = self.0;
        let mut every = tokio::time::interval(core.config.room_list_interval);
        let store_changed = core.stores.rooms.changed();
        loop {
            tokio::select! {
                _ = core.rooms_changed.notified() => drop(self.push_list().await),
                _ = async { store_changed.as_ref()?.notified().await; Some(()) }, if store_changed.is_some() => {
                    self.push_list().await;
                }
                _ = every.tick() => {
                    let rooms_exist = core.stores.rooms.count().await.is_ok_and(|n| n > 0);
                    let sent = rooms_exist && self.push_list().await;
                    core.metrics.room_list_tick(sent);
                }
            }
            tokio::time::sleep(COALESCE).await;
        }
    }

    /// Sends the room list to this instance's subscribers; whether one went
    /// out (false: no subscriber here, or no list).
    async fn push_list(&self) -> bool {
        let courier = &self.0.courier;
        let subscribers = Group::Channel(ROOMS_CHANNEL.to_owned());
        if courier.groups.len(&subscribers) == 0 {
            return false;
        }
        match self.rooms().await {
            Ok((_, rooms)) => {
                courier.broadcast_local(&subscribers, &Event::RoomList { rooms, timestamp: now_ms() }) > 0
            }
            // A background push, not a client's request: the upkeep task reports outages.
            Err(e) => {
                debug!(error = %e, "server-room-list not sent: the store is unavailable");
                false
            }
        }
    }

    fn push_count(&self, count: usize) {
        let event = Event::ClientCount { count, timestamp: now_ms() };
        self.0.courier.broadcast_local(&Group::Directory, &event);
    }
}
