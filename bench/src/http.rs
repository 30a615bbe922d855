//! A plain HTTP/1.1 GET for the server's `/health`, so the load generator
//! needs no HTTP client crate.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sio::Error;

/// `GET path` on `addr`; the JSON body of a 200 answer.
pub async fn get_json(addr: &str, path: &str) -> Result<serde_json::Value, Error> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")).into());
    }
    Ok(serde_json::from_str(body)?)
}

/// The server's open connection count from `/health`.
pub async fn connections(addr: &str) -> Result<u64, Error> {
    get_json(addr, "/health").await?["connections"].as_u64().ok_or_else(|| "no connections in /health".into())
}
