//! Logging set-up: `RUST_LOG` filter, text or JSON lines on stdout.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Crates whose `debug` and `trace` events print raw packets, frames or
/// commands: socketioxide logs every incoming message and the CONNECT
/// packet's `auth` (tokens), tungstenite every websocket frame (tokens, SDP,
/// worker keys), hyper and h2 request parts, fred every Redis command (relays
/// and their SDP cross the bus). Named exactly, as `RUST_LOG` targets are: a
/// crate counts if the target is its name or a module path inside it.
const PACKET_LOGGERS: [&str; 12] = [
    "socketioxide",
    "socketioxide_core",
    "socketioxide_redis",
    "socketioxide_parser_common",
    "engineioxide",
    "engineioxide_core",
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "fred",
];

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

/// The packet loggers that no directive of `filter` names (its target being
/// the crate or a module in it): `socketioxide_redis=info` names only
/// socketioxide_redis, not socketioxide. A directive without `=` names a
/// target too (at every level), unless it is a level.
fn capped(filter: &str) -> Vec<&'static str> {
    let targets: Vec<&str> = filter
        .split(',')
        .map(|directive| directive.split_once('=').map_or(directive, |(target, _)| target))
        .map(|target| target.split('[').next().unwrap_or_default().trim())
        .filter(|target| !target.is_empty() && target.parse::<tracing_subscriber::filter::LevelFilter>().is_err())
        .collect();
    PACKET_LOGGERS.into_iter().filter(|name| !targets.iter().any(|t| within(t, name))).collect()
}

/// Whether `target` is `krate` or a module path inside it.
fn within(target: &str, krate: &str) -> bool {
    target.strip_prefix(krate).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

fn passes_cap(capped: &[&str], target: &str, level: Level) -> bool {
    level <= Level::INFO || !capped.iter().any(|name| within(target, name))
}

/// The packet loggers `filter` lets through below `info`, for a start-up
/// warning: their lines can carry tokens and SDP.
pub fn uncapped_packet_loggers(filter: &str) -> Vec<&'static str> {
    let capped = capped(filter);
    PACKET_LOGGERS.into_iter().filter(|name| !capped.contains(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_loggers_are_capped_at_info_unless_named_exactly() {
        assert_eq!(capped("debug"), PACKET_LOGGERS);
        assert_eq!(capped("trace"), PACKET_LOGGERS);
        assert_eq!(capped("trace,switchboard=debug"), PACKET_LOGGERS);
        // A sibling crate's name is not the crate's: socketioxide stays capped.
        assert_eq!(capped("debug,socketioxide_redis=info").len(), PACKET_LOGGERS.len() - 1);
        assert!(capped("debug,socketioxide_redis=info").contains(&"socketioxide"));
        assert!(!capped("debug,socketioxide=debug").contains(&"socketioxide"));
        assert!(!capped("socketioxide::client[conn]=debug").contains(&"socketioxide"));
        // A target without a level is that target at every level.
        assert!(!capped("socketioxide").contains(&"socketioxide"));
        assert!(!capped("debug,tungstenite::protocol").contains(&"tungstenite"));
        assert_eq!(capped("TRACE"), PACKET_LOGGERS, "a level alone names no crate");
        assert_eq!(uncapped_packet_loggers("warn,tungstenite=trace,hyper::proto=debug"), ["tungstenite", "hyper"]);
        let all = capped("trace");
        for target in
            ["socketioxide::client", "engineioxide::transport::ws", "socketioxide_redis", "tungstenite::protocol"]
        {
            assert!(!passes_cap(&all, target, Level::TRACE), "{target}");
        }
        for target in ["hyper::proto::h1::io", "hyper_util::server", "tokio_tungstenite", "fred::protocol", "h2::codec"]
        {
            assert!(!passes_cap(&all, target, Level::DEBUG), "{target}");
        }
        assert!(passes_cap(&all, "socketioxide::client", Level::INFO));
        assert!(passes_cap(&all, "switchboard::transport::handlers", Level::TRACE));
        assert!(passes_cap(&all, "hyperloop", Level::TRACE), "a crate whose name merely starts alike");
    }
}
