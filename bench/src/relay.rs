//! Scenario `relay`: P pairs of peers, each pair alone in its room, exchange
//! `ice-candidate` relays at R messages a second per sender, for a sweep of R
//! (the pacing, counting and knee are [`crate::sweep`]'s).
//!
//! Each relay carries a realistic candidate plus the step (`k`), a per-sender
//! sequence number (`s`) and the send time (`t`); relays the server refuses
//! come back as `signaling-error` and are counted apart from silent loss.
//!
//! The knee is the highest offered rate, below the first one that fails this
//! test, at which the server delivered at least
//! 95 % of it within the step, lost nothing, reordered nothing, and kept the
//! median latency under 5 ms.

use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::args::Args;
use crate::sio::{Client, Error, Packet, classify};
use crate::sweep::{Peer, Seen, Settings, Wire, relay_fields, sweep};

/// A candidate line of typical size (a server-reflexive candidate).
pub const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 192.0.2.10 50123 typ srflx raddr 10.0.0.2 rport 50123 generation 0 ufrag EsAw network-id 1";

/// Runs the sweep and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let pairs: usize = args.get("pairs", 50)?;
    let settings = Settings::from_args(args)?;
    let addr = args.addr();
    let open = |i: usize| {
        let addr = addr.clone();
        async move {
            let (me, partner) = if i.is_multiple_of(2) { ("a", "b") } else { ("b", "a") };
            let pair = i / 2;
            let (room, user, target) = (format!("p{pair}"), format!("{me}{pair}"), format!("{partner}{pair}"));
            let mut client = Client::connect(&addr).await?;
            client.join(&room, &user).await?;
            let prefix = format!(
                r#"42["ice-candidate",{{"roomId":"{room}","targetId":"{target}","candidate":{{"candidate":"{CANDIDATE}","sdpMid":"0","sdpMLineIndex":0,"#
            );
            let frame = Box::new(move |k, s, t| format!("{prefix}\"k\":{k},\"s\":{s},\"t\":{t}}}}}]"));
            Ok(Peer { wire: client, frame, read, keepalive: None })
        }
        .boxed()
    };
    let mut out = sweep(pairs * 2, args.server_pid()?, &settings, open, sustained).await?;
    out["scenario"] = json!("relay");
    out["label"] = json!(args.label());
    out["pairs"] = json!(pairs);
    out["stepSecs"] = json!(settings.secs);
    Ok(out.to_string())
}

/// The knee rule (see the module documentation).
fn sustained(step: &Value, offered: f64) -> bool {
    let delivered = step["deliveredPerSec"].as_f64().unwrap_or(0.0);
    let p50 = step["latencyMs"]["p50"].as_f64().unwrap_or(f64::INFINITY);
    delivered >= 0.95 * offered && step["lost"] == json!(0) && step["outOfOrder"] == json!(0) && p50 < 5.0
}

/// One incoming frame: a relayed candidate, a refusal, or anything else.
fn read(text: &str) -> Seen {
    match classify(text) {
        Packet::Event(body) if body.starts_with("[\"signaling-error\"") => Seen::Refused,
        Packet::Event(body) if body.starts_with("[\"ice-candidate\"") => relay_fields(body),
        _ => Seen::Other,
    }
}

impl Wire for Client {
    type Text = Utf8Bytes;

    fn recv(&mut self) -> impl Future<Output = Option<Utf8Bytes>> + Send {
        Client::recv(self)
    }

    fn feed(&mut self, frame: String) -> impl Future<Output = Result<(), Error>> + Send {
        Client::feed(self, frame)
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        Client::flush(self)
    }

    fn close(self) -> impl Future<Output = ()> + Send {
        Client::close(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_candidates_refusals_and_the_rest_are_told_apart() {
        let relayed =
            r#"42["ice-candidate",{"roomId":"p1","senderId":"a1","candidate":{"candidate":"x","k":3,"s":41,"t":12}}]"#;
        assert!(matches!(read(relayed), Seen::Relay { k: 3, s: 41, t: 12 }));
        assert!(matches!(read(r#"42["signaling-error",{"code":"target-busy"}]"#), Seen::Refused));
        assert!(matches!(read(r#"42["user-joined",{"userId":"b1"}]"#), Seen::Other));
        assert!(matches!(read("2"), Seen::Other));
    }

    #[test]
    fn a_step_is_sustained_only_when_whole_in_order_and_fast() {
        let step = |per_sec: f64, lost: u64, p50: f64| json!({ "deliveredPerSec": per_sec, "lost": lost, "outOfOrder": 0, "latencyMs": { "p50": p50 } });
        assert!(sustained(&step(960.0, 0, 1.0), 1000.0));
        assert!(!sustained(&step(900.0, 0, 1.0), 1000.0));
        assert!(!sustained(&step(1000.0, 1, 1.0), 1000.0));
        assert!(!sustained(&step(1000.0, 0, 5.0), 1000.0));
    }
}
