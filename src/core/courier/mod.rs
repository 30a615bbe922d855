//! The courier: hands events to connections wherever they are. A connection
//! on this instance is reached through its [`Link`] (a lookup and a
//! synchronous send, whose result is the truth about delivery); one on
//! another instance through the cluster bus, where `Ok` means published in
//! order and the holding instance delivers it (its own queue limits apply,
//! and a failure there is logged there). Group broadcasts reach local
//! members at once and every other instance's through the bus.
//!
//! Every connection of every protocol is attached here while it lives, so a
//! socket.io client and a raw client are reached the same way.
//! A connection closing with its seats about to be held is parked ([`park`]).

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tracing::{debug, warn};

mod park;
mod post;

use self::post::{Heard, Incoming, Outgoing, Post, decode};
use super::event::Event;
use super::groups::{Group, Groups};
use super::link::{Link, Undelivered};
use super::tally::Tally;
use crate::cluster::bus::{self, Bus};
use crate::domain::ConnId;

/// Why an event did not reach its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The connection (here) cannot take more messages now.
    #[error("the target cannot take more messages now")]
    Busy,
    /// The connection is gone.
    #[error("the target's connection has closed")]
    Gone,
    /// The cluster bus cannot be reached.
    #[error("the cluster cannot be reached")]
    Unavailable,
}

impl From<Undelivered> for DeliveryError {
    fn from(e: Undelivered) -> Self {
        match e {
            Undelivered::Busy => DeliveryError::Busy,
            Undelivered::Gone => DeliveryError::Gone,
        }
    }
}

/// Group counts in one message of [`Courier::publish_counts`], at most.
pub const COUNTS_PER_POST: usize = 1000;

/// Delivery to connections, here and across the cluster.
pub struct Courier {
    instance: Arc<str>,
    /// How this instance's own bus messages begin (`{"from":"<instance>",`).
    own: String,
    links: DashMap<ConnId, Weak<dyn Link>>,
    /// Group memberships on this instance.
    pub groups: Groups,
    /// Members counted cluster-wide, per group.
    pub tally: Tally,
    bus: Option<Bus>,
    parked: DashMap<ConnId, park::Park>,
    orphans: park::Orphans,
}

pub use park::{PARKED_MAX, Parking};

impl Courier {
    /// The courier of instance `instance`; `bus` in a cluster.
    pub fn new(instance: Arc<str>, bus: Option<Bus>) -> Self {
        let own = post::own_prefix(&instance);
        let (links, parked, orphans) = (DashMap::new(), DashMap::new(), park::Orphans::default());
        Self { instance, own, links, groups: Groups::default(), tally: Tally::default(), bus, parked, orphans }
    }

    /// Makes `link` reachable by its id until it is dropped or detached.
    pub fn attach(&self, link: &Arc<dyn Link>) {
        self.links.insert(link.id().clone(), Arc::downgrade(link));
    }

    /// Forgets `conn` and its group memberships (it has closed).
    pub fn detach(&self, conn: &ConnId) {
        self.links.remove(conn);
        self.parked.remove_if(conn, |_, p| !matches!(p, park::Park::Held));
        self.groups.leave_all(conn);
    }

    /// The link of `conn`, if it is on this instance.
    pub fn local(&self, conn: &ConnId) -> Option<Arc<dyn Link>> {
        self.links.get(conn)?.upgrade()
    }

    /// Hands `event` to `to`, here or on another instance.
    pub async fn send(&self, to: &ConnId, event: &Event) -> Result<(), DeliveryError> {
        if let Some(link) = self.local(to) {
            return Ok(link.send(event)?);
        }
        if self.bus.is_none() {
            return Err(DeliveryError::Gone);
        }
        self.post(Post::To { conn: to, event }).await
    }

    /// Sends `event` to each peer: those here at once, those elsewhere in one
    /// message to the other instances. A peer that cannot take it is logged, not fatal.
    pub async fn notify(&self, peers: &[ConnId], event: &Event) {
        let mut elsewhere = Vec::new();
        for peer in peers {
            match self.local(peer) {
                Some(link) => log_undelivered(peer, link.send(event).map_err(DeliveryError::from)),
                None => elsewhere.push(peer),
            }
        }
        if elsewhere.is_empty() {
            return;
        }
        let sent = match self.bus {
            Some(_) => self.post(Post::ToMany { conns: &elsewhere, event }).await,
            None => Err(DeliveryError::Gone),
        };
        if let Err(e) = sent {
            for peer in elsewhere {
                log_undelivered(peer, Err(e));
            }
        }
    }

    /// Hands `event` to every member of `group` but `except`, on every instance.
    pub async fn broadcast(&self, group: &Group, event: &Event, except: Option<&ConnId>) -> Result<(), DeliveryError> {
        self.broadcast_here(group, event, except);
        if self.bus.is_none() {
            return Ok(());
        }
        self.post(Post::Group { group, except, event }).await
    }

    /// Hands `event` to the members of `group` on this instance only; how many took it.
    pub fn broadcast_local(&self, group: &Group, event: &Event) -> usize {
        self.broadcast_here(group, event, None)
    }

    /// Shutdown: every local connection whose protocol closes itself then
    /// is told to ([`Link::shut_down`]).
    pub fn shut_down_local(&self) {
        let links: Vec<_> = self.links.iter().filter_map(|l| l.value().upgrade()).collect();
        for link in links {
            link.shut_down();
        }
    }

    /// Closes `conn`, here or on another instance (a client that connected
    /// again turns its older connection out).
    pub async fn close(&self, conn: &ConnId) {
        if let Some(link) = self.local(conn) {
            return link.close();
        }
        if self.bus.is_some() && self.post(Post::Close { conn }).await.is_err() {
            // Whoever holds it now decides alone; the old one finds out on its own.
            debug!(conn_id = %conn, "could not reach an older connection to close it");
        }
    }

    /// Empties `group` on every instance.
    pub async fn dissolve(&self, group: &Group) {
        self.groups.dissolve(group);
        if self.bus.is_some() && self.post(Post::Dissolve { group }).await.is_err() {
            debug!(%group, "could not dissolve a group on the other instances");
        }
    }

    /// Tells the other instances how many members of `group` this one has.
    pub async fn publish_count(&self, group: &Group) {
        self.publish_counts([group.clone()]).await;
    }

    /// Tells the other instances how many members this one has of each of
    /// `groups`, [`COUNTS_PER_POST`] a message.
    pub async fn publish_counts(&self, groups: impl IntoIterator<Item = Group>) {
        if self.bus.is_none() {
            return;
        }
        let counts: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let n = self.groups.len(&g);
                (g, n)
            })
            .collect();
        for counts in counts.chunks(COUNTS_PER_POST) {
            let _ = self.post(Post::Counts { counts }).await;
        }
    }

    /// Delivers what the other instances post (`heard`, from the bus), until it closes.
    pub async fn listen(&self, mut heard: bus::Heard) {
        while let Some(message) = heard.next().await {
            let Some(text) = message.text() else { continue };
            if text.starts_with(&self.own) {
                continue;
            }
            match serde_json::from_str::<Incoming>(&text) {
                Ok(incoming) if *incoming.from == *self.instance => {}
                Ok(incoming) => self.deliver_heard(&incoming.from, incoming.post),
                Err(e) => warn!(error = %e, "an unreadable message on the cluster bus was skipped"),
            }
        }
    }

    fn deliver_heard(&self, from: &str, post: Heard<'_>) {
        match post {
            Heard::To { conn, event } => {
                let link = self.local(&conn);
                if link.is_none() && self.parking(&conn) == Parking::No {
                    return;
                }
                let Some(event) = decode(event) else { return };
                let attached = link.is_some();
                let sent = link.map_or(Err(Undelivered::Gone), |link| link.send(&event));
                match sent {
                    Ok(()) => {}
                    Err(Undelivered::Gone) if self.park_event(&conn, event, attached) => {}
                    Err(e) => debug!(conn_id = %conn, error = %e, "an event from another instance was not delivered"),
                }
            }
            Heard::ToMany { conns, event } => {
                let links: Vec<_> = conns.iter().filter_map(|conn| self.local(conn)).collect();
                if let Some(event) = links.first().and_then(|_| decode(event)) {
                    for link in links {
                        if let Err(e) = link.send(&event) {
                            debug!(conn_id = %link.id(), error = %e, "an event from another instance was not delivered");
                        }
                    }
                }
            }
            Heard::Group { group, except, event } => {
                if self.groups.len(&group) > 0
                    && let Some(event) = decode(event)
                {
                    self.broadcast_here(&group, &event, except.as_ref());
                }
            }
            Heard::Close { conn } => {
                if let Some(link) = self.local(&conn) {
                    link.close();
                }
            }
            Heard::Dissolve { group } => self.groups.dissolve(&group),
            Heard::Count { group, count } => self.tally.set(group, from, count),
            Heard::Counts { counts } => {
                for (group, count) in counts {
                    self.tally.set(group, from, count);
                }
            }
        }
    }

    fn broadcast_here(&self, group: &Group, event: &Event, except: Option<&ConnId>) -> usize {
        let mut sent = 0;
        for conn in self.groups.members(group) {
            if Some(&conn) == except {
                continue;
            }
            let Some(link) = self.local(&conn) else { continue };
            match link.send(event) {
                Ok(()) => sent += 1,
                Err(e) => debug!(conn_id = %conn, %group, error = %e, "a broadcast was not delivered"),
            }
        }
        sent
    }

    async fn post(&self, post: Post<'_>) -> Result<(), DeliveryError> {
        let Some(bus) = &self.bus else { return Ok(()) };
        let message = serde_json::to_string(&Outgoing { from: &self.instance, post }).map_err(|e| {
            warn!(error = %e, "an event could not be encoded for the cluster bus");
            DeliveryError::Unavailable
        })?;
        bus.publish(message).await.map_err(|e| {
            debug!(error = %e, "publishing to the other instances failed");
            DeliveryError::Unavailable
        })
    }
}

/// Logs a notification that did not reach `peer`.
fn log_undelivered(peer: &ConnId, sent: Result<(), DeliveryError>) {
    match sent {
        Ok(()) => {}
        // A Redis outage is logged once by the upkeep task, not once per message;
        // a peer that has just gone is ordinary churn (its own leave is announced).
        Err(e @ (DeliveryError::Unavailable | DeliveryError::Gone)) => {
            debug!(conn_id = %peer, error = %e, "notification not delivered")
        }
        Err(e) => warn!(conn_id = %peer, error = %e, "notification not delivered"),
    }
}
