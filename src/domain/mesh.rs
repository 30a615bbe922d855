//! Organization mesh coordination (seed 000): the clients of one
//! organization, who is stale, and who coordinates as temporary admin.
//!
//! Plain rules over plain values; time is passed in (Unix milliseconds).
//! The election follows seed 000: candidates are clients with an admin
//! capability; priority is the number of capabilities plus bonuses
//! (`location.view` +5, `admin.manage` +10, `server.temporary` +3); the
//! earlier join wins a tie. A client with [`MAIN_ADMIN`] is a main admin
//! device: while one is connected it is the admin, and no temporary admin
//! is elected (seed 000's "graceful handoff").

use std::sync::Arc;

use super::ConnId;
use super::ids::string_newtype;

/// The capability of a main admin device.
pub const MAIN_ADMIN: &str = "admin.main";
/// Capabilities that make a client a candidate for temporary admin.
pub const ADMIN_CAPABILITIES: [&str; 3] = [MAIN_ADMIN, "admin.manage", "server.temporary"];
/// Capabilities one client may declare.
pub const MAX_CAPABILITIES: usize = 32;
/// Longest capability, id or name, in characters.
pub const MAX_MESH_ID: usize = 128;

string_newtype!(
    /// An organization's id: 1 to 128 letters, digits, `-`, `_`, `.`.
    OrgId
);
string_newtype!(
    /// A mesh client's id: 1 to 128 letters, digits, `-`, `_`, `.`.
    ClientId
);

/// Why a mesh value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// An id breaks the id rule.
    #[error("must be 1 to {MAX_MESH_ID} letters, digits, '-', '_' or '.'")]
    Id,
    /// A capability breaks its rule.
    #[error("must be at most {MAX_CAPABILITIES} comma-separated names of letters, digits, '-', '_' or '.'")]
    Capabilities,
    /// A coordinate is out of range.
    #[error("{0}")]
    Location(&'static str),
}

fn id_ok(raw: &str) -> bool {
    (1..=MAX_MESH_ID).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl OrgId {
    /// Parses a wire string.
    pub fn parse(raw: &str) -> Result<Self, MeshError> {
        id_ok(raw).then(|| Self(Arc::from(raw))).ok_or(MeshError::Id)
    }
}

impl ClientId {
    /// Parses a wire string (`broadcast` is reserved for peer messages to everyone).
    pub fn parse(raw: &str) -> Result<Self, MeshError> {
        (id_ok(raw) && raw != "broadcast").then(|| Self(Arc::from(raw))).ok_or(MeshError::Id)
    }
}

super::ids::deserialize_by_parse!(OrgId, ClientId);

/// Parses seed 000's comma list of capabilities (duplicates dropped, order kept).
pub fn parse_capabilities(raw: &str) -> Result<Vec<String>, MeshError> {
    let mut out: Vec<String> = Vec::new();
    for cap in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !id_ok(cap) {
            return Err(MeshError::Capabilities);
        }
        if !out.iter().any(|c| c == cap) {
            out.push(cap.to_owned());
        }
    }
    if out.len() > MAX_CAPABILITIES {
        return Err(MeshError::Capabilities);
    }
    Ok(out)
}

/// A position a client shares (`location-update`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    /// Degrees, -90 to 90.
    pub latitude: f64,
    /// Degrees, -180 to 180.
    pub longitude: f64,
    /// Metres, 0 to 100 000.
    pub accuracy: f64,
}

impl Location {
    /// A location within range.
    pub fn new(latitude: f64, longitude: f64, accuracy: f64) -> Result<Self, MeshError> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(MeshError::Location("latitude must be a number from -90 to 90"));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(MeshError::Location("longitude must be a number from -180 to 180"));
        }
        if !(0.0..=100_000.0).contains(&accuracy) {
            return Err(MeshError::Location("accuracy must be a number of metres from 0 to 100000"));
        }
        Ok(Self { latitude, longitude, accuracy })
    }
}

/// A connected client as the election sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The client.
    pub id: ClientId,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// When it joined (Unix ms): the earlier wins a tie.
    pub joined_at: u64,
}

impl Candidate {
    /// Whether it may be elected: it has an admin capability.
    pub fn is_candidate(&self) -> bool {
        self.capabilities.iter().any(|c| ADMIN_CAPABILITIES.contains(&c.as_str()))
    }

    /// Whether it is a main admin device.
    pub fn is_main_admin(&self) -> bool {
        self.capabilities.iter().any(|c| c == MAIN_ADMIN)
    }

    /// Seed 000's priority: the number of capabilities plus the bonuses.
    pub fn priority(&self) -> u32 {
        let bonus = |c: &str| match c {
            "location.view" => 5,
            "admin.manage" => 10,
            "server.temporary" => 3,
            _ => 0,
        };
        self.capabilities.len() as u32 + self.capabilities.iter().map(|c| bonus(c)).sum::<u32>()
    }
}

/// Who should be the organization's admin among `clients`: a main admin if
/// one is connected (the earliest), else the candidate of highest priority,
/// the earlier join winning a tie (then the smaller id, so the choice is total).
pub fn elect(clients: &[Candidate]) -> Option<&Candidate> {
    let order = |a: &&Candidate, b: &&Candidate| {
        a.priority().cmp(&b.priority()).then_with(|| b.joined_at.cmp(&a.joined_at)).then_with(|| b.id.cmp(&a.id))
    };
    let mains = clients.iter().filter(|c| c.is_main_admin());
    let earliest_main = mains.min_by(|a, b| a.joined_at.cmp(&b.joined_at).then_with(|| a.id.cmp(&b.id)));
    earliest_main.or_else(|| clients.iter().filter(|c| c.is_candidate()).max_by(order))
}

/// Whether a client last seen at `last_seen` is stale at `now` after `timeout`.
pub fn is_stale(last_seen: u64, now: u64, timeout: u64) -> bool {
    last_seen.saturating_add(timeout) <= now
}

/// A connected mesh client, as every instance sees it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeshClient {
    /// Its id in the organization.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// Declared capabilities.
    pub capabilities: Vec<String>,
    /// When it joined (Unix ms).
    pub joined_at: u64,
    /// Its last heartbeat or message (Unix ms).
    pub last_seen: u64,
    /// The instance holding its connection.
    pub instance: String,
    /// Its connection there.
    pub conn: ConnId,
}

impl MeshClient {
    /// As the election sees it.
    pub fn candidate(&self) -> Candidate {
        Candidate { id: self.id.clone(), capabilities: self.capabilities.clone(), joined_at: self.joined_at }
    }
}

/// Who holds an organization's admin seat.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdminSeat {
    /// The admin client.
    pub client: ClientId,
    /// The instance holding the admin's connection (it renews the lease).
    pub instance: String,
    /// Whether it is a main admin device (not a temporary admin).
    pub main: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, caps: &str, joined_at: u64) -> Candidate {
        Candidate { id: ClientId::parse(id).unwrap(), capabilities: parse_capabilities(caps).unwrap(), joined_at }
    }

    #[test]
    fn priority_is_the_capability_count_plus_the_seed_s_bonuses() {
        assert_eq!(c("a", "", 0).priority(), 0);
        assert_eq!(c("a", "location.share", 0).priority(), 1);
        assert_eq!(c("a", "location.view", 0).priority(), 1 + 5);
        assert_eq!(c("a", "admin.manage", 0).priority(), 1 + 10);
        assert_eq!(c("a", "server.temporary", 0).priority(), 1 + 3);
        assert_eq!(c("a", "admin.manage,location.view,server.temporary,chat", 0).priority(), 4 + 10 + 5 + 3);
        assert_eq!(c("a", "admin.manage, admin.manage", 0).priority(), 11, "duplicates count once");
    }

    #[test]
    fn the_highest_priority_candidate_wins_and_the_earlier_join_breaks_a_tie() {
        let clients = [
            c("viewer", "location.view,location.share", 1), // not a candidate: 7
            c("temp", "server.temporary,location.view", 2), // 2 + 3 + 5 = 10
            c("manager", "admin.manage", 3),                // 11
            c("late-manager", "admin.manage", 4),           // 11, joined later
        ];
        assert_eq!(elect(&clients).unwrap().id.as_str(), "manager");
        assert_eq!(elect(&clients[..3]).unwrap().id.as_str(), "manager");
        assert_eq!(elect(&clients[..2]).unwrap().id.as_str(), "temp");
        assert_eq!(elect(&clients[..1]), None, "no admin capability, no admin");
        let tie = [c("b", "admin.manage", 5), c("a", "admin.manage", 5)];
        assert_eq!(elect(&tie).unwrap().id.as_str(), "a", "same join time: the smaller id");
    }

    #[test]
    fn a_main_admin_is_the_admin_whatever_the_priorities() {
        let clients = [c("manager", "admin.manage,location.view,server.temporary", 1), c("boss", "admin.main", 9)];
        assert_eq!(elect(&clients).unwrap().id.as_str(), "boss");
    }

    #[test]
    fn ids_capabilities_and_locations_are_validated() {
        assert!(OrgId::parse("org_456").is_ok());
        assert_eq!(OrgId::parse(""), Err(MeshError::Id));
        assert_eq!(ClientId::parse("broadcast"), Err(MeshError::Id));
        assert_eq!(ClientId::parse("a b"), Err(MeshError::Id));
        assert_eq!(parse_capabilities("ok,not ok"), Err(MeshError::Capabilities));
        assert!(Location::new(40.7, -74.0, 10.0).is_ok());
        assert!(Location::new(91.0, 0.0, 1.0).is_err());
        assert!(Location::new(0.0, 181.0, 1.0).is_err());
        assert!(Location::new(0.0, 0.0, -1.0).is_err());
        assert!(Location::new(f64::NAN, 0.0, 1.0).is_err());
    }

    #[test]
    fn a_client_is_stale_once_silent_for_the_timeout() {
        assert!(!is_stale(1_000, 30_999, 30_000));
        assert!(is_stale(1_000, 31_000, 30_000));
    }
}
