//! Rooms with a host (seed 001): their metadata, join requests the host
//! approves or rejects (or that lapse), display names.

use std::time::SystemTime;

use super::{Member, Room, RoomError};
use crate::domain::ids::{ConnId, RoomId, UserId};

/// Longest room name, host name or user display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest room description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A room's optional metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomMeta {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The host's display name.
    pub host: String,
    /// The host's user id (a participant while the room has any).
    pub host_id: UserId,
    /// Whether a seat needs the host's approval.
    pub requires_approval: bool,
    /// Users the host let in, kept while the room lives.
    pub approved: Vec<UserId>,
    /// Display names given when joining, by user (participants only).
    pub names: Vec<(UserId, String)>,
    /// Join requests waiting for the host: who, and until when (Unix ms).
    pub requests: Vec<(UserId, u64)>,
}

/// Most join requests one room keeps waiting at once.
pub const MAX_PENDING_REQUESTS: usize = 64;

/// What became of a join request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Waiting for the host, until the deadline.
    Pending,
    /// Already waiting: the first request and its deadline stand (the host
    /// is not asked again).
    StillPending,
    /// The room needs no approval, or the user is already let in.
    Approved,
}

impl RoomMeta {
    /// The display name of `user`: the one it gave, else its id.
    pub fn name_of(&self, user: &UserId) -> String {
        self.names.iter().find(|(u, _)| u == user).map_or_else(|| user.as_str().to_owned(), |(_, n)| n.clone())
    }
}

impl Room {
    /// A new room with metadata, its host seated on `conn`.
    pub fn create(id: RoomId, created_at: SystemTime, meta: RoomMeta, conn: &ConnId) -> Self {
        let host = Member::new(meta.host_id.clone(), conn.clone());
        Self { id, created_at, members: vec![host], meta: Some(meta) }
    }

    /// The metadata, if the room has any.
    pub fn meta(&self) -> Option<&RoomMeta> {
        self.meta.as_ref()
    }

    /// Records `user`'s request to join at `now_ms`, waiting until `deadline_ms`.
    pub fn request(&mut self, user: &UserId, now_ms: u64, deadline_ms: u64) -> Result<Request, RoomError> {
        let meta = self.meta.as_mut().ok_or(RoomError::NoSuchRoom)?;
        if !meta.requires_approval || &meta.host_id == user || meta.approved.contains(user) {
            return Ok(Request::Approved);
        }
        if meta.requests.iter().any(|(u, deadline)| u == user && *deadline > now_ms) {
            return Ok(Request::StillPending);
        }
        // Requests past their deadline are dropped here too, whoever expires them.
        meta.requests.retain(|(u, deadline)| u != user && *deadline > now_ms);
        if meta.requests.len() >= MAX_PENDING_REQUESTS {
            return Err(RoomError::TooManyRequests);
        }
        meta.requests.push((user.clone(), deadline_ms));
        Ok(Request::Pending)
    }

    /// The host's answer to `user`'s waiting request, if `by` holds the
    /// host's seat: approved users may take a seat from now on.
    pub fn decide(&mut self, by: &ConnId, user: &UserId, approve: bool) -> Result<(), RoomError> {
        let host = self.meta.as_ref().map(|m| m.host_id.clone()).ok_or(RoomError::NotHost)?;
        if self.seat_of(&host) != Some(by) {
            return Err(RoomError::NotHost);
        }
        let meta = self.meta.as_mut().ok_or(RoomError::NotHost)?;
        let at = meta.requests.iter().position(|(u, _)| u == user).ok_or(RoomError::NoRequest)?;
        meta.requests.remove(at);
        if approve && !meta.approved.contains(user) {
            meta.approved.push(user.clone());
        }
        Ok(())
    }

    /// Drops `user`'s request if it is still waiting at `now_ms` past its
    /// deadline; whether it did (the request then counts as rejected).
    pub fn expire_request(&mut self, user: &UserId, now_ms: u64) -> bool {
        let Some(meta) = self.meta.as_mut() else { return false };
        let before = meta.requests.len();
        meta.requests.retain(|(u, deadline)| u != user || *deadline > now_ms);
        before != meta.requests.len()
    }

    /// Records the display name `user` gave (rooms with metadata only).
    pub fn name_user(&mut self, user: &UserId, name: &str) {
        let is_member = self.seat_of(user).is_some();
        if let Some(meta) = self.meta.as_mut().filter(|_| is_member) {
            meta.names.retain(|(u, _)| u != user);
            meta.names.push((user.clone(), name.to_owned()));
        }
    }
}
