//! The mesh in this process's memory (one instance).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::MeshStore;
use crate::domain::ConnId;
use crate::domain::mesh::{AdminSeat, ClientId, MeshClient, OrgId};
use crate::store::StoreError;

/// Mesh state in this process's memory.
#[derive(Default)]
pub struct MemoryMesh {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    orgs: HashMap<OrgId, Vec<MeshClient>>,
    /// Seat and lease deadline (an `Instant`-free deadline in ms since the store's epoch).
    admins: HashMap<OrgId, (AdminSeat, Instant)>,
}

impl MemoryMesh {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MeshStore for MemoryMesh {
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError> {
        let mut state = self.lock();
        let clients = state.orgs.entry(org.clone()).or_default();
        let old = clients.iter().position(|c| c.id == client.id).map(|at| clients.remove(at));
        clients.push(client);
        Ok(old)
    }

    async fn restore(&self, org: &OrgId, client: MeshClient) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let clients = state.orgs.entry(org.clone()).or_default();
        if clients.iter().any(|c| c.id == client.id) {
            return Ok(false);
        }
        clients.push(client);
        Ok(true)
    }

    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &ConnId, now: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(c) =
            state.orgs.get_mut(org).and_then(|cs| cs.iter_mut().find(|c| &c.id == client && &c.conn == conn))
        {
            c.last_seen = c.last_seen.max(now);
        }
        Ok(())
    }

    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &ConnId) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(clients) = state.orgs.get_mut(org) else { return Ok(false) };
        let before = clients.len();
        clients.retain(|c| !(&c.id == client && &c.conn == conn));
        let left = before != clients.len();
        if clients.is_empty() {
            state.orgs.remove(org);
        }
        Ok(left)
    }

    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError> {
        Ok(self.lock().orgs.get(org).cloned().unwrap_or_default())
    }

    async fn admin(&self, org: &OrgId) -> Result<Option<AdminSeat>, StoreError> {
        let state = self.lock();
        Ok(state.admins.get(org).filter(|(_, until)| *until > Instant::now()).map(|(s, _)| s.clone()))
    }

    async fn claim_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let current = state.admins.get(org).filter(|(_, until)| *until > now).map(|(s, _)| s.clone());
        let free = match &current {
            None => true,
            Some(held) => held == seat || (seat.main && !held.main),
        };
        if free {
            state.admins.insert(org.clone(), (seat.clone(), now + ttl));
        }
        Ok(free)
    }

    async fn renew_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        match state.admins.get_mut(org) {
            Some((held, until)) if held == seat && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_admin(&self, org: &OrgId, client: &ClientId) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.admins.get(org).is_some_and(|(s, _)| &s.client == client) {
            state.admins.remove(org);
            return Ok(true);
        }
        Ok(false)
    }
}
