//! The `/mesh` namespace (seed 000): identity in the handshake, welcome,
//! client lists, peer messages, organization isolation and the admin election.

use serde_json::{Value, json};
use switchboard::config::{JwtConfig, Secret};

use crate::helpers::{Peer, TestApp, jwt, namespace_outcome, spawn_app, spawn_app_with, unix_now};

const NS: &str = "/mesh";

/// A member of `org` identified in the handshake query, as seed 000's clients do.
async fn member(app: &TestApp, org: &str, id: &str, capabilities: &str) -> Peer {
    let url = app.url(&format!("/?organizationId={org}&clientId={id}&capabilities={capabilities}"));
    Peer::connect_ns(&url, NS, None).await
}

/// A member identified in the handshake auth instead.
async fn member_by_auth(app: &TestApp, org: &str, id: &str, name: &str, capabilities: &str) -> Peer {
    let auth = json!({"organizationId": org, "clientId": id, "clientName": name, "capabilities": capabilities});
    Peer::connect_ns(&app.url("/"), NS, Some(auth)).await
}

/// The client ids of a `client-list-update`, in order.
fn ids(update: &Value) -> Vec<&str> {
    update["clients"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_one_organization_are_welcomed_and_listed_and_a_peer_message_reaches_its_target() {
    let app = spawn_app().await;
    let mut ann = member(&app, "acme", "ann", "location.share").await;
    let welcome = ann.expect("welcome").await;
    assert_eq!(
        (welcome["organizationId"].clone(), welcome["serverName"].clone()),
        (json!("acme"), json!("switchboard"))
    );
    assert!(welcome["serverId"].is_string() && welcome["timestamp"].is_u64(), "{welcome}");
    assert_eq!(ids(&ann.expect("client-list-update").await), ["ann"]);

    let mut bob = member_by_auth(&app, "acme", "bob", "Bob", "location.view,admin.manage").await;
    assert_eq!(bob.expect("welcome").await["organizationId"], "acme");
    let list = ann.wait_for("client-list-update", |u| ids(u).len() == 2).await;
    let clients: Vec<_> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].clone(), c["name"].clone(), c["capabilities"].clone()))
        .collect();
    assert_eq!(
        clients,
        [
            (json!("ann"), json!("ann"), json!(["location.share"])),
            (json!("bob"), json!("Bob"), json!(["location.view", "admin.manage"]))
        ]
    );

    let sent = ann.ack("peer-message", json!({"data": {"targetId": "bob", "message": {"hello": 1}}})).await;
    assert_eq!(sent, json!({"ok": true}));
    let got = bob.wait_for("peer-message", |_| true).await;
    assert_eq!(
        (got["fromId"].clone(), got["fromName"].clone(), got["message"].clone()),
        (json!("ann"), json!("ann"), json!({"hello": 1}))
    );
    assert!(got["timestamp"].is_u64(), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_organization_gets_none_of_its_messages_and_cannot_be_reached_from_it() {
    let app = spawn_app().await;
    let ann = member(&app, "acme", "ann", "").await;
    let mut bob = member(&app, "acme", "bob", "").await;
    // The same client id in another organization is another client.
    let mut other_bob = member(&app, "globex", "bob", "").await;
    let mut gus = member(&app, "globex", "gus", "").await;
    other_bob.wait_for("client-list-update", |u| ids(u) == ["bob", "gus"]).await;

    assert_eq!(ann.ack("peer-message", json!({"targetId": "bob", "message": "direct"})).await["ok"], true);
    assert_eq!(bob.wait_for("peer-message", |_| true).await["message"], "direct");
    assert_eq!(ann.ack("peer-message", json!({"targetId": "broadcast", "message": "all"})).await["ok"], true);
    assert_eq!(bob.wait_for("peer-message", |_| true).await["message"], "all");
    let unreachable = ann.ack("peer-message", json!({"targetId": "gus", "message": "x"})).await;
    assert_eq!(unreachable["error"]["code"], "target-not-found", "{unreachable}");

    // Each ack comes after anything sent to its client before.
    for (who, peer) in [("globex's bob", &mut other_bob), ("gus", &mut gus)] {
        assert_eq!(peer.ack("request-client-list", json!({})).await, json!({"ok": true}));
        let got = peer.received_so_far();
        assert!(got.iter().all(|(name, _)| name != "peer-message"), "{who} got a message of acme: {got:?}");
        let lists: Vec<_> = got.iter().filter(|(name, _)| name == "client-list-update").map(|(_, u)| ids(u)).collect();
        assert!(
            !lists.is_empty() && lists.iter().all(|l| l.iter().all(|id| ["bob", "gus"].contains(id))),
            "{who}: {lists:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_without_organization_or_client_id_is_refused_with_the_field_named() {
    let app = spawn_app().await;
    let url = app.url("/");
    let refusals = [
        (app.url("/?clientId=ann"), None, "organizationId is required"),
        (app.url("/?organizationId=acme"), None, "clientId is required"),
        (url.clone(), Some(json!({"clientId": "ann"})), "organizationId is required"),
        (url.clone(), Some(json!({"organizationId": "acme"})), "clientId is required"),
        (url.clone(), Some(json!({"organizationId": "acme", "clientId": "bad id"})), "clientId must be"),
        (
            url.clone(),
            Some(json!({"organizationId": "acme", "clientId": "ann", "capabilities": "ok,not ok"})),
            "capabilities must be",
        ),
    ];
    for (url, auth, reason) in refusals {
        let (outcome, message) = namespace_outcome(&url, NS, auth.clone()).await;
        assert_eq!(outcome, "error", "{auth:?}: {message}");
        assert!(message.as_str().unwrap().contains(reason), "{auth:?}: {reason:?} in {message}");
    }
    // None of them was admitted: the organization has one client.
    let mut ann = member(&app, "acme", "ann", "").await;
    assert_eq!(ids(&ann.wait_for("client-list-update", |_| true).await), ["ann"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_candidate_of_highest_priority_is_elected_and_every_member_is_told() {
    // The seat stays empty for ELECTION_DELAY (2 s) after the first member: all three are in by then.
    let app = spawn_app().await;
    let mut viewer = member(&app, "elect", "viewer", "location.view,location.share").await;
    let mut temp = member(&app, "elect", "temp", "server.temporary").await;
    let _manager = member(&app, "elect", "manager", "admin.manage").await;
    viewer.wait_for("client-list-update", |u| ids(u).len() == 3).await;

    let elected = viewer.wait_for("admin-elected", |_| true).await;
    assert_eq!(
        [
            elected["organizationId"].clone(),
            elected["deviceId"].clone(),
            elected["adminId"].clone(),
            elected["priority"].clone(),
            elected["temporary"].clone()
        ],
        [json!("elect"), json!("manager"), json!("manager"), json!(11), json!(true)],
        "{elected}"
    );
    assert_eq!(temp.wait_for("admin-elected", |_| true).await["adminId"], "manager");
}

const KEY: &str = "mesh-secret";

/// A JWT server; `open` is `MESH_OPEN_WITH_JWT`.
async fn with_jwt(open: bool) -> TestApp {
    spawn_app_with(|c| {
        c.jwt = Some(JwtConfig { secret: Secret(KEY.into()), audience: None, issuer: None });
        c.mesh.open_with_jwt = open;
    })
    .await
}

/// A token for `sub` with the `extra` claims.
fn token(sub: &str, extra: Value) -> String {
    let mut claims = json!({ "sub": sub, "exp": unix_now() + 600 });
    claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    jwt(&claims, KEY)
}

/// The outcome of a `/mesh` handshake as `id` into `org` declaring `capabilities`, with `token`.
async fn attempt(app: &TestApp, org: &str, id: &str, capabilities: &str, token: &str) -> (String, String) {
    let auth = json!({ "organizationId": org, "clientId": id, "capabilities": capabilities, "token": token });
    let (outcome, message) = namespace_outcome(&app.url("/"), NS, Some(auth)).await;
    (outcome, message.as_str().unwrap_or_default().to_owned())
}

/// Issue 17, problem 6: an ordinary token (no `organizationId` or
/// `capabilities` claim) used to join any organization, declare `admin.main`
/// and take the admin seat; with JWT on it is refused, the claim named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_a_token_without_organization_or_capability_claims_is_refused_on_mesh() {
    let app = with_jwt(false).await;
    let cases = [
        (json!({}), "the token has no organizationId claim"),
        (json!({ "capabilities": "admin.main" }), "the token has no organizationId claim"),
        (json!({ "organizationId": "acme" }), "the token has no capabilities claim"),
    ];
    for (claims, reason) in cases {
        let (outcome, message) =
            attempt(&app, "acme", "mallory", "admin.main", &token("mallory", claims.clone())).await;
        assert_eq!(outcome, "error", "{claims}: {message}");
        assert!(message.contains(reason), "{claims}: {reason:?} in {message}");
    }
    // Nobody was admitted: the first real member is alone and is the one elected.
    let scoped = token("ann", json!({ "organizationId": "acme", "capabilities": "admin.main" }));
    let auth = json!({ "organizationId": "acme", "clientId": "ann", "capabilities": "admin.main", "token": scoped });
    let mut ann = Peer::connect_ns(&app.url("/"), NS, Some(auth)).await;
    assert_eq!(ids(&ann.wait_for("client-list-update", |_| true).await), ["ann"]);
    assert_eq!(ann.wait_for("admin-elected", |_| true).await["adminId"], "ann");
}

/// With the claims, a token joins only its organizations and declares only its capabilities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_the_claims_bound_the_organization_and_capabilities_a_token_may_use() {
    let app = with_jwt(false).await;
    let alice = token("alice", json!({ "organizationId": ["acme", "beta"], "capabilities": "location.view" }));
    let (outcome, message) = attempt(&app, "globex", "alice", "location.view", &alice).await;
    assert_eq!(outcome, "error");
    assert!(message.contains("may not join organizationId") && message.contains("globex"), "{message}");
    let (outcome, message) = attempt(&app, "acme", "alice", "location.view,admin.main", &alice).await;
    assert_eq!(outcome, "error");
    assert!(message.contains("may not declare the capability") && message.contains("admin.main"), "{message}");
    assert_eq!(attempt(&app, "beta", "alice", "location.view", &alice).await.0, "open");
    // An empty capabilities claim is present: its holder joins, declaring none.
    let plain = token("bob", json!({ "organizationId": "acme", "capabilities": [] }));
    assert_eq!(attempt(&app, "acme", "bob", "", &plain).await.0, "open");
    assert_eq!(attempt(&app, "acme", "bob", "admin.main", &plain).await.0, "error");
}

/// `MESH_OPEN_WITH_JWT=true` restores the claimless behaviour: any organization, any capability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mesh_open_with_jwt_a_claimless_token_joins_as_before() {
    let app = with_jwt(true).await;
    let plain = token("mallory", json!({}));
    assert_eq!(attempt(&app, "anywhere", "mallory", "admin.main", &plain).await.0, "open");
    // The token still names the client id, and a claim present still bounds it.
    assert_eq!(attempt(&app, "anywhere", "bob", "", &plain).await.0, "error");
    let scoped = token("carol", json!({ "organizationId": "acme" }));
    assert_eq!(attempt(&app, "acme", "carol", "admin.main", &scoped).await.0, "open");
    assert_eq!(attempt(&app, "globex", "carol", "", &scoped).await.0, "error");
}
