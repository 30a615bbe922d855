//! Who a mesh client says it is, and its admission into its organization,
//! for both transports of seed 000: `/mesh` over socket.io (query or auth)
//! and the raw WebSocket at `/` (query only). One rule for both, so the
//! token bounds a raw client exactly as a socket.io one: with `JWT_SECRET`
//! set the client id must be the token's user, and the token's
//! `organizationId` and `capabilities` claims bound what it may join and
//! declare (both required unless `MESH_OPEN_WITH_JWT=true`).

use std::sync::Arc;

use crate::core::mesh::Member;
use crate::domain::mesh::{self, ClientId, MeshClient, OrgId};
use crate::domain::room::MAX_NAME_CHARS;
use crate::domain::{ConnId, now_ms};
use crate::state::AppState;
use crate::transport::conn::admission::Admitted;
use crate::transport::conn::auth::TokenScope;
use crate::transport::wire::error::Refused;

/// Who a mesh client says it is.
pub struct Identity {
    /// Its organization.
    pub org: OrgId,
    /// Its client id.
    pub id: ClientId,
    /// Its display name (its id when it gives none).
    pub name: String,
    /// Its declared capabilities.
    pub capabilities: Vec<String>,
}

impl Identity {
    /// The handshake's organization and client, read with `field`
    /// (`organizationId`, `clientId`, `clientName`, `capabilities`), within
    /// the token's bounds (its scope claims required unless `open`,
    /// `MESH_OPEN_WITH_JWT`).
    pub fn read(field: impl Fn(&str) -> Option<String>, admitted: &Admitted, open: bool) -> Result<Self, Refused> {
        let org = field("organizationId").ok_or(Refused::Missing("organizationId"))?;
        let org = OrgId::parse(&org).map_err(|e| Refused::Invalid("organizationId", e.to_string()))?;
        let id = field("clientId").ok_or(Refused::Missing("clientId"))?;
        let id = ClientId::parse(&id).map_err(|e| Refused::Invalid("clientId", e.to_string()))?;
        let capabilities = field("capabilities").unwrap_or_default();
        let capabilities =
            mesh::parse_capabilities(&capabilities).map_err(|e| Refused::Invalid("capabilities", e.to_string()))?;
        let name = field("clientName").unwrap_or_else(|| id.as_str().to_owned());
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            let rule = format!("must be at most {MAX_NAME_CHARS} characters, without control characters");
            return Err(Refused::Invalid("clientName", rule));
        }
        let identity = Self { org, id, name, capabilities };
        identity.within(admitted, open)?;
        Ok(identity)
    }

    /// Whether the token (if any) lets this identity in.
    fn within(&self, admitted: &Admitted, open: bool) -> Result<(), Refused> {
        if let Some(user) = &admitted.user
            && user.as_str() != self.id.as_str()
        {
            return Err(Refused::NotTokenUser("clientId", user.as_str().to_owned()));
        }
        if let Some(TokenScope(scope)) = &admitted.scope {
            let scope = scope.clone()?;
            if let Some(claim) = scope.missing_claim().filter(|_| !open) {
                return Err(Refused::MissingClaim(claim));
            }
            if !scope.allows_organization(self.org.as_str()) {
                return Err(Refused::OrganizationNotAllowed(self.org.as_str().to_owned()));
            }
            if let Some(cap) = scope.forbidden_capability(&self.capabilities) {
                return Err(Refused::CapabilityNotAllowed(cap.to_owned()));
            }
        }
        Ok(())
    }

    /// Joins the organization on connection `conn`: the member, and the
    /// client's older connection to turn out once this one is up.
    pub async fn join(self, state: &AppState, conn: ConnId) -> Result<(Arc<Member>, Option<MeshClient>), Refused> {
        let Self { org, id, name, capabilities } = self;
        let now = now_ms();
        let instance = state.core.instance.to_string();
        let client = MeshClient { id, name, capabilities, joined_at: now, last_seen: now, instance, conn };
        Ok(state.core.mesh().join(org, client).await?)
    }
}
