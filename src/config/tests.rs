//! Every variable's default, range and error message.

use super::*;

fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
}

#[test]
fn defaults_match_the_documentation() {
    let c = Config::default();
    assert_eq!(c.port, 4000);
    assert_eq!(c.host.to_string(), "0.0.0.0");
    assert_eq!(c.allowed_origins, AllowedOrigins::List(vec![HeaderValue::from_static("http://localhost:3000")]));
    assert_eq!(c.max_room_size, 64);
    assert_eq!(c.max_payload_bytes, 65536);
    assert_eq!(c.ping_interval, Duration::from_secs(25));
    assert_eq!(c.ping_timeout, Duration::from_secs(20));
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.log_filter, "info");
    assert_eq!((c.redis_url, c.redis_prefix.as_str()), (None, "switchboard"));
    assert_eq!((c.redis_timeout, c.instance_ttl), (Duration::from_secs(2), Duration::from_secs(10)));
    assert_eq!((c.socket_buffer_packets, c.socket_buffer_bytes, c.max_pending_events), (4096, 1 << 20, 4096));
    assert_eq!((c.events_per_second, c.event_burst, c.rate_limit_disconnect_after), (100, 500, 1000));
    assert_eq!((c.max_rooms_per_connection, c.max_connections_per_ip), (16, 256));
    assert_eq!(c.rest_rate, (20, 100), "REST_REQUESTS_PER_SECOND, REST_BURST");
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.jwt, None);
    assert_eq!(c.web_dir, PathBuf::from("web"));
    let ice = &c.ice;
    assert!(ice.stun.is_empty() && ice.turn.is_empty() && ice.turn_secret.is_none());
    assert_eq!(ice.turn_ttl, Duration::from_secs(3600));
    let p = &c.presence;
    assert_eq!(p.device_ttl, Duration::from_secs(600));
    assert_eq!((p.min_coordinators, p.announce_limit), (2, (12, Duration::from_secs(60))));
    assert_eq!((p.cleanup_interval, p.coordinator_interval), (Duration::from_secs(300), Duration::from_secs(600)));
    assert_eq!((p.signal_ttl, p.expiry_interval), (Duration::from_secs(3600), Duration::from_secs(60)));
    assert_eq!((p.job_lease, p.ack_timeout), (Duration::from_secs(30), Duration::from_secs(10)));
    let b = &p.queue_budget;
    assert_eq!((b.signals, b.queue_bytes, b.sender_bytes, b.total_bytes), (1000, 1 << 20, 4 << 20, 256 << 20));
    let w = &c.workers;
    assert_eq!((w.health_timeout, w.retention, w.replicas), (Duration::from_secs(1), Duration::from_secs(600), 150));
}

#[test]
fn worker_retention_is_at_least_the_health_timeout() {
    let c = with(&[("WORKER_RETENTION_MS", "3600000")]).unwrap();
    assert_eq!(c.workers.retention, Duration::from_secs(3600));
    let err = with(&[("WORKER_HEALTH_TIMEOUT", "2000"), ("WORKER_RETENTION_MS", "1000")]).unwrap_err();
    assert_eq!(err.var, "WORKER_RETENTION_MS");
    assert!(err.to_string().contains("at least WORKER_HEALTH_TIMEOUT"), "{err}");
}

#[test]
fn the_device_ttl_takes_decimals_so_tests_and_small_deployments_can_go_short() {
    let c = with(&[("DEVICE_TTL_MINUTES", "0.05")]).unwrap();
    assert_eq!(c.presence.device_ttl, Duration::from_secs(3));
    let c = with(&[("SIGNALING_TTL_HOURS", "0.001")]).unwrap();
    assert_eq!(c.presence.signal_ttl, Duration::from_millis(3600));
    for (var, bad) in [
        ("DEVICE_TTL_MINUTES", "0"),
        ("DEVICE_TTL_MINUTES", "soon"),
        ("DEVICE_TTL_MINUTES", "61"),
        ("RATE_LIMIT_MAX_REQUESTS", "0"),
        ("SIGNALING_TTL_HOURS", "200"),
        ("JOB_LEASE_MS", "10"),
    ] {
        assert_eq!(with(&[(var, bad)]).unwrap_err().var, var);
    }
    assert_eq!(with(&[("MIN_COORDINATORS_PER_NETWORK", "0")]).unwrap().presence.min_coordinators, 0);
}

#[test]
fn device_queue_budgets_are_bytes_and_a_bad_one_names_its_variable() {
    let c = with(&[
        ("DEVICE_QUEUE_MAX_BYTES", "2048"),
        ("DEVICE_SENDER_MAX_BYTES", "4096"),
        ("DEVICE_QUEUES_MAX_BYTES", "8192"),
    ])
    .unwrap();
    let b = c.presence.queue_budget;
    assert_eq!((b.queue_bytes, b.sender_bytes, b.total_bytes), (2048, 4096, 8192));
    for var in ["DEVICE_QUEUE_MAX_BYTES", "DEVICE_SENDER_MAX_BYTES", "DEVICE_QUEUES_MAX_BYTES"] {
        for bad in ["0", "1mb", "-1", "10"] {
            let err = with(&[(var, bad)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={bad}");
        }
    }
}

#[test]
fn jwt_secret_audience_and_issuer_are_read_together() {
    let c = with(&[("JWT_SECRET", "s"), ("JWT_AUDIENCE", "aud"), ("JWT_ISSUER", "https://idp.example")]).unwrap();
    let expected = JwtConfig {
        secret: Secret("s".into()),
        audience: Some("aud".into()),
        issuer: Some("https://idp.example".into()),
    };
    assert_eq!(c.jwt, Some(expected));
    let bare = with(&[("JWT_SECRET", "s")]).unwrap().jwt.unwrap();
    assert_eq!((bare.audience, bare.issuer), (None, None));
    // Without a secret, audience and issuer alone do not turn authentication on.
    assert_eq!(with(&[("JWT_ISSUER", "https://idp.example")]).unwrap().jwt, None);
}

#[test]
fn a_bad_port_names_the_variable() {
    let err = with(&[("PORT", "forty")]).unwrap_err();
    assert_eq!(err.var, "PORT");
    assert!(err.to_string().contains("PORT=\"forty\""), "{err}");
}

#[test]
fn out_of_range_numbers_are_rejected() {
    assert_eq!(with(&[("MAX_ROOM_SIZE", "0")]).unwrap_err().var, "MAX_ROOM_SIZE");
    assert_eq!(with(&[("MAX_PAYLOAD_BYTES", "10")]).unwrap_err().var, "MAX_PAYLOAD_BYTES");
    assert_eq!(with(&[("PING_INTERVAL_MS", "-5")]).unwrap_err().var, "PING_INTERVAL_MS");
    assert_eq!(with(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
    assert_eq!(with(&[("RUST_LOG", "info,[[[")]).unwrap_err().var, "RUST_LOG");
    assert_eq!(with(&[("HOST", "example")]).unwrap_err().var, "HOST");
    assert_eq!(with(&[("REDIS_URL", "localhost:6379")]).unwrap_err().var, "REDIS_URL");
    assert_eq!(with(&[("REDIS_PREFIX", "a b")]).unwrap_err().var, "REDIS_PREFIX");
    assert_eq!(with(&[("INSTANCE_TTL_MS", "5")]).unwrap_err().var, "INSTANCE_TTL_MS");
}

#[test]
fn client_url_takes_a_comma_separated_list() {
    let c = with(&[("CLIENT_URL", "https://a.example, http://b.example:8080")]).unwrap();
    let AllowedOrigins::List(list) = c.allowed_origins else { panic!("expected a list") };
    assert_eq!(list, vec!["https://a.example", "http://b.example:8080"]);
}

#[test]
fn client_url_with_a_path_or_no_scheme_is_rejected() {
    assert_eq!(with(&[("CLIENT_URL", "https://a.example/app")]).unwrap_err().var, "CLIENT_URL");
    assert_eq!(with(&[("CLIENT_URL", "a.example")]).unwrap_err().var, "CLIENT_URL");
}

#[test]
fn a_star_allows_any_origin_and_empty_values_mean_default() {
    let c = with(&[("CLIENT_URL", "*"), ("PORT", "  ")]).unwrap();
    assert_eq!(c.allowed_origins, AllowedOrigins::Any);
    assert_eq!(c.port, 4000);
    assert!(c.allowed_origins.allows(&HeaderValue::from_static("http://evil.example")));
}

#[test]
fn short_secrets_are_warned_about_naming_their_variable() {
    let open = with(&[]).unwrap();
    assert!(open.warnings()[0].starts_with("JWT_SECRET is not set"), "{:?}", open.warnings());
    let short = with(&[("JWT_SECRET", "short"), ("WORKER_KEY", "k")]).unwrap();
    let warned = short.warnings();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(
        warned[0].starts_with("JWT_SECRET is 5 bytes") && warned[1].starts_with("WORKER_KEY is 1 bytes"),
        "{warned:?}"
    );
    let long = "x".repeat(32);
    let fine = with(&[("JWT_SECRET", long.as_str()), ("WORKER_KEY", &long[..16])]).unwrap();
    assert!(fine.warnings().is_empty(), "{:?}", fine.warnings());
}

/// Issue 17, problem 5: the connection bounds, their defaults and their ranges.
#[test]
fn connection_bounds_default_below_the_file_limit_and_refuse_bad_values() {
    let c = Config::default().connections;
    assert_eq!((c.header_read_timeout, c.connect_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
    assert_eq!(c.max_header_bytes, 16 * 1024);
    assert_eq!(c.max_connections, connections::default_max_connections());
    // The formula: the limit less 128, or half of a small limit; none without a limit.
    let cases = [Some(1024), Some(100), Some(1), Some(u64::MAX), None].map(connections::max_for);
    assert_eq!(cases, [896, 50, 1, 1_000_000, 1_000_000]);
    if let Some(limit) = connections::file_limit() {
        assert!((c.max_connections as u64) < limit, "{} under the file limit {limit}", c.max_connections);
    }
    let set = with(&[("MAX_CONNECTIONS", "50"), ("HEADER_READ_TIMEOUT_MS", "250"), ("MAX_HEADER_BYTES", "32768")]);
    let set = set.unwrap().connections;
    assert_eq!(
        (set.max_connections, set.header_read_timeout, set.max_header_bytes),
        (50, Duration::from_millis(250), 32768)
    );
    for (var, bad) in [("MAX_CONNECTIONS", "0"), ("MAX_HEADER_BYTES", "1024"), ("HEADER_READ_TIMEOUT_MS", "x")] {
        assert_eq!(with(&[(var, bad)]).unwrap_err().var, var);
    }
    assert_eq!(with(&[("CONNECT_TIMEOUT_MS", "10")]).unwrap_err().var, "CONNECT_TIMEOUT_MS");
}

/// Issue 17, problem 6: `/mesh` requires its claims with JWT on unless `MESH_OPEN_WITH_JWT=true`.
#[test]
fn mesh_open_with_jwt_is_off_by_default_takes_true_or_false_and_is_warned_about() {
    assert!(!Config::default().mesh.open_with_jwt);
    assert!(with(&[("MESH_OPEN_WITH_JWT", "true")]).unwrap().mesh.open_with_jwt);
    assert!(!with(&[("MESH_OPEN_WITH_JWT", "false")]).unwrap().mesh.open_with_jwt);
    let err = with(&[("MESH_OPEN_WITH_JWT", "yes")]).unwrap_err();
    assert_eq!(err.var, "MESH_OPEN_WITH_JWT");
    assert!(err.to_string().contains("MESH_OPEN_WITH_JWT") && err.to_string().contains("true or false"), "{err}");
    let secret = "x".repeat(32);
    let open = with(&[("JWT_SECRET", secret.as_str()), ("MESH_OPEN_WITH_JWT", "true")]).unwrap();
    assert!(open.warnings().iter().any(|w| w.starts_with("MESH_OPEN_WITH_JWT=true")), "{:?}", open.warnings());
    // Without JWT there is nothing to open: no warning.
    assert!(with(&[("MESH_OPEN_WITH_JWT", "true")]).unwrap().warnings().len() == 1);
}

/// Issue 17, problem 7: `DEVICE_NETWORK_CLAIM` names a claim, and needs `JWT_SECRET`.
#[test]
fn device_network_claim_is_unset_by_default_and_needs_jwt_and_a_claim_name() {
    assert_eq!(Config::default().presence.network_claim, None);
    let secret = ("JWT_SECRET", "x".repeat(32));
    let set = |value: &str| with(&[(secret.0, secret.1.as_str()), ("DEVICE_NETWORK_CLAIM", value)]);
    assert_eq!(set("networks").unwrap().presence.network_claim.as_deref(), Some("networks"));
    assert_eq!(
        set("https:example.com.nets").unwrap().presence.network_claim.as_deref(),
        Some("https:example.com.nets")
    );
    let without_jwt = with(&[("DEVICE_NETWORK_CLAIM", "networks")]).unwrap_err();
    assert_eq!(without_jwt.var, "DEVICE_NETWORK_CLAIM");
    assert!(without_jwt.to_string().contains("needs JWT_SECRET"), "{without_jwt}");
    for bad in ["two words", "sub", "exp", &"n".repeat(65)] {
        let err = set(bad).unwrap_err();
        assert_eq!(err.var, "DEVICE_NETWORK_CLAIM", "{bad}");
        assert!(err.to_string().starts_with("invalid DEVICE_NETWORK_CLAIM="), "{err}");
    }
}

#[test]
fn peerjs_defaults_are_peerjs_servers_and_every_protocol_is_served() {
    let c = Config::default();
    let p = &c.peerjs;
    assert_eq!((p.path.as_str(), p.key.as_str()), ("/peerjs", "peerjs"));
    assert_eq!((p.expire_timeout, p.alive_timeout), (Duration::from_secs(5), Duration::from_secs(60)));
    assert_eq!((p.concurrent_limit, p.allow_discovery, p.queue_max), (5000, false, 256));
    assert_eq!(c.protocols.names(), PROTOCOL_NAMES);
    assert_eq!(with(&[("PROTOCOLS", "all")]).unwrap().protocols.names(), PROTOCOL_NAMES);
}

#[test]
fn protocols_is_a_list_of_known_names_kept_in_table_order() {
    let c = with(&[("PROTOCOLS", " y-webrtc, peerjs ,peerjs")]).unwrap();
    assert_eq!(c.protocols.names(), ["peerjs", "y-webrtc"]);
    assert!(c.protocols.serves("peerjs") && !c.protocols.serves("socket.io"));
    for bad in ["socketio", ",", "peerjs,seed-002"] {
        let e = with(&[("PROTOCOLS", bad)]).unwrap_err();
        assert_eq!(e.var, "PROTOCOLS", "{bad}");
    }
}

#[test]
fn mount_paths_and_keys_are_checked() {
    assert_eq!(with(&[("PEERJS_PATH", "/rtc/peer")]).unwrap().peerjs.path, "/rtc/peer");
    for bad in ["peerjs", "/", "/peerjs/", "//x", "/a b", "/socket.io", "/health", "/signaling/x", "/api"] {
        assert_eq!(with(&[("PEERJS_PATH", bad)]).unwrap_err().var, "PEERJS_PATH", "{bad}");
    }
    assert_eq!(with(&[("PEERJS_KEY", "my key")]).unwrap_err().var, "PEERJS_KEY");
    assert_eq!(with(&[("PEERJS_ALLOW_DISCOVERY", "yes")]).unwrap_err().var, "PEERJS_ALLOW_DISCOVERY");
    assert_eq!(with(&[("PEERJS_CONCURRENT_LIMIT", "0")]).unwrap_err().var, "PEERJS_CONCURRENT_LIMIT");
    assert_eq!(with(&[("PEERJS_EXPIRE_TIMEOUT_MS", "5")]).unwrap_err().var, "PEERJS_EXPIRE_TIMEOUT_MS");
}
