//! The client address of a request: the TCP peer, or the `X-Forwarded-For`
//! of a trusted proxy (see [`crate::domain::net::client_ip`]); and the
//! scheme the client used: `X-Forwarded-Proto` of a trusted proxy, else `http`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::domain::net::{Cidr, canonical, client_ip, forwarded_scheme};

/// The client address, if the server was started with connect info.
pub fn of(extensions: &Extensions, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    // Every line: a proxy may add its own instead of appending to the client's.
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    Some(client_ip(peer, &forwarded, trusted))
}

/// The scheme the client used: what a trusted proxy (the TCP peer) says in
/// `X-Forwarded-Proto`, else `http` (the server itself speaks plain HTTP).
pub fn scheme(extensions: &Extensions, headers: &HeaderMap, trusted: &[Cidr]) -> &'static str {
    let Some(peer) = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| canonical(c.0.ip())) else { return "http" };
    if !trusted.iter().any(|c| c.contains(peer)) {
        return "http";
    }
    let lines: Vec<&str> = headers.get_all("x-forwarded-proto").iter().filter_map(|v| v.to_str().ok()).collect();
    forwarded_scheme(&lines)
}
