//! Groups: named sets of connections that hear the same broadcasts (a
//! directory channel's subscribers, an organization, its location viewers,
//! those waiting on a join request). Membership is kept per instance; a
//! broadcast reaches the members on every instance through the cluster bus
//! ([`super::courier`]). Connections of any protocol can be members.

use std::fmt;

use dashmap::DashMap;

use crate::domain::mesh::{ClientId, OrgId};
use crate::domain::{ConnId, RoomId, UserId};

/// A group's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Directory => f.write_str("dir"),
            Group::Channel(name) => write!(f, "ch:{name}"),
            Group::Waiting(room, user) => write!(f, "req:{}:{}", room.as_str().len(), format_args!("{room}:{user}")),
            Group::Org(org) => write!(f, "org:{org}"),
            Group::Client(org, client) => write!(f, "org:{org}:client:{client}"),
            Group::Viewers(org) => write!(f, "org:{org}:viewers"),
        }
    }
}

/// This instance's group memberships.
#[derive(Default)]
pub struct Groups {
    members: DashMap<String, Vec<ConnId>>,
    of: DashMap<ConnId, Vec<String>>,
}

impl Groups {
    /// Adds `conn` to `group` (once).
    pub fn join(&self, group: &Group, conn: &ConnId) {
        let key = group.to_string();
        let mut members = self.members.entry(key.clone()).or_default();
        if members.contains(conn) {
            return;
        }
        members.push(conn.clone());
        drop(members);
        self.of.entry(conn.clone()).or_default().push(key);
    }

    /// Removes `conn` from `group`; whether it was a member.
    pub fn leave(&self, group: &Group, conn: &ConnId) -> bool {
        let key = group.to_string();
        let left = self.remove_member(&key, conn);
        if let Some(mut groups) = self.of.get_mut(conn) {
            groups.retain(|g| *g != key);
        }
        self.of.remove_if(conn, |_, groups| groups.is_empty());
        left
    }

    /// Removes `conn` from every group (it has closed).
    pub fn leave_all(&self, conn: &ConnId) {
        let Some((_, groups)) = self.of.remove(conn) else { return };
        for key in groups {
            self.remove_member(&key, conn);
        }
    }

    /// Empties `group` on this instance.
    pub fn dissolve(&self, group: &str) {
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
        self.members.get(&group.to_string()).is_some_and(|m| m.contains(conn))
    }

    /// How many of `conn`'s groups `matches` accepts.
    pub fn count_of(&self, conn: &ConnId, matches: impl Fn(&str) -> bool) -> usize {
        self.of.get(conn).map_or(0, |groups| groups.iter().filter(|g| matches(g)).count())
    }

    /// The members of `group` on this instance.
    pub fn members(&self, group: &str) -> Vec<ConnId> {
        self.members.get(group).map(|m| m.clone()).unwrap_or_default()
    }

    fn remove_member(&self, key: &str, conn: &ConnId) -> bool {
        let mut left = false;
        if let Some(mut members) = self.members.get_mut(key) {
            let before = members.len();
            members.retain(|c| c != conn);
            left = members.len() != before;
        }
        self.members.remove_if(key, |_, members| members.is_empty());
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
        assert_eq!(groups.members("ch:news"), [c("a"), c("b")]);
        assert!(groups.contains(&org, &c("a")) && !groups.contains(&org, &c("b")));
        assert_eq!(groups.count_of(&c("a"), |g| g.starts_with("ch:")), 1);
        assert!(groups.leave(&news, &c("b")) && !groups.leave(&news, &c("b")));
        groups.leave_all(&c("a"));
        assert!(groups.members("ch:news").is_empty() && groups.members("org:acme").is_empty());
        assert!(groups.members.is_empty() && groups.of.is_empty(), "nothing kept for gone connections");
    }

    #[test]
    fn a_dissolved_group_forgets_its_members() {
        let groups = Groups::default();
        let waiting = Group::Waiting(RoomId::parse("r").unwrap(), UserId::parse("u").unwrap());
        groups.join(&waiting, &c("a"));
        groups.dissolve(&waiting.to_string());
        assert!(!groups.contains(&waiting, &c("a")) && groups.of.is_empty());
    }

    #[test]
    fn group_names_cannot_collide_across_kinds() {
        let a = Group::Waiting(RoomId::parse("a:b").unwrap(), UserId::parse("c").unwrap());
        let b = Group::Waiting(RoomId::parse("a").unwrap(), UserId::parse("b:c").unwrap());
        assert_ne!(a.to_string(), b.to_string());
    }
}
