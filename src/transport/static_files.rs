//! The demo page and the socket.io client bundle.
//!
//! `WEB_DIR` is served at `/`. Like the Node socket.io server, switchboard
//! also serves the client bundle at `/socket.io/socket.io.min.js` and friends,
//! from the npm package installed in `WEB_DIR/node_modules`. Those paths sit
//! under the socket.io path, so [`serve_client_bundle`] runs in front of the
//! socket.io layer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::HttpError;

/// The files of `socket.io-client/dist` that are served.
const BUNDLE_FILES: [&str; 6] = [
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
];

/// Where the client bundle is found under `web_dir`.
pub fn bundle_dir(web_dir: &Path) -> PathBuf {
    web_dir.join("node_modules").join("socket.io-client").join("dist")
}

/// Middleware: answers `GET /socket.io/<bundle file>` from `dir`, or a 404 that
/// says how to install it; passes every other request on.
pub async fn serve_client_bundle(State(dir): State<Arc<PathBuf>>, request: Request, next: Next) -> Response {
    let name = request.uri().path().strip_prefix("/socket.io/").filter(|name| BUNDLE_FILES.contains(name));
    let (Some(name), true) = (name, matches!(*request.method(), Method::GET | Method::HEAD)) else {
        return next.run(request).await;
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => {
            let kind =
                if name.ends_with(".map") { "application/json" } else { "application/javascript; charset=utf-8" };
            ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], bytes).into_response()
        }
        Err(_) => HttpError::ClientBundleMissing.into_response(),
    }
}
