//! Scenario `peerjs-relay`: K pairs of PeerJS peers (ids `a`/`b` of pair i),
//! both sides sending the other `CANDIDATE` frames at R a second per sender,
//! for a sweep of R ([`crate::sweep`]), heartbeats every 5 s meanwhile.
//!
//! A frame is what the client library sends for an ICE candidate of a data
//! connection, `{type: 'CANDIDATE', payload: {candidate, type, connectionId},
//! dst}`, with the step (`k`), sequence number (`s`) and send time (`t`)
//! added to the payload; the server relays it as `{type, src, dst,
//! payload}`. `ERROR` (rate limited), `EXPIRE` and `LEAVE` frames count as
//! refused. Each peer reads and writes apart ([`super::duplex`]), as a
//! browser does (`--split false`: inline, one blocked write stops its reads).
//!
//! The knee is the highest offered rate, below the first one that fails this
//! test, at which the server delivered at least 95 % of it within the step,
//! lost, refused and reordered nothing, and kept p99 latency at or under
//! `--p99-bound-ms` (100).

use futures_util::FutureExt;
use serde_json::{Value, json};

use super::duplex::Duplex;
use super::{Endpoint, HEARTBEAT, HEARTBEAT_EVERY, peer_id, read, token};
use crate::args::Args;
use crate::relay::CANDIDATE;
use crate::sio::Error;
use crate::sweep::{Peer, Settings, sweep};

/// The tags of the two sides' ids.
const SIDES: [u32; 2] = [0x5e1a_000a, 0x5e1a_000b];

/// Runs the sweep and returns its JSON line.
pub async fn run(args: &Args) -> Result<String, Error> {
    let pairs: usize = args.get("pairs", 50)?;
    let bound: f64 = args.get("p99-bound-ms", 100.0)?;
    let split: bool = args.get("split", true)?;
    let settings = Settings::from_args(args)?;
    let endpoint = Endpoint::from_args(args)?;
    let open = |i: usize| {
        let endpoint = endpoint.clone();
        async move {
            let (pair, side) = (i / 2, i % 2);
            let (me, partner) = (peer_id(SIDES[side], pair), peer_id(SIDES[1 - side], pair));
            let wire = Duplex::new(endpoint.open(&me, &token(i)).await?, split);
            Ok(Peer { wire, frame: candidates(pair, partner), read, keepalive: Some((HEARTBEAT_EVERY, HEARTBEAT)) })
        }
        .boxed()
    };
    let rule = |step: &Value, offered: f64| sustained(step, offered, bound);
    let mut out = sweep(pairs * 2, args.server_pid()?, &settings, open, rule).await?;
    out["scenario"] = json!("peerjs-relay");
    out["label"] = json!(args.label());
    out["pairs"] = json!(pairs);
    out["stepSecs"] = json!(settings.secs);
    out["p99BoundMs"] = json!(bound);
    out["split"] = json!(split);
    Ok(out.to_string())
}

/// The `CANDIDATE` frames one side of pair `pair` sends `partner`: relay `s`
/// of step `k`, sent at `t`.
fn candidates(pair: usize, partner: String) -> Box<dyn Fn(u64, u64, u128) -> String + Send> {
    let payload = format!(
        r#"{{"type":"CANDIDATE","payload":{{"candidate":{{"candidate":"{CANDIDATE}","sdpMLineIndex":0,"sdpMid":"0","usernameFragment":"EsAw"}},"type":"data","connectionId":"dc_{pair:010x}","#
    );
    Box::new(move |k, s, t| format!(r#"{payload}"k":{k},"s":{s},"t":{t}}},"dst":"{partner}"}}"#))
}

/// The knee rule (see the module documentation).
fn sustained(step: &Value, offered: f64, p99_bound_ms: f64) -> bool {
    let delivered = step["deliveredPerSec"].as_f64().unwrap_or(0.0);
    let p99 = step["latencyMs"]["p99"].as_f64().unwrap_or(f64::INFINITY);
    let none = |field: &str| step[field] == json!(0);
    delivered >= 0.95 * offered && none("lost") && none("refused") && none("outOfOrder") && p99 <= p99_bound_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_frame_is_the_client_librarys_with_the_sequence_fields_and_reads_back() {
        let text = candidates(3, "b".into())(2, 41, 123_456);
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((frame["type"].as_str(), frame["dst"].as_str()), (Some("CANDIDATE"), Some("b")));
        assert_eq!(frame["payload"]["candidate"]["candidate"].as_str(), Some(CANDIDATE));
        assert_eq!(
            (frame["payload"]["type"].as_str(), frame["payload"]["connectionId"].as_str()),
            (Some("data"), Some("dc_0000000003"))
        );
        assert_eq!(
            (&frame["payload"]["k"], &frame["payload"]["s"], &frame["payload"]["t"]),
            (&json!(2), &json!(41), &json!(123_456))
        );
        // As the server relays it: src added, dst kept.
        let relayed = format!(r#"{{"type":"CANDIDATE","src":"a","dst":"b","payload":{}}}"#, frame["payload"]);
        assert!(matches!(read(&relayed), crate::sweep::Seen::Relay { k: 2, s: 41, t: 123_456 }));
    }

    #[test]
    fn a_step_is_sustained_only_when_whole_unrefused_in_order_and_under_the_bound() {
        let step = |per_sec: f64, refused: u64, p99: f64| json!({ "deliveredPerSec": per_sec, "lost": 0, "refused": refused, "outOfOrder": 0, "latencyMs": { "p99": p99 } });
        assert!(sustained(&step(960.0, 0, 100.0), 1000.0, 100.0));
        assert!(!sustained(&step(940.0, 0, 1.0), 1000.0, 100.0));
        assert!(!sustained(&step(1000.0, 1, 1.0), 1000.0, 100.0));
        assert!(!sustained(&step(1000.0, 0, 100.5), 1000.0, 100.0));
        assert!(!sustained(&json!({ "deliveredPerSec": 1000.0 }), 1000.0, 100.0), "no figures, not sustained");
    }
}
