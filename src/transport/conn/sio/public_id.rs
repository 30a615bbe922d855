//! A connection's public id: what logs, peers, workers and the stores see.
//!
//! It is not the engine.io session id: for the polling transport that sid is
//! a bearer credential (whoever knows it can poll the connection's messages
//! and post in its name), so it never leaves the engine. The public id is
//! derived from it with a keyed hash under a key drawn at start-up: the same
//! for every namespace of one engine.io connection, unique in practice
//! across a cluster (the sids are random), and no way back to the sid.

use std::sync::OnceLock;

use base64::Engine;
use hmac::{Hmac, Mac};

use crate::domain::ConnId;

/// The process's key, drawn once.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

/// The public id of the connection whose engine.io session id is `sid`.
pub fn public_id(sid: &str) -> ConnId {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key()).expect("HMAC takes keys of any length");
    mac.update(sid.as_bytes());
    let digest = mac.finalize().into_bytes();
    ConnId::new(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_id_is_stable_per_session_and_is_not_the_session_id() {
        let (a, b) = ("Qx3c8Zc1mKq0bQAAAAAB", "Qx3c8Zc1mKq0bQAAAAAC");
        assert_eq!(public_id(a), public_id(a), "every namespace of one connection");
        assert_ne!(public_id(a), public_id(b));
        assert!(!public_id(a).as_str().contains(a) && public_id(a).as_str().len() == 16);
    }
}
