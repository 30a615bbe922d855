//! Plain HTTP/1.1 over one TCP connection each (`Connection: close`), so the
//! load generator needs no HTTP client crate: `/health`, and the REST routes
//! and raw engine.io polling requests of the `attacks` scenario.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sio::Error;

/// A TCP connection to `addr`, from the loopback address `source` if given
/// (any of 127.0.0.0/8 works on Linux: each is another client address to the server).
pub async fn tcp_from(addr: &str, source: Option<IpAddr>) -> Result<TcpStream, Error> {
    let tcp = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let to: SocketAddr = addr.parse()?;
            let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(to).await?
        }
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// One answer: the status code and the body as text.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `method path` on `addr` from `source`, with extra `headers` (whole lines
/// without the line end) and `body`; the connection is closed after the answer.
pub async fn request(
    addr: &str,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> Result<Response, Error> {
    let mut tcp = tcp_from(addr, source).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    tcp.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    parse(&raw)
}

/// Splits a whole HTTP/1.1 response (read to the connection's end) into status and body.
pub fn parse(raw: &[u8]) -> Result<Response, Error> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no HTTP status")?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(Response { status, body })
}

/// The body of a chunked transfer encoding.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path` on `addr`; the JSON body of a 200 answer.
pub async fn get_json(addr: &str, path: &str) -> Result<serde_json::Value, Error> {
    let response = request(addr, None, "GET", path, &[], "").await?;
    if response.status != 200 {
        return Err(format!("GET {path}: {}", response.status).into());
    }
    Ok(serde_json::from_str(&response.body)?)
}

/// The server's open connection count from `/health`.
pub async fn connections(addr: &str) -> Result<u64, Error> {
    get_json(addr, "/health").await?["connections"].as_u64().ok_or_else(|| "no connections in /health".into())
}

/// `/health`'s `connected_clients`: every connection, raw ones included
/// (`connections` counts the socket.io namespace `/` only).
pub async fn connected_clients(addr: &str) -> Result<u64, Error> {
    get_json(addr, "/health").await?["connected_clients"]
        .as_u64()
        .ok_or_else(|| "no connected_clients in /health".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies_are_read() {
        let plain = parse(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (431, "ok"));
        let chunked =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (200, "abcde"));
    }
}
