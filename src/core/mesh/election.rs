//! The admin seat of each organization: a lease in the mesh store, renewed
//! by the instance holding the admin's connection. Each instance ticks
//! ([`run`]): it drops its clients silent for `CLIENT_TIMEOUT`, renews seats
//! it holds, and when an organization's seat has been empty for
//! `ELECTION_DELAY` the instance holding the winner's connection claims it.
//! Every instance computes the same winner from the same store, and a claim
//! only takes an empty seat, so there is one admin per organization. If the
//! admin's instance dies, its lease (`ELECTION_DELAY` long) runs out and a new
//! admin is elected within twice `ELECTION_DELAY` plus a tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{Member, Mesh};
use crate::core::Core;
use crate::core::event::Event;
use crate::core::groups::Group;
use crate::domain::mesh::{self, AdminSeat, MeshClient, OrgId};
use crate::domain::now_ms;

impl Mesh<'_> {
    /// Claims the admin seat for `client` (held for this instance) and tells
    /// the organization; a main admin replaces a temporary one, who is told
    /// it stepped down.
    pub async fn take_seat(&self, org: &OrgId, client: &MeshClient, main: bool) {
        let core = self.0;
        let seat = AdminSeat { client: client.id.clone(), instance: core.instance.to_string(), main };
        let before = core.stores.mesh.admin(org).await.ok().flatten();
        match core.stores.mesh.claim_admin(org, &seat, core.config.mesh.election_delay).await {
            Ok(true) if before.as_ref() != Some(&seat) => {
                let everyone = Group::Org(org.clone());
                if let Some(old) = before {
                    let reason = "main-admin-returned".to_owned();
                    let down = Event::AdminSteppedDown { admin: old.client.clone(), reason, timestamp: now_ms() };
                    let _ = core.courier.broadcast(&everyone, &down, None).await;
                    info!(org_id = %org, admin_id = %old.client, "temporary admin stepped down for a main admin");
                }
                let elected = Event::AdminElected {
                    org: org.clone(),
                    admin: client.id.clone(),
                    priority: client.candidate().priority(),
                    temporary: !main,
                    timestamp: now_ms(),
                };
                let _ = core.courier.broadcast(&everyone, &elected, None).await;
                info!(org_id = %org, admin_id = %client.id, main, "admin elected");
            }
            Ok(_) => {}
            Err(e) => drop(core.reported(e, "admin election")),
        }
    }

    /// Renews a seat this instance holds, or elects when the seat stayed
    /// empty for `ELECTION_DELAY`.
    async fn seat_upkeep(&self, org: &OrgId, local: &[Arc<Member>], empty_since: &mut HashMap<OrgId, Instant>) {
        let core = self.0;
        let delay = core.config.mesh.election_delay;
        match core.stores.mesh.admin(org).await {
            Ok(Some(seat)) => {
                empty_since.remove(org);
                if *seat.instance == *core.instance && local.iter().any(|m| m.client.id == seat.client) {
                    let _ = core.stores.mesh.renew_admin(org, &seat, delay).await;
                }
            }
            Ok(None) => {
                let since = *empty_since.entry(org.clone()).or_insert_with(Instant::now);
                if since.elapsed() < delay {
                    return;
                }
                let clients = match core.stores.mesh.clients(org).await {
                    Ok(clients) => clients,
                    Err(e) => return drop(core.reported(e, "admin election")),
                };
                let candidates: Vec<_> = clients.iter().map(MeshClient::candidate).collect();
                let Some(winner) = mesh::elect(&candidates) else { return };
                // Only the instance holding the winner's connection claims the seat.
                if let Some(member) = local.iter().find(|m| m.client.id == winner.id) {
                    self.take_seat(org, &member.client, winner.is_main_admin()).await;
                }
            }
            Err(e) => drop(core.reported(e, "admin seat")),
        }
    }

    /// `server-heartbeat` to this instance's clients of `org`, and
    /// `admin-heartbeat` to the organization from the admin's instance.
    async fn heartbeats(&self, org: &OrgId) {
        let core = self.0;
        let client_count = core.stores.mesh.clients(org).await.map(|c| c.len()).unwrap_or(0);
        let everyone = Group::Org(org.clone());
        core.courier.broadcast_local(&everyone, &Event::ServerHeartbeat { timestamp: now_ms(), client_count });
        if let Ok(Some(seat)) = core.stores.mesh.admin(org).await
            && *seat.instance == *core.instance
        {
            let beat = Event::AdminHeartbeat { admin: seat.client, timestamp: now_ms() };
            if let Err(e) = core.courier.broadcast(&everyone, &beat, None).await {
                debug!(error = %e, "admin-heartbeat not sent");
            }
        }
    }
}

/// The periodic work of this instance: stale clients, admin seats,
/// elections and heartbeats. Runs until aborted.
pub async fn run(core: Arc<Core>) {
    let config = core.config.mesh.clone();
    let tick = (config.heartbeat_interval.min(config.election_delay).min(config.client_timeout) / 4)
        .max(Duration::from_millis(50));
    let mut ticks = tokio::time::interval(tick);
    let mut empty_since: HashMap<OrgId, Instant> = HashMap::new();
    let mut last_heartbeat = Instant::now();
    loop {
        ticks.tick().await;
        let now = now_ms();
        let heartbeat = last_heartbeat.elapsed() >= config.heartbeat_interval;
        if heartbeat {
            last_heartbeat = Instant::now();
        }
        let mut orgs: HashMap<OrgId, Vec<Arc<Member>>> = HashMap::new();
        let members: Vec<Arc<Member>> = core.mesh_members.0.iter().map(|m| m.value().clone()).collect();
        for member in members {
            let last = member.last_seen.load(Ordering::Relaxed);
            if mesh::is_stale(last, now, config.client_timeout.as_millis() as u64) {
                info!(org_id = %member.org, client_id = %member.client.id, "mesh client silent past CLIENT_TIMEOUT: dropped");
                // Its clean-up leaves the organization.
                if let Some(link) = core.courier.local(member.conn()) {
                    link.close();
                }
                continue;
            }
            orgs.entry(member.org.clone()).or_default().push(member);
        }
        empty_since.retain(|org, _| orgs.contains_key(org));
        let mesh = core.mesh();
        for (org, local) in &orgs {
            mesh.seat_upkeep(org, local, &mut empty_since).await;
            if heartbeat {
                mesh.heartbeats(org).await;
            }
        }
    }
}
