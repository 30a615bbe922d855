//! Unit tests of [`super`]: token verification, where the token is found, scope claims.
use super::*;
use crate::config::Secret;
use jsonwebtoken::{EncodingKey, Header, encode};

/// The user a token names, as every caller's [`verify_scoped`] reads it.
fn verify(token: &str, jwt: &JwtConfig) -> Result<UserId, AuthError> {
    verify_scoped(token, jwt, None).map(|v| v.user)
}

fn jwt() -> JwtConfig {
    JwtConfig { secret: Secret("k".into()), audience: Some("sb".into()), issuer: None }
}

fn token(claims: Value, key: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn a_valid_token_names_its_user() {
    let t = token(serde_json::json!({"sub": "alice", "exp": now() + 60, "aud": "sb"}), "k");
    assert_eq!(verify(&t, &jwt()), Ok(UserId::parse("alice").unwrap()));
}

/// Issue 17, problem 12: `nbf` is enforced.
/// Issue 18: seed 004's tokens name their user `id`; `sub` wins when both are there.
#[test]
fn a_token_without_sub_names_its_user_by_id_as_seed_004_issues_them() {
    let by_id = token(serde_json::json!({"id": "alice", "exp": now() + 60, "aud": "sb"}), "k");
    assert_eq!(verify(&by_id, &jwt()), Ok(UserId::parse("alice").unwrap()));
    let numeric = token(serde_json::json!({"id": 42, "exp": now() + 60, "aud": "sb"}), "k");
    assert_eq!(verify(&numeric, &jwt()), Ok(UserId::parse("42").unwrap()));
    let both = token(serde_json::json!({"sub": "bob", "id": "alice", "exp": now() + 60, "aud": "sb"}), "k");
    assert_eq!(verify(&both, &jwt()), Ok(UserId::parse("bob").unwrap()));
    let neither = token(serde_json::json!({"exp": now() + 60, "aud": "sb"}), "k");
    assert_eq!(verify(&neither, &jwt()), Err(AuthError::Invalid("the token has no sub claim (nor id)".into())));
}

#[test]
fn a_token_not_valid_yet_is_refused() {
    let later = token(serde_json::json!({"sub": "a", "exp": now() + 600, "nbf": now() + 300, "aud": "sb"}), "k");
    assert_eq!(verify(&later, &jwt()), Err(AuthError::Invalid("the token is not valid yet (nbf)".into())));
    let now_valid = token(serde_json::json!({"sub": "a", "exp": now() + 600, "nbf": now() - 1, "aud": "sb"}), "k");
    assert!(verify(&now_valid, &jwt()).is_ok());
}

#[test]
fn expiry_has_a_small_leeway_and_no_more() {
    let grace = token(serde_json::json!({"sub": "a", "exp": now() - 10, "aud": "sb"}), "k");
    assert!(verify(&grace, &jwt()).is_ok());
    let expired = token(serde_json::json!({"sub": "a", "exp": now() - 120, "aud": "sb"}), "k");
    assert_eq!(verify(&expired, &jwt()), Err(AuthError::Invalid("the token has expired".into())));
}

#[test]
fn bad_tokens_are_refused_with_a_reason() {
    let wrong_key = token(serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"}), "other");
    assert!(matches!(verify(&wrong_key, &jwt()), Err(AuthError::Invalid(m)) if m.contains("signature")));
    let wrong_aud = token(serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "x"}), "k");
    assert!(matches!(verify(&wrong_aud, &jwt()), Err(AuthError::Invalid(m)) if m.contains("audience")));
    let no_exp = token(serde_json::json!({"sub": "a", "aud": "sb"}), "k");
    assert!(matches!(verify(&no_exp, &jwt()), Err(AuthError::Invalid(m)) if m.contains("exp")));
    assert!(verify("not.a.token", &jwt()).is_err());
    let long_sub = token(serde_json::json!({"sub": "s".repeat(129), "exp": now() + 60, "aud": "sb"}), "k");
    assert!(matches!(verify(&long_sub, &jwt()), Err(AuthError::Invalid(m)) if m.contains("sub")));
}

fn with_issuer(issuer: &str) -> JwtConfig {
    JwtConfig { issuer: Some(issuer.into()), ..jwt() }
}

#[test]
fn with_jwt_issuer_set_only_its_iss_is_accepted() {
    let claims = |iss: Option<&str>| {
        let mut c = serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"});
        if let Some(iss) = iss {
            c["iss"] = iss.into();
        }
        c
    };
    let cfg = with_issuer("https://idp.example");
    assert_eq!(verify(&token(claims(Some("https://idp.example")), "k"), &cfg), Ok(UserId::parse("a").unwrap()));
    let other = verify(&token(claims(Some("https://evil.example")), "k"), &cfg);
    assert_eq!(other, Err(AuthError::Invalid("the token is from another issuer".into())));
    let missing = verify(&token(claims(None), "k"), &cfg);
    assert_eq!(missing, Err(AuthError::Invalid("the token has no iss claim".into())));
    // Without JWT_ISSUER, `iss` is not looked at.
    assert!(verify(&token(claims(Some("https://evil.example")), "k"), &jwt()).is_ok());
    assert!(verify(&token(claims(None), "k"), &jwt()).is_ok());
}

#[test]
fn with_jwt_audience_set_a_missing_aud_is_refused_and_without_it_aud_is_ignored() {
    let no_aud = token(serde_json::json!({"sub": "a", "exp": now() + 60}), "k");
    assert_eq!(verify(&no_aud, &jwt()), Err(AuthError::Invalid("the token has no aud claim".into())));
    let open = JwtConfig { audience: None, ..jwt() };
    assert!(verify(&no_aud, &open).is_ok());
    let any_aud = token(serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "whatever"}), "k");
    assert!(verify(&any_aud, &open).is_ok());
}

#[test]
fn only_hs256_is_accepted() {
    let claims = serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"});
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        // Signed with the right secret, but not with HS256.
        let t = encode(&Header::new(alg), &claims, &EncodingKey::from_secret(b"k")).unwrap();
        let refused = Err(AuthError::Invalid("the token must be signed with HS256".into()));
        assert_eq!(verify(&t, &jwt()), refused, "{alg:?}");
    }
    assert!(verify(&unsigned(&claims), &jwt()).is_err(), "alg none");
    // The same claims signed with HS256 pass: only the algorithm differs.
    assert!(verify(&token(claims, "k"), &jwt()).is_ok());
}

/// An `alg: none` token: no signature at all.
fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

#[test]
fn the_token_is_found_in_auth_then_header_then_query() {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer from-header".parse().unwrap());
    let auth = serde_json::json!({"token": "from-auth"});
    assert_eq!(token_from(Some(&auth), &headers, Some("token=q")).as_deref(), Some("from-auth"));
    assert_eq!(token_from(None, &headers, Some("token=q")).as_deref(), Some("from-header"));
    assert_eq!(token_from(None, &HeaderMap::new(), Some("EIO=4&token=q")).as_deref(), Some("q"));
    assert_eq!(token_from(None, &HeaderMap::new(), None), None);
}

#[test]
fn organization_and_capability_claims_narrow_the_scope_and_a_malformed_one_is_refused_only_there() {
    let scoped = |extra: Value| {
        let mut claims = serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"});
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        verify_scoped(&token(claims, "k"), &jwt(), None).unwrap().scope.0
    };
    let open = scoped(serde_json::json!({})).unwrap();
    assert_eq!(open, Scope::default());
    assert_eq!(open.missing_claim(), Some("organizationId"), "required on /mesh unless MESH_OPEN_WITH_JWT");
    let orgs_only = scoped(serde_json::json!({"organizationId": "acme"})).unwrap();
    assert_eq!(orgs_only.missing_claim(), Some("capabilities"));
    assert!(open.allows_organization("any") && open.forbidden_capability(&["admin.main".into()]).is_none());

    let one = scoped(serde_json::json!({"organizationId": "acme", "capabilities": "location.view, admin.manage"}));
    let one = one.unwrap();
    assert_eq!(one.missing_claim(), None);
    assert!(one.allows_organization("acme") && !one.allows_organization("other"));
    let declared = ["admin.manage".to_owned(), "admin.main".to_owned()];
    assert_eq!(one.forbidden_capability(&declared), Some("admin.main"));
    assert_eq!(one.forbidden_capability(&declared[..1]), None);

    let lists = scoped(serde_json::json!({"organizationId": ["acme", "beta"], "capabilities": []})).unwrap();
    assert!(lists.allows_organization("beta"));
    assert_eq!(lists.forbidden_capability(&["location.view".into()]), Some("location.view"));
    assert_eq!(lists.forbidden_capability(&[]), None);

    // A malformed scope fails only where the scope is used: the token still names its user.
    for bad in [serde_json::json!({"organizationId": 7}), serde_json::json!({"capabilities": null})] {
        let mut claims = serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"});
        claims.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        assert_eq!(verify(&token(claims.clone(), "k"), &jwt()).unwrap().as_str(), "a");
        let TokenScope(scope) = verify_scoped(&token(claims, "k"), &jwt(), None).unwrap().scope;
        assert!(matches!(scope, Err(AuthError::Invalid(m)) if m.contains("malformed")), "{bad}");
    }
}

/// Issue 17, problem 7: the networks `DEVICE_NETWORK_CLAIM` names, read like the other list claims.
#[test]
fn the_network_claim_names_the_networks_a_token_may_use_and_none_when_absent_or_malformed() {
    let networks = |extra: Value, claim: Option<&str>| {
        let mut claims = serde_json::json!({"sub": "a", "exp": now() + 60, "aud": "sb"});
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        verify_scoped(&token(claims, "k"), &jwt(), claim).unwrap().networks
    };
    let only = |ids: &[&str]| NetworkAccess::Only(ids.iter().map(|s| s.to_string()).collect());
    assert_eq!(networks(serde_json::json!({"nets": "home"}), None), NetworkAccess::Any, "unset: open");
    assert_eq!(networks(serde_json::json!({"nets": "home"}), Some("nets")), only(&["home"]));
    assert_eq!(networks(serde_json::json!({"nets": "home, work"}), Some("nets")), only(&["home", "work"]));
    assert_eq!(networks(serde_json::json!({"nets": ["home", "lab"]}), Some("nets")), only(&["home", "lab"]));
    for none in [serde_json::json!({}), serde_json::json!({"nets": 7}), serde_json::json!({"nets": null})] {
        assert_eq!(networks(none.clone(), Some("nets")), only(&[]), "{none}");
    }
    let home = crate::domain::presence::NetworkId::parse("home").unwrap();
    assert!(only(&["home"]).allows(&home) && !only(&["work"]).allows(&home) && NetworkAccess::Any.allows(&home));
}
