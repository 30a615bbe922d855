//! The demo page and the socket.io client bundle.
//!
//! `WEB_DIR` is served at `/`. Like the Node socket.io server, switchboard
//! also serves the client's browser bundle at `/socket.io/socket.io.min.js`
//! and friends: a copy of socket.io-client's `dist/` committed with its
//! license (`web/vendor/socket.io-client/`) and embedded in the binary at
//! build time, so the demo works without `npm ci`. Those paths sit under
//! the socket.io path, so [`serve_client_bundle`] runs in front of the
//! socket.io layer.

use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

macro_rules! bundle {
    ($($name:literal),*) => {
        [$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/vendor/socket.io-client/", $name)).as_slice())),*]
    };
}

/// The files of socket.io-client's `dist/` that are served, and their bytes.
const BUNDLE: [(&str, &[u8]); 6] = bundle!(
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map"
);

/// Middleware: answers `GET /socket.io/<bundle file>`; passes every other request on.
pub async fn serve_client_bundle(request: Request, next: Next) -> Response {
    let name = request.uri().path().strip_prefix("/socket.io/");
    let file = name.and_then(|name| BUNDLE.iter().find(|(file, _)| *file == name));
    let (Some((name, bytes)), true) = (file, matches!(*request.method(), Method::GET | Method::HEAD)) else {
        return next.run(request).await;
    };
    let kind = if name.ends_with(".map") { "application/json" } else { "application/javascript; charset=utf-8" };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], *bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_bundle_is_the_version_web_package_json_pins() {
        let package: serde_json::Value = serde_json::from_str(include_str!("../../../web/package.json")).unwrap();
        let pinned = package["dependencies"]["socket.io-client"].as_str().unwrap();
        for (name, bytes) in BUNDLE.iter().filter(|(name, _)| !name.ends_with(".map")) {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            assert!(head.contains(&format!("Socket.IO v{pinned}")), "{name} is not socket.io-client {pinned}: {head}");
        }
    }
}
