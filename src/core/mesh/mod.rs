//! Organization mesh (seed 000): clients of one organization see each other,
//! exchange messages and locations, and an admin is elected among them
//! ([`election`]). Organizations are isolated: each is a group
//! ([`Group::Org`]), and no event crosses. A client id connecting again
//! turns its older connection out.
//!
//! Must not import `transport`, nor any socket.io or HTTP crate (as all of `core`).

pub mod election;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde_json::Value;
use tracing::info;

use super::event::{ClientView, Event};
use super::groups::Group;
use super::{Core, CoreError};
use crate::domain::mesh::{ClientId, Location, MeshClient, OrgId};
use crate::domain::{ConnId, RoomError, now_ms};

/// The capability that lets a client see locations.
pub const VIEW_LOCATION: &str = "location.view";

/// A mesh client connected to this instance.
pub struct Member {
    /// Its organization.
    pub org: OrgId,
    /// Its record.
    pub client: MeshClient,
    /// Last heartbeat or event (Unix ms), for the stale-client check.
    last_seen: AtomicU64,
}

impl Member {
    /// Its connection.
    pub fn conn(&self) -> &ConnId {
        &self.client.conn
    }
}

/// This instance's mesh clients, by connection.
#[derive(Default)]
pub struct Members(DashMap<ConnId, Arc<Member>>);

/// Where a peer message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// Every other client of the organization.
    Everyone,
    /// One client.
    Client(ClientId),
}

/// The mesh operations (a view over [`Core`]).
pub struct Mesh<'a>(pub(super) &'a Arc<Core>);

impl Mesh<'_> {
    /// Records `client` in `org` on its connection and makes it reachable;
    /// the client's older connection, if any, to turn out once this one is up.
    pub async fn join(&self, org: OrgId, client: MeshClient) -> Result<(Arc<Member>, Option<MeshClient>), CoreError> {
        let core = self.0;
        // Known here first, so a reconcile meanwhile does not take the new
        // record for a ghost; forgotten again if the store fails.
        let now = client.last_seen;
        let member = Arc::new(Member { org: org.clone(), client: client.clone(), last_seen: AtomicU64::new(now) });
        core.mesh_members.0.insert(member.conn().clone(), member.clone());
        let old = match core.stores.mesh.join(&org, client.clone()).await {
            Ok(old) => old,
            Err(e) => {
                core.mesh_members.0.remove_if(member.conn(), |_, m| Arc::ptr_eq(m, &member));
                return Err(core.reported(e, "mesh connect").into());
            }
        };
        let groups = &core.courier.groups;
        groups.join(&Group::Org(org.clone()), &client.conn);
        groups.join(&Group::Client(org.clone(), client.id.clone()), &client.conn);
        if client.capabilities.iter().any(|c| c == VIEW_LOCATION) {
            groups.join(&Group::Viewers(org.clone()), &client.conn);
        }
        let old = old.filter(|old| old.conn != member.client.conn);
        Ok((member, old))
    }

    /// Once connected: the older connection turned out, the new list to the
    /// organization, the admin's heartbeat to the newcomer, and a main admin
    /// takes the seat.
    pub async fn connected(&self, member: &Member, replaced: Option<MeshClient>) {
        let core = self.0;
        info!(conn_id = %member.conn(), org_id = %member.org, client_id = %member.client.id, "mesh client connected");
        if let Some(old) = replaced {
            core.courier.close(&old.conn).await;
        }
        self.client_list(&member.org, None).await;
        if let Ok(Some(seat)) = core.stores.mesh.admin(&member.org).await {
            let beat = Event::AdminHeartbeat { admin: seat.client, timestamp: now_ms() };
            let _ = core.courier.send(member.conn(), &beat).await;
        }
        if member.client.candidate().is_main_admin() {
            self.take_seat(&member.org, &member.client, true).await;
        }
    }

    /// Puts this instance's members back where Redis lost them (or survivors
    /// dropped them), deletes records of its connections that are gone, and
    /// sends each organization it put members back in its list again; how
    /// many records changed. The election loop fills empty admin seats.
    pub async fn restore(&self) -> Result<usize, crate::store::StoreError> {
        let core = self.0;
        let members: Vec<Arc<Member>> = core.mesh_members.0.iter().map(|e| e.value().clone()).collect();
        let (mut restored, mut touched) = (0, std::collections::BTreeSet::new());
        for member in &members {
            let mut client = member.client.clone();
            client.last_seen = member.last_seen.load(Ordering::Relaxed);
            if core.stores.mesh.restore(&member.org, client).await? {
                restored += 1;
                touched.insert(member.org.clone());
            }
        }
        // And the other way: records of this instance's connections that are gone.
        let live = |org: &OrgId, client: &crate::domain::mesh::ClientId, conn: &ConnId| {
            core.mesh_members.0.get(conn).is_some_and(|m| &m.org == org && &m.client.id == client)
        };
        let pruned = core.stores.mesh.prune(&live).await?;
        for org in &touched {
            self.client_list(org, None).await;
        }
        Ok(restored + pruned)
    }

    /// Any event from a member: it is alive.
    pub fn seen(&self, member: &Member) -> u64 {
        let now = now_ms();
        member.last_seen.store(now, Ordering::Relaxed);
        now
    }

    /// `heartbeat`: the member's record is refreshed cluster-wide.
    pub async fn heartbeat(&self, member: &Member) -> Result<u64, CoreError> {
        let (core, now) = (self.0, self.seen(member));
        let touched = core.stores.mesh.touch(&member.org, &member.client.id, member.conn(), now).await;
        touched.map_err(|e| core.reported(e, "heartbeat"))?;
        Ok(now)
    }

    /// The organization's clients, to the organization or to one connection.
    pub async fn client_list(&self, org: &OrgId, to: Option<&ConnId>) {
        let core = self.0;
        let clients = match core.stores.mesh.clients(org).await {
            Ok(clients) => clients,
            Err(e) => return drop(core.reported(e, "client-list-update")),
        };
        let clients = clients
            .into_iter()
            .map(|c| ClientView { id: c.id, name: c.name, capabilities: c.capabilities, last_seen: c.last_seen })
            .collect();
        let list = Event::ClientList { clients };
        let _ = match to {
            Some(conn) => core.courier.send(conn, &list).await,
            None => core.courier.broadcast(&Group::Org(org.clone()), &list, None).await,
        };
    }

    /// `location-update`: to the organization's location viewers but the sender.
    pub async fn location(&self, member: &Member, at: Location) -> Result<(), CoreError> {
        let timestamp = self.seen(member);
        let update = Event::LocationUpdate {
            client: member.client.id.clone(),
            latitude: at.latitude,
            longitude: at.longitude,
            accuracy: at.accuracy,
            timestamp,
        };
        let viewers = Group::Viewers(member.org.clone());
        Ok(self.0.courier.broadcast(&viewers, &update, Some(member.conn())).await?)
    }

    /// `peer-message`: to one client of the organization, or to everyone else.
    pub async fn message(&self, member: &Member, to: Recipient, message: Value) -> Result<(), CoreError> {
        let core = self.0;
        let timestamp = self.seen(member);
        let org = &member.org;
        let group = match to {
            Recipient::Everyone => Group::Org(org.clone()),
            Recipient::Client(id) => {
                let known = core.stores.mesh.clients(org).await.map_err(|e| core.reported(e, "peer-message"))?;
                if !known.iter().any(|c| c.id == id) {
                    return Err(RoomError::TargetNotFound.into());
                }
                Group::Client(org.clone(), id)
            }
        };
        let from_name = member.client.name.clone();
        let out = Event::PeerMessage { from: member.client.id.clone(), from_name, message, timestamp };
        Ok(core.courier.broadcast(&group, &out, Some(member.conn())).await?)
    }

    /// The member's connection closed: it leaves (unless a newer connection
    /// holds its id), gives up the admin seat, and the organization is told.
    pub async fn leave(&self, member: &Member) {
        let core = self.0;
        core.mesh_members.0.remove_if(member.conn(), |_, m| std::ptr::eq(&**m, member));
        let (org, id) = (&member.org, &member.client.id);
        match core.stores.mesh.leave(org, id, member.conn()).await {
            Ok(true) => {
                if let Ok(true) = core.stores.mesh.release_admin(org, id).await {
                    info!(org_id = %org, admin_id = %id, "the admin left: an election follows");
                }
                self.client_list(org, None).await;
            }
            Ok(false) => {}
            Err(e) => drop(core.reported(e, "mesh disconnect")),
        }
    }
}
