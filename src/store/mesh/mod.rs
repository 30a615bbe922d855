//! Mesh clients and admin seats behind one trait (seed 000): which clients
//! each organization has (cluster-wide), and who holds its admin seat.
//!
//! The admin seat is a lease held for an instance: the instance holding the
//! admin's connection renews it; if that instance dies the lease runs out and
//! another instance elects a new admin. Engines: [`memory::MemoryMesh`] (one
//! instance) and [`redis::RedisMesh`]; both pass `suite.rs`. Times are Unix
//! milliseconds, passed in.
//!
//! Must not import `core`, `transport`, `cluster` or `state` (as all of `store`).

pub mod memory;
pub mod redis;
#[cfg(test)]
mod suite;

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ConnId;
use crate::domain::mesh::{AdminSeat, ClientId, MeshClient, OrgId};

/// Clients and admin seats: the operations the `/mesh` namespace needs.
#[async_trait]
pub trait MeshStore: Send + Sync + 'static {
    /// Records `client` in `org` (replacing an older connection of the same id).
    async fn join(&self, org: &OrgId, client: MeshClient) -> Result<Option<MeshClient>, StoreError>;

    /// Puts `client` back in `org` unless its id is there (Redis lost it, or
    /// this instance was taken for dead); whether it did.
    async fn restore(&self, org: &OrgId, client: MeshClient) -> Result<bool, StoreError>;

    /// Deletes the clients this instance registered whose connection `live`
    /// says is gone (a connect answered `unavailable` that Redis applied
    /// anyway); how many. The memory engine cannot disagree.
    async fn prune(
        &self,
        live: &(dyn for<'x> Fn(&'x OrgId, &'x ClientId, &'x ConnId) -> bool + Sync),
    ) -> Result<usize, StoreError> {
        let _ = live;
        Ok(0)
    }

    /// Deletes the clients a dead instance left (cluster mode; the memory
    /// engine has no other instances); how many. Stops if it is alive again.
    async fn forget_instance(&self, dead: &str) -> Result<usize, StoreError> {
        let _ = dead;
        Ok(0)
    }

    /// Refreshes `client`'s last-seen time, if `conn` still holds it.
    async fn touch(&self, org: &OrgId, client: &ClientId, conn: &ConnId, now: u64) -> Result<(), StoreError>;

    /// Removes `client` from `org` if `conn` still holds it; whether it did.
    async fn leave(&self, org: &OrgId, client: &ClientId, conn: &ConnId) -> Result<bool, StoreError>;

    /// The clients of `org` whose instance is alive, earliest join first.
    async fn clients(&self, org: &OrgId) -> Result<Vec<MeshClient>, StoreError>;

    /// The admin seat of `org`, if its lease runs.
    async fn admin(&self, org: &OrgId) -> Result<Option<AdminSeat>, StoreError>;

    /// Takes the seat for `seat` for `ttl` if it is empty, or replaces a
    /// temporary admin when `seat` is a main admin; whether `seat` holds it now.
    async fn claim_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError>;

    /// Renews the lease if `seat` holds it; whether it does.
    async fn renew_admin(&self, org: &OrgId, seat: &AdminSeat, ttl: Duration) -> Result<bool, StoreError>;

    /// Empties the seat if `client` holds it; whether it did.
    async fn release_admin(&self, org: &OrgId, client: &ClientId) -> Result<bool, StoreError>;
}
