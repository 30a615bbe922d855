//! y-webrtc's frames, read as its reference server (`bin/server.js` of
//! y-webrtc 10.3.0) reads them: a JSON object whose `type` is `subscribe`
//! or `unsubscribe` (with `topics`, an array whose strings are topic
//! names), `publish` (with `topic`, the whole object sent on to the topic's
//! subscribers with `clients` added) or `ping` (answered `{"type":"pong"}`).
//!
//! Anything else is ignored, as the reference ignores it, and so is what
//! would make the reference exit (a frame that is not JSON, `topics` that is
//! neither an array nor absent). Topic names are any string up to
//! [`MAX_TOPIC_BYTES`]; an empty one, a longer one, or one that is not a
//! string is skipped (nothing could be published to it).

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::topics::MAX_TOPIC_BYTES;
use crate::domain::queue::SignalBody;

/// A frame the server acts on.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// Subscribe to these topics.
    Subscribe(Vec<String>),
    /// Unsubscribe from these topics.
    Unsubscribe(Vec<String>),
    /// Send `message` (the whole frame) to the subscribers of `topic`.
    Publish {
        /// The topic.
        topic: String,
        /// The frame as received, `clients` to be set.
        message: Map<String, Value>,
    },
    /// Answer `{"type":"pong"}`.
    Ping,
}

/// Why a frame is ignored (for logs).
#[derive(Debug, PartialEq)]
pub enum Ignored {
    /// Not JSON.
    NotJson,
    /// Not an object with a `type`.
    NoType,
    /// A `type` the protocol does not have.
    UnknownType,
    /// `topics` is neither an array nor absent (null, false, 0 or "").
    TopicsNotArray,
    /// `publish` without a topic anyone could have subscribed to.
    NoTopic,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::NotJson => "not JSON",
            Ignored::NoType => "not an object with a type",
            Ignored::UnknownType => "an unknown type",
            Ignored::TopicsNotArray => "topics is not an array",
            Ignored::NoTopic => "publish without a valid topic",
        })
    }
}

/// `{"type":"pong"}`
#[derive(Serialize)]
pub struct Pong {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The answer to a ping.
pub const PONG: Pong = Pong { kind: "pong" };

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Frame, Ignored> {
    let mut frame = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(frame)) => frame,
        Ok(_) => return Err(Ignored::NoType),
        Err(_) => return Err(Ignored::NotJson),
    };
    let kind = match frame.get("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.as_str(),
        Some(value) if truthy(value) => return Err(Ignored::UnknownType),
        _ => return Err(Ignored::NoType),
    };
    match kind {
        "subscribe" => Ok(Frame::Subscribe(topics(frame.remove("topics"))?)),
        "unsubscribe" => Ok(Frame::Unsubscribe(topics(frame.remove("topics"))?)),
        "publish" => match frame.get("topic") {
            Some(Value::String(topic)) if is_topic(topic) => {
                Ok(Frame::Publish { topic: topic.clone(), message: frame })
            }
            _ => Err(Ignored::NoTopic),
        },
        "ping" => Ok(Frame::Ping),
        _ => Err(Ignored::UnknownType),
    }
}

/// The frame a publish sends to every subscriber: the message with
/// `clients`, the topic's subscribers (the reference's `receivers.size`).
pub fn published(mut message: Map<String, Value>, clients: usize) -> SignalBody {
    message.insert("clients".into(), clients.into());
    SignalBody::from_value(&Value::Object(message))
}

/// The topic names of `topics`: its strings that can be topics; an absent
/// (or JavaScript-falsy) `topics` is none, as the reference's `topics || []`.
fn topics(topics: Option<Value>) -> Result<Vec<String>, Ignored> {
    match topics {
        Some(Value::Array(items)) => Ok(items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(topic) if is_topic(&topic) => Some(topic),
                _ => None,
            })
            .collect()),
        Some(value) if truthy(&value) => Err(Ignored::TopicsNotArray),
        _ => Ok(Vec::new()),
    }
}

fn is_topic(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_TOPIC_BYTES
}

/// Whether JavaScript takes `value` for true.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topics_of(frame: Result<Frame, Ignored>) -> Vec<String> {
        match frame {
            Ok(Frame::Subscribe(t) | Frame::Unsubscribe(t)) => t,
            other => panic!("not a subscription: {other:?}"),
        }
    }

    #[test]
    fn subscribe_and_unsubscribe_take_the_strings_of_topics_that_can_be_topics() {
        let long = "x".repeat(MAX_TOPIC_BYTES + 1);
        let just = "y".repeat(MAX_TOPIC_BYTES);
        let text = json!({"type": "subscribe", "topics": ["a", 1, null, "", {"b": 1}, long, just, "a b"]}).to_string();
        assert_eq!(topics_of(parse(&text)), ["a", just.as_str(), "a b"]);
        let text = json!({"type": "unsubscribe", "topics": ["a", 2]}).to_string();
        assert_eq!(parse(&text), Ok(Frame::Unsubscribe(vec!["a".into()])));
        for none in [
            json!({"type": "subscribe"}),
            json!({"type": "subscribe", "topics": null}),
            json!({"type": "subscribe", "topics": 0}),
        ] {
            assert_eq!(topics_of(parse(&none.to_string())), Vec::<String>::new(), "{none}");
        }
    }

    #[test]
    fn what_would_stop_the_reference_server_is_ignored() {
        assert_eq!(parse("{not json"), Err(Ignored::NotJson));
        assert_eq!(parse(""), Err(Ignored::NotJson));
        for bad in [json!("room"), json!(1), json!({"topics": 1})] {
            assert_eq!(parse(&json!({"type": "subscribe", "topics": bad}).to_string()), Err(Ignored::TopicsNotArray));
        }
        assert_eq!(parse(&json!({"type": "unsubscribe", "topics": "room"}).to_string()), Err(Ignored::TopicsNotArray));
    }

    #[test]
    fn a_frame_without_a_known_type_is_ignored() {
        for (text, why) in [
            ("[1,2]", Ignored::NoType),
            ("null", Ignored::NoType),
            ("\"ping\"", Ignored::NoType),
            (r#"{"topics":["a"]}"#, Ignored::NoType),
            (r#"{"type":""}"#, Ignored::NoType),
            (r#"{"type":null}"#, Ignored::NoType),
            (r#"{"type":"Ping"}"#, Ignored::UnknownType),
            (r#"{"type":"announce"}"#, Ignored::UnknownType),
            (r#"{"type":["ping"]}"#, Ignored::UnknownType),
        ] {
            assert_eq!(parse(text), Err(why), "{text}");
        }
        assert_eq!(parse(r#"{"type":"ping","extra":1}"#), Ok(Frame::Ping));
    }

    #[test]
    fn a_publish_keeps_every_field_and_gets_clients() {
        let sent =
            json!({"type": "publish", "topic": "room", "data": {"to": "b", "signal": [1]}, "clients": 99, "x": "y"});
        let Ok(Frame::Publish { topic, message }) = parse(&sent.to_string()) else { panic!("not a publish") };
        assert_eq!(topic, "room");
        let out: Value = serde_json::from_str(published(message, 3).json()).unwrap();
        let mut expected = sent.clone();
        expected["clients"] = json!(3);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_publish_needs_a_topic_someone_could_have() {
        for topic in [json!(null), json!(""), json!(7), json!(["room"]), json!("z".repeat(MAX_TOPIC_BYTES + 1))] {
            let text = json!({"type": "publish", "topic": topic, "data": 1}).to_string();
            assert_eq!(parse(&text), Err(Ignored::NoTopic), "{topic}");
        }
        assert_eq!(parse(r#"{"type":"publish","data":1}"#), Err(Ignored::NoTopic));
    }

    #[test]
    fn pong_is_the_reference_s() {
        assert_eq!(serde_json::to_string(&PONG).unwrap(), r#"{"type":"pong"}"#);
    }
}
