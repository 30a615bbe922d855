//! Raw WebSocket peers (issue 18): seed 004's `/signaling/{deviceId}`
//! endpoint driven with plain WebSocket frames, beside the socket.io paths.
//!
//! - `raw-idle` ([`idle`]): N raw peers open and idle over a few ping
//!   intervals; the server's RSS per peer, as `connections` measures it for
//!   socket.io.
//! - `device-relay` ([`relay`]): K announced device pairs signal each other
//!   over raw WebSocket, over `/devices` (socket.io with acks), or as `/`
//!   room relays; relays per second and latency.
//!
//! [`RawClient`] answers the server's pings (tungstenite queues the pong and
//! writes it on the next read), which is how the server confirms a delivery.

pub mod idle;
pub mod relay;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::http::request;
use crate::sio::Error;

/// One text frame or the pings seen while waiting for it.
pub enum Incoming {
    /// A text frame.
    Text(String),
    /// A ping from the server (already answered).
    Ping,
}

/// The client's WebSocket.
pub type Ws = WebSocketStream<tokio::net::TcpStream>;

/// A raw WebSocket client of `/signaling/{deviceId}`.
pub struct RawClient {
    ws: Ws,
}

impl RawClient {
    /// Opens `/signaling/{device}` on `addr`.
    pub async fn connect(addr: &str, device: &str) -> Result<Self, Error> {
        Self::open(addr, &format!("/signaling/{device}")).await
    }

    /// Opens the WebSocket at `path` (with its query) on `addr`.
    pub async fn open(addr: &str, path: &str) -> Result<Self, Error> {
        let tcp = crate::http::tcp_from(addr, None).await?;
        let url = format!("ws://{addr}{path}");
        // Small buffers: the load generator holds up to 10,000 of these.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(crate::sio::STEP_TIMEOUT, client_async_with_config(url, tcp, Some(config)))
            .await
            .map_err(|_| "no handshake within 30 s")??;
        Ok(Self { ws })
    }

    /// The next text frame or ping; `None` once closed (or on a close frame).
    pub async fn recv(&mut self) -> Option<Incoming> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => return Some(Incoming::Text(text.as_str().to_owned())),
                Ok(Message::Ping(_)) => return Some(Incoming::Ping),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next text frame, pings answered on the way; `None` once closed.
    pub async fn text(&mut self) -> Option<String> {
        loop {
            if let Incoming::Text(text) = self.recv().await? {
                return Some(text);
            }
        }
    }

    /// Queues one text frame without flushing.
    pub async fn feed(&mut self, frame: String) -> Result<(), Error> {
        Ok(self.ws.feed(Message::text(frame)).await?)
    }

    /// Writes every fed frame (and a pending pong) out.
    pub async fn flush(&mut self) -> Result<(), Error> {
        Ok(self.ws.flush().await?)
    }

    /// The WebSocket, for reading and writing apart ([`StreamExt::split`]).
    pub fn into_inner(self) -> Ws {
        self.ws
    }

    /// A client of a WebSocket taken by [`RawClient::into_inner`].
    pub fn from_inner(ws: Ws) -> Self {
        Self { ws }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ws.close(None)).await;
    }
}

/// `POST /network/{network}/announce` for `device` (open mode: no token).
pub async fn announce(addr: &str, network: &str, device: &str) -> Result<(), Error> {
    let body =
        format!(r#"{{"peerId":"{device}","signalAddress":"ws://127.0.0.1:9/{device}","capabilities":["relay"]}}"#);
    let headers = ["Content-Type: application/json".to_owned()];
    let r = request(addr, None, "POST", &format!("/network/{network}/announce"), &headers, &body).await?;
    if r.status != 200 {
        return Err(format!("announce {device}: {} {:.200}", r.status, r.body).into());
    }
    Ok(())
}

/// How many signals wait in `device`'s queue (unconfirmed), by a peek read.
pub async fn pending(addr: &str, device: &str) -> Result<usize, Error> {
    let v = crate::http::get_json(addr, &format!("/signaling/messages/{device}?peek=true")).await?;
    v["messages"].as_array().map(Vec::len).ok_or_else(|| "no messages in the answer".into())
}
