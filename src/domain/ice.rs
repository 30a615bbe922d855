//! ICE servers for clients, with short-lived TURN credentials.
//!
//! The TURN REST scheme of coturn's `use-auth-secret`: the username is
//! `expiry:userId` (expiry in Unix seconds), the credential is
//! base64(HMAC-SHA1(secret, username)). coturn recomputes the credential from
//! the shared secret and refuses a username whose expiry has passed, so
//! switchboard and coturn share only the secret and never a user list.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;

use super::ids::UserId;

/// Which ICE servers to hand out.
#[derive(Clone, PartialEq, Eq)]
pub struct IceConfig {
    /// `stun:` / `stuns:` URLs.
    pub stun: Vec<String>,
    /// `turn:` / `turns:` URLs.
    pub turn: Vec<String>,
    /// The secret shared with coturn (`static-auth-secret`).
    pub turn_secret: Option<String>,
    /// How long a TURN credential stays valid.
    pub turn_ttl: Duration,
}

impl fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun", &self.stun)
            .field("turn", &self.turn)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<redacted>"))
            .field("turn_ttl", &self.turn_ttl)
            .finish()
    }
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct IceServer {
    /// The server URLs.
    pub urls: Vec<String>,
    /// TURN username (`expiry:userId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What `/api/ice-servers` and the `ice-servers` event carry.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    /// For `new RTCPeerConnection({ iceServers })`.
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid.
    pub ttl_seconds: u64,
}

impl IceConfig {
    /// The ICE servers for `user` (if known), with credentials valid from `now`.
    pub fn servers_for(&self, user: Option<&UserId>, now: SystemTime) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.stun.is_empty() {
            ice_servers.push(IceServer { urls: self.stun.clone(), username: None, credential: None });
        }
        if let (false, Some(secret)) = (self.turn.is_empty(), &self.turn_secret) {
            let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.turn_ttl;
            let username = match user {
                Some(user) => format!("{}:{user}", expiry.as_secs()),
                None => expiry.as_secs().to_string(),
            };
            let credential = turn_credential(secret, &username);
            ice_servers.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        IceServers { ice_servers, ttl_seconds: self.turn_ttl.as_secs() }
    }
}

/// base64(HMAC-SHA1(secret, username)), coturn's `use-auth-secret` credential.
pub fn turn_credential(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IceConfig {
        IceConfig {
            stun: vec!["stun:stun.example.org:3478".into()],
            turn: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: Some("north".into()),
            turn_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_credential_matches_a_known_hmac_sha1_vector() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?")
        // = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79, here in base64.
        assert_eq!(turn_credential("Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn the_username_is_expiry_then_user() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let alice = UserId::parse("alice").unwrap();
        let servers = config().servers_for(Some(&alice), now);
        assert_eq!(servers.ttl_seconds, 3600);
        assert_eq!(servers.ice_servers[0].username, None, "STUN has no credentials");
        let turn = &servers.ice_servers[1];
        assert_eq!(turn.username.as_deref(), Some("1700003600:alice"));
        assert_eq!(turn.credential.as_deref(), Some(turn_credential("north", "1700003600:alice").as_str()));
        let anonymous = config().servers_for(None, now);
        assert_eq!(anonymous.ice_servers[1].username.as_deref(), Some("1700003600"));
    }

    #[test]
    fn nothing_configured_means_an_empty_list_and_the_secret_never_prints() {
        let none = IceConfig { stun: vec![], turn: vec![], turn_secret: None, turn_ttl: Duration::from_secs(60) };
        assert!(none.servers_for(None, SystemTime::now()).ice_servers.is_empty());
        assert!(!format!("{:?}", config()).contains("north"));
    }
}
