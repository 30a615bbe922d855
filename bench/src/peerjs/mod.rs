//! PeerJS peers, against switchboard's PeerJS endpoint or the reference
//! server `peer` (peerjs-server 1.0.2), both serving at `--path` (`/peerjs`)
//! with key `--key` (`peerjs`).
//!
//! - `peerjs-idle` ([`idle`]): N peers open `{path}/peerjs?key=&id=&token=`,
//!   get `OPEN`, and send `HEARTBEAT` every 5 s as the client library does;
//!   the server's RSS per peer.
//! - `peerjs-relay` ([`relay`]): K pairs send each other `CANDIDATE` frames
//!   at a sweep of rates ([`crate::sweep`]); delivered relays per second,
//!   latency, and the knee.
//!
//! A peer is a [`RawClient`] (plain WebSocket frames; WebSocket pings, which
//! only switchboard sends, are answered on the next read). How many peers a
//! server holds is read from `GET {path}/{key}/peers`, which both servers
//! answer when discovery is allowed (`--allow_discovery`,
//! `PEERJS_ALLOW_DISCOVERY=true`).

pub mod duplex;
pub mod idle;
pub mod relay;

use std::time::Duration;

use crate::args::Args;
use crate::raw::RawClient;
use crate::sio::{Error, STEP_TIMEOUT};
use crate::sweep::{Seen, relay_fields};

/// What the client library sends every [`HEARTBEAT_EVERY`] to stay alive.
pub const HEARTBEAT: &str = r#"{"type":"HEARTBEAT"}"#;
/// The client library's `pingInterval`.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// The client library version sent in the query, as peerjs 1.5 does.
const VERSION: &str = "1.5.4";

/// Where the PeerJS server listens.
#[derive(Clone)]
pub struct Endpoint {
    addr: String,
    path: String,
    key: String,
}

impl Endpoint {
    /// `--addr`, `--path` (`/peerjs`) and `--key` (`peerjs`).
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let path: String = args.get("path", "/peerjs".to_owned())?;
        Ok(Self {
            addr: args.addr(),
            path: path.trim_end_matches('/').to_owned(),
            key: args.get("key", "peerjs".into())?,
        })
    }

    /// The WebSocket path and query a client of `id` with `token` opens.
    pub fn socket_path(&self, id: &str, token: &str) -> String {
        format!("{}/peerjs?key={}&id={id}&token={token}&version={VERSION}", self.path, self.key)
    }

    /// Opens a peer and waits for `OPEN`; any other first frame is an error.
    pub async fn open(&self, id: &str, token: &str) -> Result<RawClient, Error> {
        let mut client = RawClient::open(&self.addr, &self.socket_path(id, token)).await?;
        let first = tokio::time::timeout(STEP_TIMEOUT, client.text())
            .await
            .map_err(|_| format!("{id}: no OPEN within 30 s"))?;
        match first {
            Some(text) if has_type(&text, "OPEN") => Ok(client),
            Some(text) => Err(format!("{id}: {text:.200}").into()),
            None => Err(format!("{id}: closed before OPEN").into()),
        }
    }

    /// How many peers the server lists (`GET {path}/{key}/peers`); `None` if it does not say.
    pub async fn listed(&self) -> Option<u64> {
        let v = crate::http::get_json(&self.addr, &format!("{}/{}/peers", self.path, self.key)).await.ok()?;
        v.as_array().map(|ids| ids.len() as u64)
    }
}

/// A peer id shaped like the UUIDs the server hands out: `tag` tells the
/// scenario's peers apart, `i` numbers them.
pub fn peer_id(tag: u32, i: usize) -> String {
    format!("{tag:08x}-0000-4000-8000-{i:012x}")
}

/// A token like the client library's (`Math.random().toString(36).slice(2)`: 11 characters).
pub fn token(i: usize) -> String {
    format!("{:011x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20)
}

/// Whether a server frame has `"type":"<ty>"` anywhere (key order is the
/// server's: a relayed frame's payload may carry its own `type`, `data` or
/// `media`, never a message type).
pub fn has_type(text: &str, ty: &str) -> bool {
    text.match_indices("\"type\":\"")
        .any(|(at, m)| text[at + m.len()..].strip_prefix(ty).is_some_and(|r| r.starts_with('"')))
}

/// One incoming frame of the relay sweep: a relayed `CANDIDATE`, an
/// `ERROR` (rate limited), `EXPIRE` or `LEAVE` (the partner was not there),
/// which count as refused, or anything else.
pub fn read(text: &str) -> Seen {
    if has_type(text, "CANDIDATE") {
        relay_fields(text)
    } else if ["ERROR", "EXPIRE", "LEAVE"].iter().any(|ty| has_type(text, ty)) {
        Seen::Refused
    } else {
        Seen::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_is_the_client_librarys() {
        let args =
            Args::parse(["peerjs-idle", "--addr", "127.0.0.1:9", "--path", "/peerjs/"].map(String::from).into_iter());
        let endpoint = Endpoint::from_args(&args.unwrap()).unwrap();
        assert_eq!(endpoint.socket_path("abc", "t1"), "/peerjs/peerjs?key=peerjs&id=abc&token=t1&version=1.5.4");
        assert_eq!(peer_id(0xa, 17), "0000000a-0000-4000-8000-000000000011");
        assert_eq!(peer_id(0xa, 17).len(), 36);
        assert_eq!(token(3).len(), 11);
        assert_ne!(token(3), token(4));
    }

    #[test]
    fn server_frames_are_told_apart_in_any_key_order() {
        assert!(has_type(r#"{"type":"OPEN"}"#, "OPEN"));
        assert!(!has_type(r#"{"type":"OPENED"}"#, "OPEN") && !has_type("{}", "OPEN"));
        assert!(has_type(r#"{"payload":{"msg":"ID is taken"},"type":"ID-TAKEN"}"#, "ID-TAKEN"));
        let relayed = r#"{"type":"CANDIDATE","src":"a","dst":"b","payload":{"candidate":{"candidate":"x","sdpMid":"0"},"type":"data","connectionId":"dc_1","k":2,"s":7,"t":99}}"#;
        assert!(matches!(read(relayed), Seen::Relay { k: 2, s: 7, t: 99 }));
        let sorted = r#"{"dst":"b","payload":{"connectionId":"dc_1","k":2,"s":7,"t":99,"type":"data"},"src":"a","type":"CANDIDATE"}"#;
        assert!(matches!(read(sorted), Seen::Relay { k: 2, s: 7, t: 99 }));
        assert!(matches!(read(r#"{"type":"ERROR","payload":{"msg":"rate limited"}}"#), Seen::Refused));
        assert!(matches!(read(r#"{"type":"EXPIRE","src":"b","dst":"a"}"#), Seen::Refused));
        assert!(matches!(read(r#"{"type":"OPEN"}"#), Seen::Other));
    }
}
