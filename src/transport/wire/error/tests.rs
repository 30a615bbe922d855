//! The wire codes of every error, as the contract lists them.

use super::*;
use crate::store::StoreError;

#[test]
fn every_room_rule_maps_to_its_contract_code() {
    let cases = [
        (SignalError::from(RoomError::Full { max: 2 }), "room-full"),
        (SignalError::from(RoomError::NotInRoom), "not-in-room"),
        (SignalError::from(RoomError::TargetNotFound), "target-not-found"),
        (SignalError::Core(CoreError::TargetGone), "target-not-found"),
        (SignalError::Core(CoreError::TargetBusy), "target-busy"),
        (SignalError::Overloaded, "rate-limited"),
        (SignalError::RateLimited, "rate-limited"),
        (SignalError::Core(CoreError::Unavailable), "unavailable"),
        (SignalError::UnknownEvent("x".into()), "invalid-payload"),
        (SignalError::Payload(PayloadError::NotAnObject), "invalid-payload"),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err:?}");
    }
}

#[test]
fn a_rate_limit_and_a_full_queue_say_which_they_are() {
    assert!(SignalError::RateLimited.to_string().contains("faster"));
    assert!(SignalError::Overloaded.to_string().contains("waiting"));
    assert!(SignalError::Closing.to_string().contains("closing"));
}

#[test]
fn a_store_outage_reaches_the_wire_without_its_cause() {
    let err = SignalError::Core(CoreError::from(StoreError::Unavailable("redis at 10.0.0.5 refused".into())));
    assert_eq!(err.code(), "unavailable");
    assert!(!err.body().message.contains("10.0.0.5"));
}

#[test]
fn signaling_error_flattens_the_body() {
    let event = SignalingErrorEvent::new("offer", &SignalError::Core(CoreError::TargetBusy));
    let v = serde_json::to_value(&event).unwrap();
    assert_eq!(v["event"], "offer");
    assert_eq!(v["code"], "target-busy");
    assert!(v["message"].is_string());
}

#[test]
fn handshake_refusals_name_what_is_wrong() {
    assert_eq!(Refused::Missing("clientId").to_string(), "clientId is required");
    assert_eq!(
        Refused::NotTokenUser("clientId", "alice".into()).to_string(),
        "this token may only connect as clientId \"alice\""
    );
    assert_eq!(Refused::Invalid("auth.deviceId", "must match x".into()).to_string(), "auth.deviceId must match x");
    assert_eq!(
        Refused::MissingClaim("organizationId").to_string(),
        "unauthorized: the token has no organizationId claim, which /mesh requires"
    );
}
