//! What one instance posts to the others on the cluster bus: as published
//! ([`Outgoing`], borrowing what it sends) and as heard ([`Incoming`],
//! borrowing the message, its events left undecoded until a connection here
//! wants them).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::warn;

use crate::core::event::Event;
use crate::core::groups::Group;
use crate::domain::ConnId;

/// What one instance asks the others, as published.
#[derive(Serialize)]
pub(super) struct Outgoing<'a> {
    pub(super) from: &'a str,
    pub(super) post: Post<'a>,
}

#[derive(Serialize)]
pub(super) enum Post<'a> {
    To { conn: &'a ConnId, event: &'a Event },
    ToMany { conns: &'a [&'a ConnId], event: &'a Event },
    Group { group: &'a Group, except: Option<&'a ConnId>, event: &'a Event },
    Close { conn: &'a ConnId },
    Dissolve { group: &'a Group },
    Counts { counts: &'a [(Group, usize)] },
}

/// [`Outgoing`] as heard. Events stay undecoded until one of their
/// connections is found here: every instance hears every message.
#[derive(Deserialize)]
pub(super) struct Incoming<'a> {
    #[serde(borrow)]
    pub(super) from: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) post: Heard<'a>,
}

#[derive(Deserialize)]
pub(super) enum Heard<'a> {
    To {
        conn: ConnId,
        #[serde(borrow)]
        event: &'a RawValue,
    },
    ToMany {
        conns: Vec<ConnId>,
        #[serde(borrow)]
        event: &'a RawValue,
    },
    Group {
        group: Group,
        except: Option<ConnId>,
        #[serde(borrow)]
        event: &'a RawValue,
    },
    Close {
        conn: ConnId,
    },
    Dissolve {
        group: Group,
    },
    /// One group's count, as instances before `Counts` sent it (heard
    /// still, so a cluster can be upgraded one instance at a time).
    Count {
        group: Group,
        count: usize,
    },
    Counts {
        counts: Vec<(Group, usize)>,
    },
}

/// How the messages of `instance` begin once published (`{"from":"<instance>",`):
/// an instance skips its own without reading them.
pub(super) fn own_prefix(instance: &str) -> String {
    format!("{{\"from\":{},", serde_json::Value::from(instance))
}

/// An event heard on the bus, decoded once a connection here wants it.
pub(super) fn decode(event: &RawValue) -> Option<Event> {
    serde_json::from_str(event.get())
        .inspect_err(|e| warn!(error = %e, "an unreadable event on the cluster bus was skipped"))
        .ok()
}

#[cfg(test)]
mod tests {
    //! Every post reads back as published: the two enums agree on the wire.

    use super::*;

    fn published(post: Post<'_>) -> String {
        serde_json::to_string(&Outgoing { from: "instance-a", post }).unwrap()
    }

    fn conn(id: &str) -> ConnId {
        ConnId::new(id)
    }

    #[test]
    fn every_post_reads_back_as_published() {
        let event = Event::ClientCount { count: 3, timestamp: 7 };
        let group = Group::Channel("news".into());
        let (a, b) = (conn("a"), conn("b"));

        let text = published(Post::To { conn: &a, event: &event });
        let incoming: Incoming = serde_json::from_str(&text).unwrap();
        assert_eq!(incoming.from, "instance-a");
        let Heard::To { conn, event: heard } = incoming.post else { panic!("not To: {text}") };
        assert_eq!((conn, decode(heard)), (a.clone(), Some(event.clone())));

        let text = published(Post::ToMany { conns: &[&a, &b], event: &event });
        let Heard::ToMany { conns, event: heard } = serde_json::from_str::<Incoming>(&text).unwrap().post else {
            panic!("not ToMany: {text}")
        };
        assert_eq!((conns, decode(heard)), (vec![a.clone(), b.clone()], Some(event.clone())));

        let text = published(Post::Group { group: &group, except: Some(&b), event: &event });
        let Heard::Group { group: g, except, event: heard } = serde_json::from_str::<Incoming>(&text).unwrap().post
        else {
            panic!("not Group: {text}")
        };
        assert_eq!((g, except, decode(heard)), (group.clone(), Some(b.clone()), Some(event.clone())));

        let text = published(Post::Close { conn: &a });
        assert!(matches!(serde_json::from_str::<Incoming>(&text).unwrap().post, Heard::Close { conn } if conn == a));

        let text = published(Post::Dissolve { group: &group });
        assert!(
            matches!(serde_json::from_str::<Incoming>(&text).unwrap().post, Heard::Dissolve { group: g } if g == group)
        );

        // An older instance's single count.
        let text = r#"{"from":"old","post":{"Count":{"group":{"Channel":"news"},"count":4}}}"#;
        let heard = serde_json::from_str::<Incoming>(text).unwrap().post;
        assert!(matches!(heard, Heard::Count { group: g, count: 4 } if g == group));

        let counts = [(group.clone(), 4), (Group::Topic("t".into()), 1)];
        let text = published(Post::Counts { counts: &counts });
        let heard = serde_json::from_str::<Incoming>(&text).unwrap().post;
        assert!(matches!(heard, Heard::Counts { counts: c } if c == counts));
    }

    #[test]
    fn an_instance_knows_its_own_messages_by_their_beginning() {
        let a = conn("a");
        for instance in ["instance-a", "with \"quotes\" and \\ in it"] {
            let text = serde_json::to_string(&Outgoing { from: instance, post: Post::Close { conn: &a } }).unwrap();
            assert!(text.starts_with(&own_prefix(instance)), "{text}");
            assert!(!text.starts_with(&own_prefix("instance")), "another instance's prefix: {text}");
        }
    }

    #[test]
    fn an_unreadable_event_is_skipped_not_fatal() {
        let raw = serde_json::value::RawValue::from_string(r#"{"NoSuchEvent":{}}"#.to_owned()).unwrap();
        assert_eq!(decode(&raw), None);
    }
}
