//! A minimal socket.io client over websocket (EIO=4, default namespace), lean
//! enough that one load-generator core drives tens of thousands of peers.
//!
//! It speaks exactly what a socket.io-client 4.x does after choosing the
//! websocket transport from the first request: the engine.io open packet, the
//! namespace CONNECT, events (`42`), acks (`43`), and answers every ping (`2`)
//! with a pong (`3`). Frames are written as pre-formatted text; incoming ones
//! are classified by prefix and only parsed where a scenario needs a field.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// Why a client operation failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for any single handshake step or ack.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One incoming socket.io packet, classified.
pub enum Packet<'a> {
    /// An event: the JSON array text after `42`.
    Event(&'a str),
    /// An ack: its id and the JSON array text after it.
    Ack(u64, &'a str),
    /// Anything else (pings are answered before this is returned).
    Other,
}

/// A connected socket.io client on the default namespace.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    next_ack: u64,
    /// What follows a packet type on this namespace: empty on `/`, else `"/ns,"`.
    prefix: String,
}

impl Client {
    /// Connects to `addr` (`host:port`) over websocket and joins namespace `/`.
    pub async fn connect(addr: &str) -> Result<Self, Error> {
        Self::connect_to(addr, "/", None).await
    }

    /// Connects and joins namespace `ns`, with handshake `auth` (a JSON object) if given.
    pub async fn connect_to(addr: &str, ns: &str, auth: Option<&str>) -> Result<Self, Error> {
        Self::connect_from(addr, None, ns, auth).await
    }

    /// [`Client::connect_to`] from the loopback address `source` (the server
    /// counts limits per client address), or from the default one.
    pub async fn connect_from(addr: &str, source: Option<IpAddr>, ns: &str, auth: Option<&str>) -> Result<Self, Error> {
        let tcp = crate::http::tcp_from(addr, source).await?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        // Small buffers: the load generator holds up to 19,500 of these.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (ws, _) = client_async_with_config(url, tcp, Some(config)).await?;
        let prefix = if ns == "/" { String::new() } else { format!("{ns},") };
        let mut client = Self { ws, next_ack: 1, prefix: prefix.clone() };
        let open = client.next_text().await?;
        if !open.starts_with('0') {
            return Err(format!("expected the engine.io open packet, got {open:.60}").into());
        }
        client.ws.send(Message::text(format!("40{prefix}{}", auth.unwrap_or("")))).await?;
        loop {
            let text = client.next_text().await?;
            if text.starts_with(&format!("40{prefix}")) {
                return Ok(client);
            }
            if text.starts_with(&format!("44{prefix}")) {
                return Err(format!("namespace refused: {text:.200}").into());
            }
        }
    }

    /// Joins `room` as `user` and waits for a successful ack.
    pub async fn join(&mut self, room: &str, user: &str) -> Result<(), Error> {
        let id = self.emit_with_ack("join-room", &join_body(room, user)).await?;
        let ack = self.ack(id, |_| {}).await?;
        if !ack_ok(&ack) {
            return Err(format!("join-room refused: {ack:.200}").into());
        }
        Ok(())
    }

    /// Sends event `name` with the JSON object `body`, asking for an ack; returns the ack id.
    pub async fn emit_with_ack(&mut self, name: &str, body: &str) -> Result<u64, Error> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.ws.send(Message::text(format!("42{}{id}[\"{name}\",{body}]", self.prefix))).await?;
        Ok(id)
    }

    /// An event frame for this client's namespace, with ack id `id` if given.
    pub fn event_frame(&self, id: Option<u64>, name: &str, body: &str) -> String {
        format!("42{}{}[\"{name}\",{body}]", self.prefix, id.map(|i| i.to_string()).unwrap_or_default())
    }

    /// Queues a pre-formatted frame without flushing (see [`Client::flush`]).
    pub async fn feed(&mut self, frame: String) -> Result<(), Error> {
        Ok(self.ws.feed(Message::text(frame)).await?)
    }

    /// Writes every fed frame out.
    pub async fn flush(&mut self) -> Result<(), Error> {
        Ok(self.ws.flush().await?)
    }

    /// Waits for the ack `id` and returns its JSON array text; events meanwhile are passed to `seen`.
    pub async fn ack(&mut self, id: u64, mut seen: impl FnMut(&str)) -> Result<String, Error> {
        loop {
            let text = self.next_text().await?;
            match classify(&text) {
                Packet::Ack(got, body) if got == id => return Ok(body.to_owned()),
                Packet::Event(body) => seen(body),
                _ => {}
            }
        }
    }

    /// The next text frame, pings answered on the way; `Err` on close.
    pub async fn next_text(&mut self) -> Result<String, Error> {
        loop {
            let frame = tokio::time::timeout(STEP_TIMEOUT, self.ws.next()).await.map_err(|_| "no frame within 30 s")?;
            match frame.ok_or("connection closed")?? {
                Message::Text(text) if text.as_str() == "2" => self.ws.send(Message::text("3")).await?,
                Message::Text(text) => return Ok(text.as_str().to_owned()),
                Message::Close(_) => return Err("connection closed by the server".into()),
                _ => {}
            }
        }
    }

    /// The next text frame without a timeout (for long-lived readers), pings
    /// answered on the way; `None` when the connection closes or fails.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) if text.as_str() == "2" => self.ws.send(Message::text("3")).await.ok()?,
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends one text frame at once (a pong, or an event without an ack).
    pub async fn send(&mut self, frame: String) -> Result<(), Error> {
        Ok(self.ws.send(Message::text(frame)).await?)
    }

    /// This client's end of its TCP connection.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.ws.get_ref().local_addr().ok()
    }

    /// Drops the connection abruptly: no socket.io DISCONNECT, no websocket
    /// close, only the TCP socket closed (a FIN), or reset (`SO_LINGER` 0: a
    /// RST) when `reset`, as when a network or a load balancer drops it.
    pub fn abort(self, reset: bool) {
        if reset {
            let _ = self.ws.get_ref().set_zero_linger();
        }
    }

    /// Closes the websocket (a client-side disconnect).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ws.close(None)).await;
    }
}

/// Splits an incoming text frame into a [`Packet`] (on any namespace: a
/// `/ns,` after the packet type is skipped).
pub fn classify<'a>(text: &'a str) -> Packet<'a> {
    let without_ns = |rest: &'a str| -> &'a str {
        match rest.strip_prefix('/') {
            Some(ns) => ns.split_once(',').map_or(rest, |(_, after)| after),
            None => rest,
        }
    };
    if let Some(rest) = text.strip_prefix("42").map(without_ns) {
        return Packet::Event(rest);
    }
    if let Some(rest) = text.strip_prefix("43").map(without_ns) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(id) = rest[..digits].parse() {
            return Packet::Ack(id, &rest[digits..]);
        }
    }
    Packet::Other
}

/// Whether an ack's JSON array text reports success.
pub fn ack_ok(body: &str) -> bool {
    body.contains("\"ok\":true")
}

/// The `join-room` payload.
pub fn join_body(room: &str, user: &str) -> String {
    format!(r#"{{"roomId":"{room}","userId":"{user}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified_by_prefix() {
        assert!(matches!(classify("42[\"offer\",{}]"), Packet::Event("[\"offer\",{}]")));
        assert!(matches!(classify("4317[{\"ok\":true}]"), Packet::Ack(17, "[{\"ok\":true}]")));
        assert!(matches!(classify("43/devices,5[{}]"), Packet::Ack(5, "[{}]")));
        assert!(matches!(classify("42/dashboard,[\"pong\",{}]"), Packet::Event("[\"pong\",{}]")));
        assert!(matches!(classify("40{\"sid\":\"x\"}"), Packet::Other));
        assert!(ack_ok("[{\"ok\":true,\"roomId\":\"r\"}]"));
        assert!(!ack_ok("[{\"ok\":false,\"error\":{\"code\":\"room-full\"}}]"));
    }
}
