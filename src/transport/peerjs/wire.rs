//! PeerJS's frames as peerjs-server 1.0.2 writes them: `{"type":"OPEN"}`,
//! `{"type":"ERROR","payload":{"msg":…}}`, `{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}`,
//! and relays `{type, src, dst, payload}` (the domain's [`PeerMessage`]);
//! what a client sends (`{type, dst, payload}`), read leniently: whatever is
//! not a message the server acts on is ignored, as peerjs-server does.

use serde::Serialize;
use serde_json::Value;

use crate::domain::peerjs::{Forwarded, PeerId, PeerMessage};
use crate::transport::wire::error::Refused;

/// The info `GET {path}/` answers (peerjs-server's `app.json`).
#[derive(Serialize)]
pub struct Info {
    name: &'static str,
    description: &'static str,
    website: &'static str,
}

/// peerjs-server's info, word for word.
pub const INFO: Info = Info {
    name: "PeerJS Server",
    description: "A server side element to broker connections between PeerJS clients.",
    website: "https://peerjs.com/",
};

#[derive(Serialize)]
struct Msg<'a> {
    msg: &'a str,
}

#[derive(Serialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Msg<'a>>,
}

fn frame(kind: &'static str, msg: Option<&str>) -> String {
    serde_json::to_string(&Frame { kind, payload: msg.map(|msg| Msg { msg }) }).unwrap_or_default()
}

/// `{"type":"OPEN"}`.
pub fn open() -> String {
    frame("OPEN", None)
}

/// `{"type":"ERROR","payload":{"msg":…}}`.
pub fn error(msg: &str) -> String {
    frame("ERROR", Some(msg))
}

/// What a refused connection gets before its close: `ID-TAKEN`, or `ERROR`
/// in peerjs-server's words (a token refusal is its "Invalid token provided").
pub fn refusal(refused: &Refused) -> String {
    match refused {
        Refused::IdTaken => frame("ID-TAKEN", Some("ID is taken")),
        Refused::Unauthorized(_) | Refused::NotTokenUser(..) => error("Invalid token provided"),
        other => error(&other.to_string()),
    }
}

/// A relay as written.
pub fn relay(message: &PeerMessage) -> Option<String> {
    serde_json::to_string(message).ok()
}

/// What a client frame asks.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// `HEARTBEAT`: the client is alive.
    Heartbeat,
    /// A message to forward (its `src` is the connection's id).
    Forward(PeerMessage),
    /// `LEAVE` without `dst`: the client gives its id up.
    Unregister,
    /// Anything else (not JSON, no or unknown `type`, no valid `dst`): ignored.
    Ignored(&'static str),
}

/// Reads a client frame from the peer `src`.
pub fn inbound(text: &str, src: &PeerId) -> Inbound {
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
        return Inbound::Ignored("not a JSON object");
    };
    let Some(kind) = frame.get("type").and_then(Value::as_str) else { return Inbound::Ignored("no type") };
    if kind == "HEARTBEAT" {
        return Inbound::Heartbeat;
    }
    let Some(kind) = Forwarded::parse(kind) else { return Inbound::Ignored("a type the server does not forward") };
    let dst = match frame.get("dst") {
        None | Some(Value::Null) if kind == Forwarded::Leave => return Inbound::Unregister,
        Some(Value::String(dst)) => PeerId::parse(dst),
        _ => return Inbound::Ignored("no dst"),
    };
    let Ok(dst) = dst else { return Inbound::Ignored("a dst that is no valid id") };
    Inbound::Forward(PeerMessage { kind, src: src.clone(), dst, payload: frame.remove("payload") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    #[test]
    fn server_frames_are_peerjs_servers_bytes() {
        assert_eq!(open(), r#"{"type":"OPEN"}"#);
        assert_eq!(refusal(&Refused::IdTaken), r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#);
        assert_eq!(refusal(&Refused::PeerJsKey), r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#);
        assert_eq!(
            refusal(&Refused::PeerJsParameters),
            r#"{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}}"#
        );
        assert_eq!(
            refusal(&Refused::Unauthorized(crate::transport::wire::error::AuthError::Missing)),
            r#"{"type":"ERROR","payload":{"msg":"Invalid token provided"}}"#
        );
        assert_eq!(
            refusal(&Refused::ConcurrentLimit),
            r#"{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}"#
        );
    }

    #[test]
    fn client_frames_are_read_as_peerjs_server_reads_them() {
        let me = id("me");
        let offer = inbound(r#"{"type":"OFFER","dst":"you","src":"forged","payload":{"sdp":"x"},"extra":1}"#, &me);
        let want = PeerMessage {
            kind: Forwarded::Offer,
            src: me.clone(),
            dst: id("you"),
            payload: Some(serde_json::json!({"sdp": "x"})),
        };
        assert_eq!(offer, Inbound::Forward(want), "src is the server's; extra fields go");
        assert_eq!(inbound(r#"{"type":"HEARTBEAT"}"#, &me), Inbound::Heartbeat);
        assert_eq!(inbound(r#"{"type":"LEAVE"}"#, &me), Inbound::Unregister);
        assert!(matches!(inbound(r#"{"type":"LEAVE","dst":"you"}"#, &me), Inbound::Forward(m) if m.payload.is_none()));
        for ignored in [
            "nope",
            "[1]",
            r#"{"dst":"you"}"#,
            r#"{"type":"OPEN","dst":"you"}"#,
            r#"{"type":"OFFER"}"#,
            r#"{"type":"OFFER","dst":7}"#,
        ] {
            assert!(matches!(inbound(ignored, &me), Inbound::Ignored(_)), "{ignored}");
        }
    }
}
