//! A raw connection's one task: reads frames and handles each in arrival
//! order through the pipeline, writes the outbox when woken, pings, and
//! ends in one place, running the protocol's clean-up exactly once.
//!
//! Pings carry a sequence number. One goes out every `PING_INTERVAL_MS`
//! when none is awaited; a peer whose oldest unanswered ping is
//! `PING_TIMEOUT_MS` old is dropped (a pong without a number we sent keeps
//! nothing alive). A push that asks for confirmation is followed by a ping:
//! its pong confirms every frame written before it (peers answer pings in
//! order, after the frames before them). A write the peer does not take
//! within `PING_TIMEOUT_MS` drops it too (a client that stopped reading).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};
use tracing::{error, info, warn};

use super::outbox::{Close, Out};
use super::upgrade::Opening;
use super::{Protocol, RawConn, Work};
use crate::config::Config;
use crate::core::CoreError;
use crate::domain::now_ms;
use crate::domain::rate::OncePerSecond;
use crate::state::AppState;
use crate::transport::conn::pipeline::Accepted;
use crate::transport::wire::error::SignalError;
use crate::transport::wire::payload::PayloadError;

/// The upgraded connection.
pub(super) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// How long a close frame may take to go out.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a connection ended.
enum End {
    /// The transport failed, or closed without a close frame.
    Peer,
    /// The peer sent a close frame (tungstenite queued the answer).
    PeerClosed,
    /// No pong within `PING_TIMEOUT_MS`.
    PingTimeout,
    /// The peer did not take what was written within `PING_TIMEOUT_MS`.
    TooSlow,
    /// The server asked (token expiry, a newer connection, flooding, shutdown).
    Server(Close),
}

/// The pings sent and not yet answered.
struct Pings {
    next: u64,
    waiting: VecDeque<(u64, Instant, Vec<oneshot::Sender<()>>)>,
    last: Instant,
}

impl Pings {
    /// When the timer must fire next: the oldest ping's deadline, or the next ping.
    fn deadline(&self, config: &Config) -> Instant {
        match self.waiting.front() {
            Some((_, sent, _)) => *sent + config.ping_timeout,
            None => self.last + config.ping_interval,
        }
    }

    /// A ping's payload, its pong to confirm `confirms`.
    fn send(&mut self, now: Instant, confirms: Vec<oneshot::Sender<()>>) -> Message {
        let seq = self.next;
        self.next += 1;
        self.waiting.push_back((seq, now, confirms));
        self.last = now;
        Message::Ping(Bytes::copy_from_slice(&seq.to_be_bytes()))
    }

    /// A pong: every ping up to the one it answers is answered (a number
    /// never sent answers nothing: a forged pong confirms no frame).
    fn answered(&mut self, payload: &[u8]) {
        let Ok(seq) = <[u8; 8]>::try_from(payload).map(u64::from_be_bytes) else { return };
        if seq >= self.next {
            return;
        }
        while self.waiting.front().is_some_and(|(s, _, _)| *s <= seq) {
            if let Some((_, _, confirms)) = self.waiting.pop_front() {
                for tx in confirms {
                    let _ = tx.send(());
                }
            }
        }
        if self.waiting.is_empty() {
            // An idle connection keeps no buffer between its pings.
            self.waiting = VecDeque::new();
        }
    }
}

/// A connection's task: opens it (boxed: held only while it runs), serves it
/// until it ends, then runs its clean-up and counts it out ([`finish`]).
/// Only the loop's own state stays for the connection's life.
pub(super) async fn serve<P: Protocol>(state: AppState, opening: Box<Opening<P>>) {
    let Some((mut ws, conn, work)) = Box::pin(opening.open(&state)).await else { return };
    // A panic in the work ends the work, not the connection's clean-up.
    let mut work: Option<Work> = work.map(|w| Box::pin(AssertUnwindSafe(w).catch_unwind().map(drop)) as Work);
    let config = &state.config;
    let mut pings = Pings { next: 0, waiting: VecDeque::new(), last: Instant::now() };
    let timer = tokio::time::sleep_until(pings.deadline(config));
    tokio::pin!(timer);
    let end = loop {
        // What to write: the outbox woke the task (a frame pushed, or a close:
        // a handler's answers wake it too), or a ping is due.
        let (mut ping, mut woken) = (false, false);
        // Unbiased: a client that keeps sending must not starve the pings or the work.
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Err(Error::Capacity(_))) => break End::Server((1009, "the frame is larger than MAX_PAYLOAD_BYTES")),
                Some(Ok(Message::Close(_))) => break End::PeerClosed,
                None | Some(Err(_)) => break End::Peer,
                // Binary frames (`None`) go through the rate limit too, then are refused.
                Some(Ok(Message::Text(text))) => if !Box::pin(take(&conn, Some(text))).await {
                    break End::Server((1008, "events kept coming past the rate limit"));
                },
                Some(Ok(Message::Binary(_))) => if !Box::pin(take(&conn, None)).await {
                    break End::Server((1008, "events kept coming past the rate limit"));
                },
                Some(Ok(Message::Pong(payload))) => pings.answered(&payload),
                Some(Ok(_)) => {}
            },
            () = conn.outbox.wake.notified() => woken = true,
            () = &mut timer => {
                let now = Instant::now();
                if pings.waiting.front().is_some_and(|(_, sent, _)| now >= *sent + config.ping_timeout) {
                    break End::PingTimeout;
                }
                ping = pings.waiting.is_empty() && now >= pings.last + config.ping_interval;
            }
            () = async { work.as_mut().expect("guarded").await }, if work.is_some() => work = None,
        }
        // Boxed, as everything that runs only now and then: an idle
        // connection's task is as large as its largest state.
        if woken || ping {
            match Box::pin(tokio::time::timeout(config.ping_timeout, write(&mut ws, &conn, &mut pings, ping))).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(close))) => break End::Server(close),
                Ok(Err(_)) => break End::Peer,
                Err(_) => break End::TooSlow,
            }
        }
        let deadline = pings.deadline(config);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
    };
    drop((work, pings));
    Box::pin(finish(ws, conn, end)).await;
}

/// After the loop: nothing more is taken (pushes are refused, confirmations
/// still owed end as closed), the clean-up runs, what is queued goes out
/// before a close the server makes, and the connection is counted out last
/// (shutdown waits for the close frames too).
async fn finish<P: Protocol>(mut ws: Ws, conn: Arc<RawConn<P>>, end: End) {
    conn.outbox.close((1000, ""));
    let (last, _) = conn.outbox.take();
    if AssertUnwindSafe(conn.ns.closed(&conn)).catch_unwind().await.is_err() {
        error!(conn_id = %conn.id, "clean-up panicked");
    }
    match end {
        End::Server(close) => {
            let texts =
                last.into_iter().filter_map(|out| if let Out::Text(t) = out { Some(Message::text(t)) } else { None });
            let flushed = async {
                for text in texts {
                    ws.feed(text).await?;
                }
                ws.flush().await
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, flushed).await;
            refuse(&mut ws, close.0, close.1).await;
        }
        // The answer to the peer's close frame.
        End::PeerClosed => drop(tokio::time::timeout(CLOSE_WAIT, ws.flush()).await),
        End::TooSlow => {
            static WARNING: OncePerSecond = OncePerSecond::new();
            if WARNING.ready(now_ms()) {
                warn!(conn_id = %conn.id, protocol = P::NAME, "slow consumer disconnected: it did not read what was sent (logged at most once a second)");
            }
        }
        End::PingTimeout => info!(conn_id = %conn.id, protocol = P::NAME, "raw connection dropped: no pong in time"),
        End::Peer => {}
    }
    conn.release();
}

/// A text frame (`None`: a binary one, refused once through) through the
/// pipeline; false if the connection must go for flooding.
async fn take<P: Protocol>(conn: &RawConn<P>, text: Option<Utf8Bytes>) -> bool {
    conn.core.metrics.protocol_message(P::NAME);
    match conn.pipeline.accept(text) {
        Accepted::Drain => {
            while let Some(text) = conn.pipeline.next() {
                let Some(text) = text else {
                    conn.ns.refused(conn, &PayloadError::NotText.into());
                    continue;
                };
                if conn.core.health.failing_fast() {
                    conn.ns.refused(conn, &CoreError::Unavailable.into());
                    continue;
                }
                // Not boxed again: `take` runs boxed (see `serve`).
                let handling = AssertUnwindSafe(conn.ns.handle(conn, text.as_str())).catch_unwind().await;
                if handling.is_err() {
                    error!(conn_id = %conn.id, "frame handler panicked; the connection goes on");
                }
            }
            true
        }
        Accepted::Queued => true,
        Accepted::Refused { why, flood, .. } => {
            conn.ns.refused(conn, &SignalError::from(why));
            !flood
        }
    }
}

/// Writes what the outbox holds, with a ping after it if a confirmation was
/// asked for; the close asked for, if any.
async fn write<P: Protocol>(
    ws: &mut Ws,
    conn: &RawConn<P>,
    pings: &mut Pings,
    ping: bool,
) -> Result<Option<Close>, Error> {
    let (frames, close) = conn.outbox.take();
    let (mut confirms, mut bytes) = (Vec::new(), 0);
    for out in frames {
        match out {
            Out::Text(text) => {
                bytes += text.len();
                ws.feed(Message::text(text)).await?;
            }
            Out::Confirm(tx) => confirms.push(tx),
        }
    }
    if ping || !confirms.is_empty() {
        ws.feed(pings.send(Instant::now(), confirms)).await?;
    }
    ws.flush().await?;
    conn.outbox.written(bytes);
    Ok(close)
}

/// Closes `ws` with `code` and `reason` (cut to the 123 bytes a close frame
/// holds), then reads what the peer still sends until its close frame
/// answers (within `CLOSE_WAIT`): a socket dropped with unread input resets
/// the connection, and the peer may lose the close frame with it. Input that
/// is no frame (the rest of an oversized one) is read raw until the peer closes.
pub(super) async fn refuse(ws: &mut Ws, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code: code.into(), reason: reason[..end].to_owned().into() };
    let deadline = Instant::now() + CLOSE_WAIT;
    let _ = tokio::time::timeout_at(deadline, ws.close(Some(frame))).await;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Err(_) => return,
            Ok(Some(Ok(_))) => {}
            // After a read error (an oversized frame) the stream reads as
            // ended at once, the frame's rest unread: drain it raw.
            Ok(Some(Err(_))) | Ok(None) => break,
        }
    }
    let mut buffer = vec![0u8; 1024];
    let io = ws.get_mut();
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, io.read(&mut buffer)).await
        && n > 0
    {}
}
