//! JWT authentication (HS256 with `JWT_SECRET`), for the socket.io handshake
//! and the REST routes that reveal rooms or users.
//!
//! A token comes from the handshake's `auth.token`, an `Authorization: Bearer`
//! header, or a `token` query parameter. `exp` is required and checked, and
//! `nbf` checked when present, with [`LEEWAY_SECONDS`] of leeway for clock skew; `aud` and `iss` are required and
//! checked when `JWT_AUDIENCE` / `JWT_ISSUER` are set. Only HS256 is accepted.
//! The token's user is its `sub`, or, for tokens as seed 004's server issues
//! them (`jwt.sign({ id })`), its `id` when `sub` is absent (a string or a
//! number). It is the only `userId` the connection may join rooms as, and
//! the only user its TURN credentials name. Without `JWT_SECRET` the server is
//! open, and says so at start-up.

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::Value;

use crate::config::JwtConfig;
use crate::domain::UserId;
use crate::domain::presence::NetworkAccess;
use crate::transport::wire::error::AuthError;

/// Seconds a token may be past its `exp` and still be accepted.
pub const LEEWAY_SECONDS: u64 = 30;

/// The user a verified token names, kept in the socket's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub UserId);

/// The claims that bound what a token's user may say of itself on `/mesh`.
/// `/mesh` requires both ([`Scope::missing_claim`]) unless
/// `MESH_OPEN_WITH_JWT=true`, where a missing one bounds nothing (the user may
/// join any organization with any capabilities, as in seed 000). Read only
/// where they matter: a token whose other claims are malformed still works
/// everywhere else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Scope {
    /// `organizationId`: the organizations the user may join.
    #[serde(default, rename = "organizationId", deserialize_with = "list_claim")]
    pub organizations: Option<Vec<String>>,
    /// `capabilities`: those the user may declare.
    #[serde(default, deserialize_with = "list_claim")]
    pub capabilities: Option<Vec<String>>,
}

impl Scope {
    /// Whether the user may join `org`.
    pub fn allows_organization(&self, org: &str) -> bool {
        self.organizations.as_ref().is_none_or(|orgs| orgs.iter().any(|o| o == org))
    }

    /// The first of the claims `/mesh` requires that the token lacks, if any.
    pub fn missing_claim(&self) -> Option<&'static str> {
        match (&self.organizations, &self.capabilities) {
            (None, _) => Some("organizationId"),
            (_, None) => Some("capabilities"),
            _ => None,
        }
    }

    /// The first of `declared` the user may not declare, if any.
    pub fn forbidden_capability<'a>(&self, declared: &'a [String]) -> Option<&'a str> {
        let allowed = self.capabilities.as_ref()?;
        declared.iter().find(|c| !allowed.contains(c)).map(String::as_str)
    }
}

/// A verified token's [`Scope`], kept in the socket's extensions; a malformed
/// scope claim (`null` included) is an error, refused where the scope is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenScope(pub Result<Scope, AuthError>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrList {
    One(String),
    List(Vec<String>),
}

/// A list claim: a list of strings, or one string as a comma list (no
/// organization id or capability holds a comma). Called for present claims
/// only (a missing one is `None` by `default`), so `null` is malformed.
fn list_claim<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(OneOrList::deserialize(d)?.into_list()))
}

impl OneOrList {
    fn into_list(self) -> Vec<String> {
        match self {
            OneOrList::One(list) => {
                list.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
            }
            OneOrList::List(list) => list,
        }
    }
}

/// The networks a token may use: with `DEVICE_NETWORK_CLAIM` (`claim`) set,
/// those its claim names (a string, a comma list, or an array of strings);
/// a token without the claim, or with a malformed one, names none.
fn networks(other: &serde_json::Map<String, Value>, claim: Option<&str>) -> NetworkAccess {
    let Some(claim) = claim else { return NetworkAccess::Any };
    let named = other.get(claim).and_then(|v| OneOrList::deserialize(v).ok());
    NetworkAccess::Only(named.map(OneOrList::into_list).unwrap_or_default().into())
}

/// A user claim: a string, or a number (seed 004's `id` may be either).
#[derive(Deserialize)]
#[serde(untagged)]
enum UserClaim {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Deserialize)]
struct Claims {
    /// The user; required unless `id` names it.
    sub: Option<String>,
    /// The user of a token as seed 004's server issues them (`req.user.id`), when `sub` is absent.
    id: Option<UserClaim>,
    /// Required (by the validation, which then names it): a connection is closed when its token expires.
    exp: Option<u64>,
    /// Every other claim, for [`Scope`].
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// What a verified token says beyond its user: read once per connection or request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user it names (`sub`).
    pub user: UserId,
    /// Its `/mesh` claims.
    pub scope: TokenScope,
    /// The networks it may use (`DEVICE_NETWORK_CLAIM`).
    pub networks: NetworkAccess,
    /// Its `exp` (Unix seconds).
    pub expires: u64,
}

/// Verifies `token`, returning the user it names, its [`Scope`], the
/// networks its `network_claim` (`DEVICE_NETWORK_CLAIM`) names and its `exp`.
pub fn verify_scoped(token: &str, jwt: &JwtConfig, network_claim: Option<&str>) -> Result<Verified, AuthError> {
    let (user, expires, other) = verify_claims(token, jwt)?;
    let networks = networks(&other, network_claim);
    let scope = serde_json::from_value::<Scope>(Value::Object(other))
        .map_err(|_| AuthError::Invalid("the token's organizationId or capabilities claim is malformed".into()));
    Ok(Verified { user, scope: TokenScope(scope), networks, expires })
}

type Checked = (UserId, u64, serde_json::Map<String, Value>);

fn verify_claims(token: &str, jwt: &JwtConfig) -> Result<Checked, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    // jsonwebtoken checks `aud` and `iss` only when the token has them, unless
    // they are required: a configured one must be present.
    // `sub` is required too, unless `id` stands for it (checked below).
    let mut required = vec!["exp"];
    match &jwt.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(iss) = &jwt.issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    let key = DecodingKey::from_secret(jwt.secret.0.as_bytes());
    let claims = decode::<Claims>(token, &key, &validation).map_err(|e| AuthError::Invalid(describe(&e)))?.claims;
    let (name, user) = match (claims.sub, claims.id) {
        (Some(sub), _) => ("sub", sub),
        (None, Some(UserClaim::Text(id))) => ("id", id),
        (None, Some(UserClaim::Number(id))) => ("id", id.to_string()),
        (None, None) => return Err(AuthError::Invalid("the token has no sub claim (nor id)".into())),
    };
    let user = UserId::parse(&user).map_err(|e| AuthError::Invalid(format!("{name} {e}")))?;
    Ok((user, claims.exp.unwrap_or_default(), claims.other))
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".into(),
        _ => "the token is malformed".into(),
    }
}

/// The token of a request: `auth.token`, then `Authorization: Bearer`, then `?token=`.
pub fn token_from(auth: Option<&Value>, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_auth = auth.and_then(|a| a.get("token")).and_then(Value::as_str).map(str::to_owned);
    let from_header = || {
        let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
    };
    let from_query = || crate::transport::wire::query::param(query, "token").map(str::to_owned);
    from_auth.or_else(from_header).or_else(from_query).filter(|t| !t.is_empty())
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
