//! Groups: named sets of connections that hear the same broadcasts (a
//! directory channel's subscribers, an organization, its location viewers,
//! those waiting on a join request, a y-webrtc topic's subscribers). Membership is kept per instance; a
//! broadcast reaches the members on every instance through the cluster bus
//! ([`super::courier`]). Connections of any protocol can be members.

use std::fmt;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::domain::mesh::{ClientId, OrgId};
use crate::domain::{ConnId, RoomId, UserId};

/// A group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Group {
    /// Every directory (`/dashboard`) client: they hear the client count.
    Directory,
    /// The subscribers of a directory channel.
    Channel(String),
    /// Whoever waits on `user`'s request to join `room`.
    Waiting(RoomId, UserId),
    /// An organization's clients.
    Org(OrgId),
    /// One client of an organization (its connections).
    Client(OrgId, ClientId),
    /// An organization's clients allowed to see locations.
    Viewers(OrgId),
    /// The subscribers of a publish/subscribe topic (y-webrtc's rooms).
    Topic(String),
}

impl fmt::Display for Group {
    /// For logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Directory => f.write_str("directory"),
            Group::Channel(name) => write!(f, "channel {name:?}"),
            Group::Waiting(room, user) => write!(f, "waiting on {user:?} in {room:?}"),
            Group::Org(org) => write!(f, "organization {org:?}"),
            Group::Client(org, client) => write!(f, "client {client:?} of {org:?}"),
            Group::Viewers(org) => write!(f, "location viewers of {org:?}"),
            Group::Topic(name) => write!(f, "topic {name:?}"),
        }
    }
}

/// This instance's group memberships: each group's members, and each
/// connection's groups (so a closed connection leaves all of them at once).
/// A join holds its group's entry while it records the connection's side,
/// so a dissolve of the group cannot come between the two.
#[derive(Default)]
pub struct Groups {
    members: DashMap<Group, Vec<ConnId>>,
    of: DashMap<ConnId, Vec<Group>>,
}

impl Groups {
    /// Adds `conn` to `group` (once).
    pub fn join(&self, group: &Group, conn: &ConnId) {
        let mut members = self.members.entry(group.clone()).or_default();
        if members.contains(conn) {
            return;
        }
        members.push(conn.clone());
        self.of.entry(conn.clone()).or_default().push(group.clone());
    }

    /// Removes `conn` from `group`; whether it was a member.
    pub fn leave(&self, group: &Group, conn: &ConnId) -> bool {
        let left = self.remove_member(group, conn);
        if let Some(mut groups) = self.of.get_mut(conn) {
            groups.retain(|g| g != group);
        }
        self.of.remove_if(conn, |_, groups| groups.is_empty());
        left
    }

    /// Removes `conn` from every group (it has closed); the groups it left.
    pub fn leave_all(&self, conn: &ConnId) -> Vec<Group> {
        let Some((_, groups)) = self.of.remove(conn) else { return Vec::new() };
        for group in &groups {
            self.remove_member(group, conn);
        }
        groups
    }

    /// Empties `group` on this instance.
    pub fn dissolve(&self, group: &Group) {
        let Some((_, members)) = self.members.remove(group) else { return };
        for conn in members {
            if let Some(mut groups) = self.of.get_mut(&conn) {
                groups.retain(|g| g != group);
            }
            self.of.remove_if(&conn, |_, groups| groups.is_empty());
        }
    }

    /// Whether `conn` is in `group`.
    pub fn contains(&self, group: &Group, conn: &ConnId) -> bool {
        self.members.get(group).is_some_and(|m| m.contains(conn))
    }

    /// How many of `conn`'s groups `matches` accepts.
    pub fn count_of(&self, conn: &ConnId, matches: impl Fn(&Group) -> bool) -> usize {
        self.of.get(conn).map_or(0, |groups| groups.iter().filter(|g| matches(g)).count())
    }

    /// Every group `matches` accepts that has members here.
    pub fn all(&self, matches: impl Fn(&Group) -> bool) -> Vec<Group> {
        self.members.iter().filter(|e| matches(e.key())).map(|e| e.key().clone()).collect()
    }

    /// The members of `group` on this instance.
    pub fn members(&self, group: &Group) -> Vec<ConnId> {
        self.members.get(group).map(|m| m.clone()).unwrap_or_default()
    }

    /// How many members `group` has on this instance.
    pub fn len(&self, group: &Group) -> usize {
        self.members.get(group).map_or(0, |m| m.len())
    }

    fn remove_member(&self, group: &Group, conn: &ConnId) -> bool {
        let mut left = false;
        if let Some(mut members) = self.members.get_mut(group) {
            let before = members.len();
            members.retain(|c| c != conn);
            left = members.len() != before;
        }
        self.members.remove_if(group, |_, members| members.is_empty());
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> ConnId {
        ConnId::new(s)
    }

    #[test]
    fn members_join_once_leave_one_group_or_all_and_an_empty_group_is_dropped() {
        let groups = Groups::default();
        let (news, org) = (Group::Channel("news".into()), Group::Org(OrgId::parse("acme").unwrap()));
        groups.join(&news, &c("a"));
        groups.join(&news, &c("a"));
        groups.join(&news, &c("b"));
        groups.join(&org, &c("a"));
        assert_eq!(groups.members(&news), [c("a"), c("b")]);
        assert_eq!((groups.len(&news), groups.len(&org)), (2, 1));
        assert!(groups.contains(&org, &c("a")) && !groups.contains(&org, &c("b")));
        assert_eq!(groups.count_of(&c("a"), |g| matches!(g, Group::Channel(_))), 1);
        assert_eq!(groups.all(|g| matches!(g, Group::Channel(_))), vec![news.clone()]);
        assert!(groups.leave(&news, &c("b")) && !groups.leave(&news, &c("b")));
        let left = groups.leave_all(&c("a"));
        let channels: Vec<_> = left.into_iter().filter(|g| matches!(g, Group::Channel(_))).collect();
        assert_eq!(channels, vec![news.clone()], "the groups left are told");
        assert!(groups.members(&news).is_empty() && groups.members(&org).is_empty());
        assert!(groups.members.is_empty() && groups.of.is_empty(), "nothing kept for gone connections");
    }

    #[test]
    fn a_dissolved_group_forgets_its_members() {
        let groups = Groups::default();
        let waiting = Group::Waiting(RoomId::parse("r").unwrap(), UserId::parse("u").unwrap());
        groups.join(&waiting, &c("a"));
        groups.dissolve(&waiting);
        assert!(!groups.contains(&waiting, &c("a")) && groups.of.is_empty());
    }

    #[test]
    fn groups_whose_parts_join_alike_stay_apart() {
        let groups = Groups::default();
        let a = Group::Waiting(RoomId::parse("a:b").unwrap(), UserId::parse("c").unwrap());
        let b = Group::Waiting(RoomId::parse("a").unwrap(), UserId::parse("b:c").unwrap());
        assert_ne!(a, b);
        groups.join(&a, &c("x"));
        assert!(!groups.contains(&b, &c("x")));
    }

    #[test]
    fn a_group_crosses_the_bus_as_itself() {
        let group = Group::Client(OrgId::parse("acme").unwrap(), ClientId::parse("phone-1").unwrap());
        let text = serde_json::to_string(&group).unwrap();
        assert_eq!(serde_json::from_str::<Group>(&text).unwrap(), group);
    }
}
