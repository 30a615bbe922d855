//! Property fuzzing of event-payload decoding and validation.
//!
//! Arbitrary JSON text, and arbitrary JSON values biased towards the contract's
//! field names, go through the same decoding and parsing the socket handlers
//! use. Properties: nothing panics; a payload is accepted exactly when the
//! contract says it is; an accepted id is the string that was sent; a relay
//! body is passed on unchanged. The run is bounded by `FUZZ_SECONDS` (default
//! 10; the test command uses 60). The seed corpus (`tests/fuzz/corpus.json`)
//! runs first every time; failures proptest finds are kept in
//! `tests/fuzz/regressions.txt` and replayed first on later runs. The figures
//! of a timed run (cases, seconds) go to `target/tmp/fuzz-figures.txt`, which
//! `scripts/test` prints.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Map, Value};
use switchboard::domain::signal::SignalKind;
use switchboard::domain::{MAX_ID_CHARS, RoomId};
use switchboard::transport::rooms::payload;

const FIELDS: [&str; 7] = ["roomId", "userId", "targetId", "offer", "answer", "candidate", "x"];

/// The contract's id rule, written out again independently of the code.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_ID_CHARS && !s.chars().any(char::is_control)
}

fn id_field_ok(map: &Map<String, Value>, field: &str) -> bool {
    map.get(field).and_then(Value::as_str).is_some_and(valid_id)
}

/// Checks every parser against one payload.
fn check(value: &Value) {
    let map = value.as_object();
    let join = payload::join(Some(value.clone()));
    let expect_join = map.is_some_and(|m| id_field_ok(m, "roomId") && id_field_ok(m, "userId"));
    assert_eq!(join.is_ok(), expect_join, "join-room {value}: {join:?}");
    if let Ok(req) = join {
        assert_eq!(Some(req.room.as_str()), value["roomId"].as_str());
        assert_eq!(Some(req.user.as_str()), value["userId"].as_str());
    }
    let leave = payload::leave(Some(value.clone()));
    assert_eq!(leave.is_ok(), map.is_some_and(|m| id_field_ok(m, "roomId")), "leave-room {value}");
    for kind in [SignalKind::Offer, SignalKind::Answer, SignalKind::IceCandidate] {
        let relay = payload::relay(kind, Some(value.clone()));
        let body = map.and_then(|m| m.get(payload::body_field(kind)));
        let body_ok = body.is_some_and(|b| !b.is_null() || kind == SignalKind::IceCandidate);
        let expect = map.is_some_and(|m| id_field_ok(m, "roomId") && id_field_ok(m, "targetId")) && body_ok;
        assert_eq!(relay.is_ok(), expect, "{} {value}: {relay:?}", kind.name());
        if let Ok(req) = relay {
            assert_eq!(Some(&req.body), body, "the body is relayed exactly as sent");
        }
    }
}

/// Decodes text as the socket layer does, then checks it.
fn check_text(text: &str) {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        check(&value);
    }
}

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,4}",
        any::<String>(),
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a]{0,3}",
        (120usize..135).prop_map(|n| "é".repeat(n)),
        Just(String::new()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn budget() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    Duration::from_secs(seconds)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/fuzz/regressions.txt"))),
        ..Config::default()
    })
}

#[test]
fn the_seed_corpus_passes() {
    let corpus: Vec<String> = serde_json::from_str(include_str!("fuzz/corpus.json")).unwrap();
    assert!(corpus.len() >= 20);
    corpus.iter().for_each(|text| check_text(text));
}

#[test]
fn the_id_rule_accepts_exactly_the_contract_s_ids() {
    let mut runner = runner();
    runner
        .run(&tricky_string(), |s| {
            prop_assert_eq!(RoomId::parse(&s).is_ok(), valid_id(&s), "{:?}", s);
            Ok(())
        })
        .unwrap();
}

#[test]
fn payload_decoding_and_validation_hold_for_a_time_budget() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let started = Instant::now();
    let deadline = started + budget();
    let (values, texts) = (AtomicU64::new(0), AtomicU64::new(0));
    // A fresh runner each round: each one draws a new random seed.
    while Instant::now() < deadline {
        runner()
            .run(&json_value(), |v| {
                values.fetch_add(1, Ordering::Relaxed);
                check(&v);
                Ok(())
            })
            .unwrap();
        runner()
            .run(&any::<String>(), |t| {
                texts.fetch_add(1, Ordering::Relaxed);
                check_text(&t);
                Ok(())
            })
            .unwrap();
    }
    let (values, texts) = (values.into_inner(), texts.into_inner());
    assert!(values > 0 && texts > 0);
    let figures = format!(
        "fuzz: {} cases ({values} JSON values, {texts} texts) in {:.1} s (FUZZ_SECONDS={}), no failure",
        values + texts,
        started.elapsed().as_secs_f64(),
        budget().as_secs()
    );
    println!("{figures}");
    // cargo test hides a passing test's output: the test command prints this file.
    std::fs::write(FIGURES, format!("{figures}\n")).expect("write the fuzz figures");
}

/// Where the figures of the last timed run go (`target/tmp/`).
const FIGURES: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/fuzz-figures.txt");
