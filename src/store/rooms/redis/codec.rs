//! How a room is kept in its Redis hash: the members as JSON pairs
//! (`[user, conn]`, or `[user, conn, 1]` for a held seat), and the metadata
//! beside them for rooms that have it.

use crate::domain::{ConnId, Member, Room, RoomId, RoomMeta, UserId};
use crate::store::StoreError;
use crate::store::redis::time;

/// A room with metadata as stored; a room without is stored as its member
/// pairs alone (the format from before rooms had metadata).
#[derive(serde::Serialize, serde::Deserialize)]
struct RoomJson {
    members: Vec<Pair>,
    meta: MetaJson,
}

/// One member: `[user, conn]`, or `[user, conn, 1]` when its seat is held.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Pair {
    Live(String, String),
    Held(String, String, u8),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MetaJson {
    name: String,
    description: String,
    host: String,
    host_id: String,
    requires_approval: bool,
    approved: Vec<String>,
    names: Vec<(String, String)>,
    requests: Vec<(String, u64)>,
}

pub(super) fn encode(room: &Room) -> Result<String, StoreError> {
    let members: Vec<Pair> = room
        .members()
        .iter()
        .map(|m| {
            let (user, conn) = (m.user.as_str().to_owned(), m.conn.as_str().to_owned());
            if m.held { Pair::Held(user, conn, 1) } else { Pair::Live(user, conn) }
        })
        .collect();
    let json = match room.meta() {
        None => serde_json::to_string(&members),
        Some(m) => serde_json::to_string(&RoomJson {
            members,
            meta: MetaJson {
                name: m.name.clone(),
                description: m.description.clone(),
                host: m.host.clone(),
                host_id: m.host_id.as_str().to_owned(),
                requires_approval: m.requires_approval,
                approved: m.approved.iter().map(|u| u.as_str().to_owned()).collect(),
                names: m.names.iter().map(|(u, n)| (u.as_str().to_owned(), n.clone())).collect(),
                requests: m.requests.iter().map(|(u, d)| (u.as_str().to_owned(), *d)).collect(),
            },
        }),
    };
    json.map_err(|e| StoreError::Unavailable(e.to_string()))
}

pub(super) fn decode(id: &RoomId, created: u64, stored: &str) -> Result<Room, StoreError> {
    let corrupt = |why: String| StoreError::Unavailable(format!("room {id:?} in Redis is corrupt: {why}"));
    let user = |raw: &str| UserId::parse(raw).map_err(|e| corrupt(e.to_string()));
    let (pairs, meta): (Vec<Pair>, Option<MetaJson>) = if stored.starts_with('[') {
        (serde_json::from_str(stored).map_err(|e| corrupt(e.to_string()))?, None)
    } else {
        let room: RoomJson = serde_json::from_str(stored).map_err(|e| corrupt(e.to_string()))?;
        (room.members, Some(room.meta))
    };
    let members = pairs
        .into_iter()
        .map(|pair| {
            let (u, conn, held) = match pair {
                Pair::Live(u, conn) => (u, conn, false),
                Pair::Held(u, conn, _) => (u, conn, true),
            };
            Ok(Member { user: user(&u)?, conn: ConnId::new(&conn), held })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let meta = meta
        .map(|m| {
            Ok::<_, StoreError>(RoomMeta {
                name: m.name,
                description: m.description,
                host: m.host,
                host_id: user(&m.host_id)?,
                requires_approval: m.requires_approval,
                approved: m.approved.iter().map(|u| user(u)).collect::<Result<_, _>>()?,
                names: m.names.into_iter().map(|(u, n)| Ok((user(&u)?, n))).collect::<Result<_, StoreError>>()?,
                requests: m.requests.into_iter().map(|(u, d)| Ok((user(&u)?, d))).collect::<Result<_, StoreError>>()?,
            })
        })
        .transpose()?;
    Ok(Room::restore(id.clone(), time(created), members, meta))
}
