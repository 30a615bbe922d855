//! Logging set-up: `RUST_LOG` filter, text or JSON lines on stdout.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Crates whose `debug` and `trace` events print raw packets: socketioxide
/// logs every incoming message and the CONNECT packet's `auth` (tokens), and
/// events carry SDP and candidates. The prefix covers their sibling crates
/// too (`socketioxide_redis`, `socketioxide_core`, `engineioxide_core`), as
/// a `RUST_LOG` target does.
const PACKET_LOGGERS: [&str; 2] = ["socketioxide", "engineioxide"];

/// Installs the global subscriber (once, from `main`).
pub fn init(config: &Config) {
    let registry = tracing_subscriber::registry()
        .with(EnvFilter::new(&config.log_filter))
        .with(packet_logger_cap(&config.log_filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    match config.log_format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true).with_current_span(false)).init(),
    }
}

/// Caps [`PACKET_LOGGERS`] at `info`, whatever the filter's default level,
/// except those the filter names itself (`RUST_LOG=debug,socketioxide=debug`
/// is an explicit choice to see packets).
fn packet_logger_cap(filter: &str) -> FilterFn<impl Fn(&Metadata<'_>) -> bool + use<>> {
    let capped = capped(filter);
    filter_fn(move |meta| passes_cap(&capped, meta.target(), *meta.level()))
}

/// The packet loggers `filter` does not name.
fn capped(filter: &str) -> Vec<&'static str> {
    PACKET_LOGGERS.into_iter().filter(|name| !filter.contains(name)).collect()
}

fn passes_cap(capped: &[&str], target: &str, level: Level) -> bool {
    level <= Level::INFO || !capped.iter().any(|name| target.starts_with(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_loggers_are_capped_at_info_unless_named() {
        assert_eq!(capped("debug"), PACKET_LOGGERS);
        assert_eq!(capped("trace,switchboard=debug"), PACKET_LOGGERS);
        assert_eq!(capped("debug,socketioxide=debug"), ["engineioxide"]);
        assert!(capped("engineioxide=trace,socketioxide::client=debug").is_empty());
        let all = capped("debug");
        assert!(!passes_cap(&all, "socketioxide::client", Level::DEBUG));
        assert!(!passes_cap(&all, "engineioxide::transport::ws", Level::TRACE));
        assert!(!passes_cap(&all, "socketioxide_redis", Level::TRACE));
        assert!(passes_cap(&all, "socketioxide::client", Level::INFO));
        assert!(passes_cap(&all, "switchboard::transport::handlers", Level::TRACE));
        assert!(passes_cap(&["engineioxide"], "socketioxide::client", Level::DEBUG));
    }
}
