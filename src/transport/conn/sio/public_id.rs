//! A connection's public id: what logs, peers, workers and the stores see.
//!
//! It is not the engine.io session id: for the polling transport that sid is
//! a bearer credential (whoever knows it can poll the connection's messages
//! and post in its name), so it never leaves the engine. The public id is
//! derived from it and the namespace with a keyed hash under a key drawn at
//! start-up: one per namespace of an engine.io connection (socketioxide
//! gives every namespace of a connection the same sid, and a page on `/` and
//! `/dashboard` over one connection is two connections to the core), unique in
//! practice across a cluster (the sids are random), and no way back to the sid.

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

/// The public id of namespace `ns`'s connection on engine.io session `sid`.
pub fn public_id(ns: &str, sid: &str) -> ConnId {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key()).expect("HMAC takes keys of any length");
    mac.update(ns.as_bytes());
    mac.update(b"\0");
    mac.update(sid.as_bytes());
    let digest = mac.finalize().into_bytes();
    ConnId::new(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_id_is_stable_per_namespace_of_a_session_and_is_not_the_session_id() {
        let (a, b) = ("Qx3c8Zc1mKq0bQAAAAAB", "Qx3c8Zc1mKq0bQAAAAAC");
        assert_eq!(public_id("/", a), public_id("/", a));
        assert_ne!(public_id("/", a), public_id("/", b));
        assert_ne!(
            public_id("/", a),
            public_id("/dashboard", a),
            "two namespaces of one connection are two connections"
        );
        assert!(!public_id("/", a).as_str().contains(a) && public_id("/", a).as_str().len() == 16);
    }
}
