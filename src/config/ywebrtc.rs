//! The y-webrtc signaling endpoint's settings: where it is served
//! (`Y_WEBRTC_PATH`) and how many topics one connection may subscribe to
//! (`Y_WEBRTC_MAX_TOPICS`). Its frames are bounded by the shared
//! `MAX_PAYLOAD_BYTES`. Read by [`super::Config::from_lookup`].

use super::ConfigError;
use super::env::Env;

/// `Y_WEBRTC_PATH`, `Y_WEBRTC_MAX_TOPICS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YWebrtcConfig {
    /// `Y_WEBRTC_PATH`: the path of the WebSocket upgrade (default `/y-webrtc`).
    pub path: String,
    /// `Y_WEBRTC_MAX_TOPICS`: topics one connection may be subscribed to at
    /// once (default 64, 1 to 10 000); more are ignored.
    pub max_topics: usize,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    pub(super) fn ywebrtc(&self) -> Result<YWebrtcConfig, ConfigError> {
        Ok(YWebrtcConfig {
            path: self.mount_path("Y_WEBRTC_PATH", "/y-webrtc")?,
            max_topics: self.ranged("Y_WEBRTC_MAX_TOPICS", 64, 1..=10_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_are_slash_y_webrtc_and_64_topics() {
        let c = Config::default().ywebrtc;
        assert_eq!((c.path.as_str(), c.max_topics), ("/y-webrtc", 64));
        let c = with(&[("Y_WEBRTC_PATH", "/signal/yjs"), ("Y_WEBRTC_MAX_TOPICS", "3")]).unwrap().ywebrtc;
        assert_eq!((c.path.as_str(), c.max_topics), ("/signal/yjs", 3));
    }

    #[test]
    fn a_path_that_is_not_its_own_or_not_plain_is_refused_naming_the_variable() {
        for bad in [
            "y-webrtc",
            "/",
            "/y-webrtc/",
            "//y",
            "/a/../b",
            "/{room}",
            "/a*",
            "/a b",
            "/a?b",
            "/socket.io",
            "/health",
            "/dashboard/ws",
            "/signaling/x",
            "/api",
            "/workers",
        ] {
            let err = with(&[("Y_WEBRTC_PATH", bad)]).unwrap_err();
            assert_eq!(err.var, "Y_WEBRTC_PATH", "{bad}");
        }
        let long = format!("/{}", "a".repeat(64));
        assert_eq!(with(&[("Y_WEBRTC_PATH", &long)]).unwrap_err().var, "Y_WEBRTC_PATH");
        let clash = with(&[("PEERJS_PATH", "/rtc"), ("Y_WEBRTC_PATH", "/rtc/peerjs")]).unwrap_err();
        assert_eq!(clash.var, "Y_WEBRTC_PATH", "PeerJS's routes are under its path");
        assert!(with(&[("Y_WEBRTC_PATH", "/healthy")]).is_ok(), "a segment that only begins like one is its own");
    }

    #[test]
    fn the_topic_limit_is_a_number_from_1_to_10_000() {
        for bad in ["0", "10001", "many", "-1"] {
            assert_eq!(with(&[("Y_WEBRTC_MAX_TOPICS", bad)]).unwrap_err().var, "Y_WEBRTC_MAX_TOPICS", "{bad}");
        }
    }
}
