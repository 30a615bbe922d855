//! The client address of a request: the TCP peer, or the `X-Forwarded-For`
//! of a trusted proxy (see [`crate::domain::net::client_ip`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::domain::net::{Cidr, client_ip};

/// The client address, if the server was started with connect info.
pub fn of(extensions: &Extensions, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    // Every line: a proxy may add its own instead of appending to the client's.
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    Some(client_ip(peer, &forwarded, trusted))
}
